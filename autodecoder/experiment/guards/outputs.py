"""Outputs never mix: the provenance of the files already in an output folder must match a new run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards.files import remove_file
from autodecoder.experiment.guards.processes import Log, shorten

REPLACE_FLAG = "--replace"
Compatible = Callable[[str, Any, Any], bool]  # (key, existing value, wanted value) -> same?
_MISSING = "(not recorded)"


def _differences(old: dict, new: dict, keys: tuple[str, ...],
                 compatible: Compatible | None) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for each key on which two provenance dicts disagree."""
    pairs = [(k, old.get(k, _MISSING), new.get(k, _MISSING)) for k in keys]
    return [(k, a, b) for k, a, b in pairs if not (compatible(k, a, b) if compatible else a == b)]


def check_output_folder(folder: Path, provenance: dict, keys: tuple[str, ...],
                        read: Callable[[Path], dict | None], pattern: str, replace: bool,
                        log: Log = print, compatible: Compatible | None = None) -> list[Path]:
    """Refuse to write outputs into ``folder`` beside outputs made from something else.

    Each file matching the glob ``pattern`` is read with ``read``: its provenance dict, or
    None for a file that is not ours (left alone; return ``{}`` for an output of ours with no
    provenance: it differs on every key). A file conflicts if it differs from ``provenance``
    on one of ``keys`` (``compatible(key, old, new)`` decides if given, e.g. resolved paths).
    Conflicts: UserError naming one file, the key and both values; with ``replace`` exactly
    the conflicting files are removed instead (and returned).
    """
    folder = Path(folder)
    conflicts = [(f, d) for f in sorted(folder.glob(pattern)) if (p := read(f)) is not None
                 and (d := _differences(p, provenance, keys, compatible))]
    if conflicts and not replace:
        (f, [(k, old, new), *_]), n = conflicts[0], len(conflicts)
        raise UserError(f"{folder}: {f.name} was made with {k}={shorten(old)} but this run has "
                        f"{k}={shorten(new)} ({n} existing output(s) differ); pass {REPLACE_FLAG} "
                        f"to remove those outputs first, or choose another output folder")
    for f, _ in conflicts:
        remove_file(f)
    if conflicts:
        differing = "/".join(sorted({k for _, d in conflicts for k, _, _ in d}))
        log(f"note: {folder}: removed {len(conflicts)} earlier output(s) made with another "
            f"{differing} ({REPLACE_FLAG})")
    return [f for f, _ in conflicts]


def refuse_mixed(files: Iterable[Path], read: Callable[[Path], dict | None],
                 keys: tuple[str, ...], compatible: Compatible | None = None) -> dict | None:
    """The provenance (only ``keys``) that ``files`` share; UserError if they hold several.

    For commands that combine outputs (evaluation): outputs of several models must not be
    pooled. Files for which ``read`` returns None are skipped; None if no file is left.
    """
    first: tuple[Path, dict] | None = None
    for f in sorted(Path(p) for p in files):
        if (prov := read(f)) is None:
            continue
        if first is None:
            first = (f, prov)
        elif diff := _differences(first[1], prov, keys, compatible):
            k, a, b = diff[0]
            raise UserError(f"mixed outputs of different models/settings: {first[0]} has "
                            f"{k}={shorten(a)} but {f} has {k}={shorten(b)}; use one model's "
                            f"outputs at a time")
    return None if first is None else {k: first[1].get(k, _MISSING) for k in keys}
