"""One run per folder: ``<folder>/.lock`` taken atomically, stale locks taken over, others refused."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards.files import fsync_dir, fsync_file, temp_name
from autodecoder.experiment.guards.processes import (Log, format_duration, pid_alive, pid_namespace,
                                                      process_start_epoch, shorten)

LOCK_NAME = ".lock"
_HELD: dict[str, list] = {}  # realpath -> [depth, token] of the locks this process holds
_HELD_GUARD = threading.Lock()


def read_lock(folder: Path) -> dict | None:
    """The lock record of ``folder`` (see the module docstring), or None if it is not locked.

    A writer needs microseconds, so a lock still unreadable after ~1 s was left half-written
    by a crash: UserError saying to remove it.
    """
    lockfile = Path(folder) / LOCK_NAME
    for _ in range(20):
        try:
            info = json.loads(lockfile.read_text())
            if isinstance(info, dict) and "pid" in info and "host" in info:
                return info
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise UserError(f"{lockfile}: unreadable lock file (empty or not a lock record); "
                    f"if no run is using {folder}, remove it and retry")


def _describe(info: dict) -> str:
    age = format_duration(time.time() - float(info.get("start_epoch", time.time())))
    return (f"process {info.get('pid')} on {info.get('host')} since {info.get('start')} "
            f"({age} ago, command: {shorten(info.get('command', '?'), 80)})")


def _same_host(info: dict) -> bool:
    """Whether the lock's pid can be checked here: same host name and same pid namespace."""
    return (info["host"] == socket.gethostname()
            and info.get("pidns", pid_namespace()) == pid_namespace())


def _stale(info: dict, folder: Path) -> bool:
    """A lock of this host whose process is gone, or whose pid now belongs to a newer process."""
    pid = int(info.get("pid", -1))
    if pid == os.getpid():  # ours if we hold it, else an earlier process that had our pid
        return os.path.realpath(folder) not in _HELD
    if not pid_alive(pid):
        return True
    started = process_start_epoch(pid)
    return started is not None and started > float(info.get("start_epoch", 0)) + 2.0


def _create_lock(lockfile: Path, record: dict) -> bool:
    """Create ``lockfile`` holding ``record`` unless it exists (then False)."""
    try:
        fd = os.open(lockfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as e:
        raise UserError(f"{lockfile}: cannot create the lock file ({e.strerror})") from None
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    except OSError as e:
        lockfile.unlink(missing_ok=True)
        raise UserError(f"{lockfile}: cannot write the lock file ({e.strerror})") from None
    finally:
        os.close(fd)
    return True


def _take_over(folder: Path, stale: dict, record: dict) -> bool:
    """Rename a complete lock of ours over ``stale``, unless it changed meanwhile (then False)."""
    lockfile, tmp = folder / LOCK_NAME, temp_name(folder / LOCK_NAME)
    tmp.write_text(json.dumps(record))
    fsync_file(tmp)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:  # serialises rival take-overs on this host; best effort where flock is missing
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            current = json.loads(lockfile.read_text())
        except (OSError, ValueError):
            current = None
        if current != stale:
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, lockfile)
    finally:
        os.close(fd)  # also releases the flock
    fsync_dir(folder)
    return True


def _acquire(folder: Path, what: str, log: Log, break_hint: str | None) -> str:
    """Take the lock of ``folder``; the token written in it."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (cannot lock {what})")
    now, host = time.time(), socket.gethostname()
    record = {"pid": os.getpid(), "host": host, "pidns": pid_namespace(), "start_epoch": now,
              "command": " ".join(sys.argv),
              "start": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
              "token": uuid.uuid4().hex}
    for _ in range(5):  # a rival may win a race; a few rounds settle it
        if _create_lock(folder / LOCK_NAME, record):
            return record["token"]
        info = read_lock(folder)
        if info is None:
            continue
        if not _same_host(info):
            hint = break_hint or f"remove {folder / LOCK_NAME}"
            here = host if info["host"] != host else f"{host}, another container"
            raise UserError(f"{folder}: {what} is locked by {_describe(info)}; this host ({here}) "
                            f"cannot tell if it still runs: if it does not, {hint} and retry")
        if not _stale(info, folder):
            raise UserError(f"{folder}: {what} is in use by {_describe(info)}; "
                            f"wait for it to finish or stop it")
        if _take_over(folder, info, record):
            log(f"note: {folder}: took over the lock of process {info['pid']} "
                f"(started {info.get('start')}), which is no longer running")
            return record["token"]
    raise UserError(f"{folder / LOCK_NAME}: could not take the lock (it keeps changing)")


@contextmanager
def hold_lock(folder: Path, what: str, log: Log = print,
              break_hint: str | None = None) -> Iterator[Path]:
    """Hold ``<folder>/.lock`` while the block runs: one run per experiment/output folder.

    ``what`` is the folder's role in messages ("the experiment", "the output folder");
    ``break_hint`` replaces "remove <folder>/.lock" in the other-host refusal (e.g. a flag).
    Removed on exit, also after exceptions and KeyboardInterrupt, only if still ours.
    Nested holds in the same process are counted; the outermost one removes the file.
    """
    folder, key = Path(folder), os.path.realpath(folder)
    with _HELD_GUARD:
        entry = _HELD.get(key)
        if entry:
            entry[0] += 1
    if entry is None:
        token = _acquire(folder, what, log, break_hint)
        with _HELD_GUARD:
            _HELD[key] = [1, token]
    try:
        yield folder / LOCK_NAME
    finally:
        with _HELD_GUARD:
            depth, token = _HELD[key]
            _HELD[key][0] -= 1
            if depth == 1:
                del _HELD[key]
        if depth == 1:
            _release(folder, token, log)


@contextmanager
def hold_output_lock(out: Path, part: str | None, what: str, log: Log = print) -> Iterator[None]:
    """The lock of the output folder ``out``; with ``part`` (a shard's ``.shard-I-of-N``) the lock of
    ``<out>/<part>`` instead, so that the shards of a job array write into one folder at once (each
    writes only its own files). ``what`` names the part in messages (e.g. "shard 1/4")."""
    if part is None:
        with hold_lock(out, "the output folder", log):
            yield
        return
    folder = Path(out) / part
    folder.mkdir(exist_ok=True)
    try:
        with hold_lock(folder, f"{what} of the output folder", log):
            yield
    finally:
        try:
            folder.rmdir()  # empty once the lock is gone; left if a rival of the same part still holds it
        except OSError:
            pass


def _release(folder: Path, token: str, log: Log) -> None:
    lockfile = folder / LOCK_NAME
    try:
        info = json.loads(lockfile.read_text())
    except (OSError, ValueError):
        info = None
    # the pid check keeps a forked child (which inherited the token) off the parent's lock
    if isinstance(info, dict) and info.get("token") == token and info.get("pid") == os.getpid():
        lockfile.unlink(missing_ok=True)
    elif info is not None:
        log(f"note: {lockfile}: the lock is no longer ours (it was broken); left in place")


def break_lock(folder: Path) -> dict | None:
    """Remove ``<folder>/.lock``; the record it held, or None if there was none.

    Refuses (UserError) to break the lock of a process of this host that still runs.
    """
    info = read_lock(folder)
    if info is None:
        return None
    if _same_host(info) and not _stale(info, Path(folder)):
        raise UserError(f"{folder}: refusing to break the lock of {_describe(info)}, which "
                        f"still runs; stop it instead")
    (Path(folder) / LOCK_NAME).unlink(missing_ok=True)
    return info
