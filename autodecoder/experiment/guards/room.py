"""Room to work: writable folders, and memory checked before a large allocation."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards.processes import Log, format_bytes

MEMORY_FLAG = "--ignore-memory-check"


def ensure_writable_dir(folder: Path, what: str) -> Path:
    """Create ``folder`` (and parents) if missing and check that a file can be written in it.

    ``what`` is the folder's role in the message ("output"); the check creates and removes
    ``.write_test.tmpPID`` inside.
    """
    folder = Path(folder)
    for p in reversed([folder, *folder.parents]):
        if p.exists() and not p.is_dir():
            raise UserError(f"{folder}: cannot write the {what} folder "
                            f"({p} is a file, not a folder)")
    probe = folder / f".write_test.tmp{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "xb") as fh:
            fh.write(b"ok")
        probe.unlink()
    except OSError as e:
        reason = "read-only file system" if e.errno == errno.EROFS else (e.strerror or str(e))
        raise UserError(f"{folder}: cannot write the {what} folder ({reason.lower()})") from None
    return folder


def read_number(path: Path, key: str | None = None) -> int | None:
    """An integer file (``key`` None) or the ``key value`` line of a stat file; None if absent."""
    try:
        lines = path.read_text().splitlines()
        text = lines[0] if key is None else next(ln.split()[1] for ln in lines
                                                 if ln.split()[:1] == [key])
        return int(text)
    except (OSError, ValueError, IndexError, StopIteration):  # also "max": no limit
        return None


def cgroup_room(root: Path = Path("/sys/fs/cgroup"),
                 membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """Smallest (limit - usage) over this process's memory cgroups (v1 or v2) and ancestors.

    Reclaimable page cache (inactive_file) is not counted as used, as the OOM killer does.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    room = None
    for _, controllers, rel in (line.split(":", 2) for line in lines):
        if controllers == "":  # v2: limit, usage, stat key
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1 (~2**63 means no limit)
            base, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                            "total_inactive_file")
        else:
            continue
        leaf = base / rel.lstrip("/")
        for d in [leaf, *leaf.parents[: len(leaf.parents) - len(base.parents)]]:
            limit, usage = read_number(d / files[0]), read_number(d / files[1])
            if limit is not None and limit < 1 << 60 and usage is not None:
                usage -= read_number(d / "memory.stat", files[2]) or 0
                room = min(room if room is not None else limit, limit - max(usage, 0))
    return room


def available_memory_bytes(device: Any = "cpu") -> int:
    """Bytes this process can still allocate on ``device`` ("cpu", "cuda:1", a torch.device).

    CPU (and mps, which shares it): the smaller of MemAvailable (/proc/meminfo) and the cgroup
    limit minus usage. CUDA: free device memory plus what PyTorch's cache holds unused.
    """
    name = str(device)
    if name.startswith("cuda"):
        import torch  # only here: the other guards must stay cheap for light commands

        if not torch.cuda.is_available():
            raise UserError(f"device {name}: CUDA is not available on this machine; use cpu")
        dev = torch.device(name)
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))
    kib = read_number(Path("/proc/meminfo"), "MemAvailable:")
    avail = kib * 1024 if kib else os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = cgroup_room()
    return max(min(avail, room) if room is not None else avail, 0)


def check_memory(need_bytes: int, device: Any, what: str, advice: str, override: bool,
                 log: Log = print) -> int:
    """Refuse (UserError) to start ``what`` if it needs more than ``device`` has; bytes available.

    ``need_bytes`` estimates the peak allocation; ``advice`` says how to need less (e.g.
    "use a coarser --grid"). With ``override`` a shortfall is only logged.
    """
    avail = available_memory_bytes(device)
    if need_bytes <= avail:
        return avail
    text = (f"{what} needs about {format_bytes(need_bytes)} but only {format_bytes(avail)} "
            f"are available to this process on {device}")
    if not override:
        raise UserError(f"{text}; {advice} (or pass {MEMORY_FLAG})")
    log(f"note: {text}; continuing because {MEMORY_FLAG} was given")
    return avail
