"""Run safety, "nothing lost, nothing mixed": locks, stop requests, temporaries, provenance, room.

Locks: one run per experiment or output folder. ``<folder>/.lock`` is JSON {pid, host, pidns,
start (ISO), start_epoch (s), command, token}; the random token tells our lock from others.
    hold_lock(folder, what, log=print, break_hint=None)  context manager, yields the lock path
    hold_output_lock(out, part, what, log=print)  the output folder's lock, or that of its part (a shard)
    read_lock(folder) -> dict | None;   break_lock(folder) -> dict | None
  A lock of a dead process of this host (or of a pid since reused) is taken over with a note;
  a live one, or one of another host, is refused. Nesting in one process is counted.
Stop requests: Ctrl-C / SIGTERM end the run at the next batch boundary.
    stop_requests(message, several_ranks=False, speak=True)  yields StopRequest(.requested)
    terminate_as_interrupt()  SIGTERM raises KeyboardInterrupt, so ``finally:`` blocks run
Temporaries: ``dir/.NAME.tmpPID`` beside the target, made complete, then renamed over it.
    temp_name(path), atomic_path(path), atomic_write_text(path, text), fsync_file(path),
    clean_stale_temporaries(folder, log=print, recursive=False) -> list[Path]
Outputs never mix models/settings:
    check_output_folder(folder, provenance, keys, read, pattern, replace, log, compatible)
    refuse_mixed(files, read, keys, compatible=None) -> dict | None
Room: ensure_writable_dir(folder, what) -> Path;  available_memory_bytes(device) -> int;
    check_memory(need_bytes, device, what, advice, override, log) -> int
Every refusal is a one-line UserError naming the file/folder/key/value and what was expected.
"""

from autodecoder.experiment.guards.files import (atomic_path, atomic_write_text, clean_stale_temporaries, fsync_file,
                                                 temp_name)
from autodecoder.experiment.guards.locks import LOCK_NAME, break_lock, hold_lock, hold_output_lock, read_lock
from autodecoder.experiment.guards.outputs import REPLACE_FLAG, check_output_folder, refuse_mixed
from autodecoder.experiment.guards.processes import format_bytes, format_duration
from autodecoder.experiment.guards.room import MEMORY_FLAG, available_memory_bytes, check_memory, ensure_writable_dir
from autodecoder.experiment.guards.signals import EXIT_STOPPED, StopRequest, stop_requests, terminate_as_interrupt

__all__ = ["atomic_path", "atomic_write_text", "clean_stale_temporaries", "fsync_file", "temp_name", "LOCK_NAME",
           "break_lock", "hold_lock", "hold_output_lock", "read_lock", "REPLACE_FLAG", "check_output_folder", "refuse_mixed",
           "format_bytes", "format_duration", "MEMORY_FLAG", "available_memory_bytes", "check_memory",
           "ensure_writable_dir", "EXIT_STOPPED", "StopRequest", "stop_requests", "terminate_as_interrupt"]
