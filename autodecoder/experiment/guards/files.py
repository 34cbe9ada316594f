"""Temporaries: ``dir/.NAME.tmpPID`` beside the target, made complete and fsynced, then renamed over it."""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from autodecoder.experiment.guards.processes import Log, format_bytes, pid_alive, process_start_epoch

_TEMP = re.compile(r"^\.(.+)\.tmp(\d+)$")


def temp_name(path: Path) -> Path:
    """``dir/name`` -> ``dir/.name.tmpPID``: the temporary that becomes ``path`` by a rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk, so that a rename never exposes an empty file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; some file systems refuse, which is harmless
        fsync_file(folder)
    except OSError:
        pass


def remove_file(path: Path) -> int:
    """Remove a file or folder; the bytes freed."""
    if path.is_dir() and not path.is_symlink():
        size = sum(p.lstat().st_size for p in path.rglob("*"))
        shutil.rmtree(path)
        return size
    size = path.lstat().st_size
    path.unlink()
    return size


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it goes.

    ``path`` on disk is always the old complete file or the new complete one. The temporary
    may also be a folder if ``path`` does not exist yet (its files are not fsynced).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if tmp.is_file():
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            remove_file(tmp)
        except OSError:  # never written, or already gone: nothing to clean
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _temp_is_stale(path: Path, pid: int) -> bool:
    """Its process is gone, or the pid was reused: the file predates the process with that pid."""
    if not pid_alive(pid):
        return True
    started = process_start_epoch(pid)
    try:
        return started is not None and path.lstat().st_mtime < started - 2.0
    except OSError:
        return False


def clean_stale_temporaries(folder: Path, log: Log = print, recursive: bool = False) -> list[Path]:
    """Remove the ``.NAME.tmpPID`` in ``folder`` whose process no longer runs; the removed paths.

    Those of live processes of this host are kept (unless older than the process with that pid,
    as when a container restarts with the same pids). The name carries no host, so call this
    while holding the folder's lock: then no process of another host writes there.
    Logs one line (how many, bytes freed) if anything was removed.
    """
    folder, removed, freed = Path(folder), [], 0
    found = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
    for p in sorted(found):
        m = _TEMP.match(p.name)
        if m and _temp_is_stale(p, int(m.group(2))):
            try:
                freed += remove_file(p)
            except OSError:  # vanished meanwhile, or not ours to remove: leave it
                continue
            removed.append(p)
    if removed:
        log(f"note: {folder}: removed {len(removed)} stale temporary file(s) of stopped runs, "
            f"freeing {format_bytes(freed)}")
    return removed
