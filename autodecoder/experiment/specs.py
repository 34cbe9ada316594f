"""``specs.json``: the experiment's settings, with the original's key names.

Loading validates the file for one command: ``"train"`` needs the training
keys, ``"test"`` the reconstruction keys (SPEC §8); keys of the other command
are still type-checked when present. Any problem stops with a
:class:`~autodecoder.errors.UserError` whose one-line message names the file,
the key and what was expected. Defaults are filled in only where the original
had them (and for the keys this project adds, listed in ``experiments/README.md``).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autodecoder.experiment.errors import UserError

TRAIN, TEST = "train", "test"


# --------------------------------------------------------------------------
# value checkers: each returns None when the value is fine, else what was expected

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def int_ge(lo: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and v >= lo else f"an integer >= {lo}"


def int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and lo <= v <= hi else f"an integer from {lo} to {hi}"


def num_gt(lo: float) -> Callable[[Any], str | None]:
    return lambda v: None if _is_num(v) and v > lo else f"a number > {lo}"


def num_ge(lo: float) -> Callable[[Any], str | None]:
    return lambda v: None if _is_num(v) and v >= lo else f"a number >= {lo}"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "a non-empty string"


def anything(v: Any) -> str | None:
    return None


def fraction(v: Any) -> str | None:
    return None if _is_num(v) and 0 < v <= 1 else "a number in (0, 1]"


def probability(v: Any) -> str | None:
    return None if _is_num(v) and 0 <= v < 1 else "a number in [0, 1)"


def description(v: Any) -> str | None:
    if isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v)):
        return None
    return "a list of strings"


def int_list(v: Any) -> str | None:
    if isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v):
        return None
    return "a list of non-negative integers"


def optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def inner(v: Any) -> str | None:
        if v is None:
            return None
        what = check(v)
        return None if what is None else f"null or {what}"
    return inner


def dims3(v: Any) -> str | None:
    if isinstance(v, list) and len(v) == 3 and all(_is_int(i) and i >= 1 for i in v):
        return None
    return "a list of three positive integers [N0, N1, N2]"


def positive_int_list(v: Any) -> str | None:
    if isinstance(v, list) and v and all(_is_int(i) and i >= 1 for i in v):
        return None
    return "a non-empty list of positive integers"


# --------------------------------------------------------------------------
# the keys

@dataclass(frozen=True)
class Key:
    check: Callable[[Any], str | None]
    required_by: tuple[str, ...] = ()  # commands that fail without it
    default: Any = None
    has_default: bool = False
    added: bool = False  # a key this project adds (documented in experiments/README.md)


def _req(check, *commands) -> Key:
    return Key(check, tuple(commands))


def _opt(check, default) -> Key:
    return Key(check, (), default, True)


def _added(check, default) -> Key:
    return Key(check, (), default, True, True)


TOP_KEYS: dict[str, Key] = {
    "Description": _req(description, TRAIN, TEST),
    "DataSource": _req(string, TRAIN),
    "UseHDF5": _req(boolean, TRAIN, TEST),
    "NumSequences": _req(int_ge(1), TRAIN, TEST),
    "CodeLength": _req(int_ge(1), TRAIN, TEST),
    "NetworkSpecs": _req(lambda v: None if isinstance(v, dict) else "an object of network options", TRAIN, TEST),
    "NumEpochs": _req(int_ge(1), TRAIN),
    "LearningRateSchedule": _req(lambda v: None, TRAIN),  # checked in detail below
    "TrainSampleFraction": _req(fraction, TRAIN),
    "FramesPerBatch": _req(int_ge(1), TRAIN),
    "OnTheFlySampling": _req(boolean, TRAIN),
    "ClampSDFminmax": _req(boolean, TRAIN),
    "ClampingDistance": _req(num_gt(0), TRAIN),
    "OptimizeRot": _req(boolean, TRAIN),
    "OptRotEpoch": _req(int_ge(0), TRAIN),
    "CodeRegularization": _opt(boolean, True),
    "CodeRegularizationLambda": _opt(num_ge(0), 1e-4),
    "CodeInitStdDev": _opt(num_gt(0), 1.0),
    "GradientClipNorm": _opt(optional(num_gt(0)), None),
    "CodeBound": _opt(anything, None),  # read but unused by the original
    "LogFrequency": _opt(int_ge(1), 1),
    "DataLoaderThreads": _opt(int_ge(0), 1),
    "ReconstructionDims": _req(dims3, TEST),
    "ReconstructionFramesPerSequence": _req(int_ge(1), TEST),
    "ReconstructionSubsetSize": _req(int_ge(1), TEST),
    "HDF5CompressionLevel": _req(int_range(0, 9), TEST),
    # added by this project (speed and memory; see experiments/README.md, "Keys this project adds")
    "FastPath": _added(boolean, True),
    "TrainChunkSize": _added(int_ge(1), 8192),
    "FreshSampling": _added(boolean, False),
    "SamplePoolFactor": _added(num_ge(1), 5.0),
    "SampleValueDtype": _added(lambda v: None if v in ("float32", "float16") else '"float32" or "float16"',
                               "float32"),
    "Threads": _added(optional(int_ge(1)), None),
    "Bf16Autocast": _added(boolean, False),
    "TF32Matmul": _added(boolean, False),
    "AdaptiveSafety": _added(num_gt(0), 5.0),
    "Compile": _added(lambda v: None if isinstance(v, bool) or (isinstance(v, str) and v)
                      else 'true, false or a torch.compile backend name ("inductor", "aot_eager", …)', False),
}

def default(key: str) -> Any:
    """The default of a top-level key (the one place where defaults are kept)."""
    spec = TOP_KEYS[key]
    if not spec.has_default:
        raise KeyError(f"{key} has no default")
    return copy.deepcopy(spec.default)


#: Keys that are accepted and have no effect, and why (a one-line warning each).
UNUSED_KEYS = {
    "CodeBound": "is read but unused (as in the original)",
    "DataLoaderThreads": "has no effect (samples are drawn in the training process; see \"Threads\" for CPU threads)",
}

#: Keys of earlier versions that the authors' specs files still carry:
#: accepted and reported as ignored (SPEC §8).
LEGACY_TOP_KEYS = {
    "SampleFraction": "superseded by TrainSampleFraction",
    "ScenesPerBatch": "superseded by FramesPerBatch",
}

NETWORK_KEYS: dict[str, Key] = {
    "dims": _req(positive_int_list, TRAIN, TEST),
    "dropout": _opt(optional(int_list), None),
    "dropout_prob": _opt(probability, 0.0),
    "norm_layers": _opt(optional(int_list), None),
    "latent_in": _opt(optional(int_list), None),
    "weight_norm": _opt(boolean, False),
    "xyz_in_all": _opt(boolean, False),
    "use_tanh": _opt(boolean, False),
    "latent_dropout": _opt(boolean, False),
    "use_sine": _opt(boolean, True),
}

LEGACY_NETWORK_KEYS = {
    "positional_encoding": "not used by the released code",
    "fourier_degree": "not used by the released code",
}

SCHEDULE_KEYS = {
    "Step": {"Initial": num_gt(0), "Interval": num_gt(0), "Factor": num_gt(0)},
    "Warmup": {"Initial": num_ge(0), "Final": num_gt(0), "Length": num_gt(0)},
    "Constant": {"Value": num_gt(0)},
}


# --------------------------------------------------------------------------

class SpecsWarning(UserWarning):
    """A key that is accepted but has no effect (legacy or unused)."""


def _fail(path: Path, key: str, expected: str, value: Any = None, show_value: bool = True) -> None:
    got = f", got {json.dumps(value)}" if show_value else ""
    raise UserError(f"{path}: key \"{key}\": expected {expected}{got}")


def _unknown(path: Path, key: str, known: list[str], where: str) -> None:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # case slips ("numepochs") are the commonest typo
        close = [k for k in known if k.lower() == key.lower()]
    hint = f"; did you mean \"{close[0]}\"?" if close else ""
    raise UserError(f"{path}: unknown key \"{key}\"{where}{hint}")


def read_json(path: Path) -> dict:
    """Read a JSON object from ``path`` with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: specs file not found (every experiment folder needs a specs.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of settings, got {type(data).__name__}")
    return data


def validate(raw: dict, path: Path, command: str) -> dict:
    """Validate ``raw`` (the parsed specs) for ``command`` and return the resolved specs.

    The result is a new dict with defaults filled in and legacy keys removed.
    Warnings (:class:`SpecsWarning`) report keys that are accepted but ignored.
    """
    if command not in (TRAIN, TEST):
        raise ValueError(f"command must be {TRAIN!r} or {TEST!r}")
    path = Path(path)
    specs: dict[str, Any] = {}
    known = list(TOP_KEYS) + list(LEGACY_TOP_KEYS)
    for key, value in raw.items():
        if key in LEGACY_TOP_KEYS:
            warnings.warn(f"{path}: key \"{key}\" is ignored ({LEGACY_TOP_KEYS[key]})", SpecsWarning, stacklevel=2)
            continue
        if key not in TOP_KEYS:
            _unknown(path, key, known, "")
        what = TOP_KEYS[key].check(value)
        if what is not None:
            _fail(path, key, what, value)
        specs[key] = copy.deepcopy(value)
    for key, spec in TOP_KEYS.items():
        if key in specs:
            continue
        if command in spec.required_by:
            _fail(path, key, f"a value (\"{key}\" is required for {command}ing)", show_value=False)
        if spec.has_default:
            specs[key] = copy.deepcopy(spec.default)
    for key, why in UNUSED_KEYS.items():
        if key in raw:
            warnings.warn(f"{path}: key \"{key}\" {why}", SpecsWarning, stacklevel=2)
    if isinstance(specs.get("Description"), str):
        specs["Description"] = [specs["Description"]]
    if "NetworkSpecs" in specs:
        specs["NetworkSpecs"] = _validate_network(specs["NetworkSpecs"], path, specs.get("CodeLength"))
    if "LearningRateSchedule" in specs:
        _validate_schedules(specs["LearningRateSchedule"], path)
    return specs


def _validate_network(net: dict, path: Path, code_length: int | None) -> dict:
    out: dict[str, Any] = {}
    known = list(NETWORK_KEYS) + list(LEGACY_NETWORK_KEYS)
    for key, value in net.items():
        if key in LEGACY_NETWORK_KEYS:
            warnings.warn(f"{path}: key \"NetworkSpecs.{key}\" is ignored ({LEGACY_NETWORK_KEYS[key]})",
                          SpecsWarning, stacklevel=3)
            continue
        if key not in NETWORK_KEYS:
            _unknown(path, f"NetworkSpecs.{key}", [f"NetworkSpecs.{k}" for k in known], "")
        what = NETWORK_KEYS[key].check(value)
        if what is not None:
            _fail(path, f"NetworkSpecs.{key}", what, value)
        out[key] = copy.deepcopy(value)
    for key, spec in NETWORK_KEYS.items():
        if key not in out:
            if spec.required_by:
                _fail(path, f"NetworkSpecs.{key}", "the list of hidden-layer widths", show_value=False)
            out[key] = copy.deepcopy(spec.default)
    for key in ("dropout", "norm_layers", "latent_in"):
        if out[key] is None:
            out[key] = []
    n_layers = len(out["dims"]) + 1
    for key in ("dropout", "norm_layers", "latent_in"):
        bad = [i for i in out[key] if i >= n_layers]
        if bad:
            _fail(path, f"NetworkSpecs.{key}", f"layer indices below {n_layers} (the network has "
                  f"layers lin0 … lin{n_layers - 1})", out[key])
    if code_length is not None:
        # Every layer must keep a positive width after the inputs appended to the next one.
        from autodecoder.model.decoder import layer_widths  # local import: model imports nothing from here
        try:
            layer_widths(code_length, out)
        except ValueError as e:
            raise UserError(f"{path}: key \"NetworkSpecs.dims\": {e}") from None
    return out


def _validate_schedules(scheds: Any, path: Path) -> None:
    key = "LearningRateSchedule"
    if not isinstance(scheds, list) or len(scheds) != 3 or not all(isinstance(s, dict) for s in scheds):
        _fail(path, key, "a list of three schedules (decoder, codes, rotation angles)", scheds)
    for i, s in enumerate(scheds):
        kind = s.get("Type")
        if kind not in SCHEDULE_KEYS:
            _fail(path, f"{key}[{i}].Type", "one of \"Step\", \"Warmup\", \"Constant\"", kind)
        needed = SCHEDULE_KEYS[kind]
        for name, check in needed.items():
            if name not in s:
                _fail(path, f"{key}[{i}].{name}", f"a value (a \"{kind}\" schedule needs "
                      + ", ".join(needed) + ")", show_value=False)
            what = check(s[name])
            if what is not None:
                _fail(path, f"{key}[{i}].{name}", what, s[name])
        for name in s:
            if name != "Type" and name not in needed:
                _unknown(path, f"{key}[{i}].{name}", [f"{key}[{i}].{n}" for n in needed],
                         f" (a \"{kind}\" schedule takes " + ", ".join(needed) + ")")


def load(experiment_dir: str | Path, command: str) -> dict:
    """Read and validate ``<experiment_dir>/specs.json`` for ``command`` ("train" or "test")."""
    path = Path(experiment_dir) / "specs.json"
    if not Path(experiment_dir).is_dir():
        raise UserError(f"{experiment_dir}: experiment folder not found")
    return validate(read_json(path), path, command)


def save(specs: dict, path: str | Path) -> None:
    """Write resolved specs as indented JSON (atomically)."""
    from autodecoder.experiment.workspace import atomic_write_text
    atomic_write_text(Path(path), json.dumps(specs, indent=2) + "\n")
