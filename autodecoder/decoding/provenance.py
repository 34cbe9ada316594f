"""Where an output file came from, read back from its own attributes, so that outputs never mix.

``test.py`` records in every file the experiment, the checkpoint, its epoch and the type
(:func:`autodecoder.decoding.run.run`). A new run into a folder that holds outputs of another of
these is refused unless ``--replace`` (:func:`autodecoder.experiment.guards.check_output_folder`), and
``evaluate.py`` refuses a set of outputs of several models (:func:`autodecoder.experiment.guards.refuse_mixed`).
``generate`` and ``generate_filo`` may share ``OUT_randomgen``, as in the original.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import read_provenance

#: The attributes that tell outputs of one model and type from another's.
ORIGIN_KEYS = ("experiment", "checkpoint", "epoch", "type")
#: Types that may share an output folder (the original writes both to OUT_randomgen).
SHARED_FOLDER_TYPES = frozenset({"generate", "generate_filo"})


def output_provenance(path: Path) -> dict | None:
    """The provenance attributes of an output of this project, or None for a file that is not one."""
    try:
        prov = read_provenance(path)
    except (UserError, OSError, ValueError):
        return None
    return prov if "type" in prov and "autodecoder_version" in prov else None


def same_origin(key: str, old: Any, new: Any) -> bool:
    """Whether two values of an origin key count as the same (types that share a folder do)."""
    if key == "type" and {str(old), str(new)} <= SHARED_FOLDER_TYPES:
        return True
    return str(old) == str(new)
