"""Processes of this host and human-readable numbers, for the messages of the guards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable


Log = Callable[[str], Any]


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_duration(seconds: float) -> str:
    """``4000`` -> ``"1 h 6 min"``: the two largest units, for lock ages."""
    s = max(int(seconds), 0)
    if s < 3600:
        return f"{s} s" if s < 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days {s % 86400 // 3600} h"


def shorten(value: Any, limit: int = 120) -> str:
    """A value on one line, at most ``limit`` characters (messages must stay one line)."""
    text = " ".join((value if isinstance(value, str) else repr(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process on this host (a zombie counts as finished)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a killed but not yet reaped child still answers os.kill
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def pid_namespace() -> str:
    """Containers with the same host name (host networking) do not see each other's pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def process_start_epoch(pid: int) -> float | None:
    """When ``pid`` started (Unix seconds), from /proc; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22: starttime
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
