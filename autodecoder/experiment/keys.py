"""The keys of ``specs.json``: each key's check, whether a command requires it, and its default — the one
place where defaults are kept (docs/method.md §8; the keys this project adds: ``experiments/README.md``).

A check returns None when a value is fine, else what was expected (for a one-line message).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

TRAIN, TEST = "train", "test"


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


#: Values of ``InitialRotations``: the original's small random angles, or each training cell's principal
#: axes (:mod:`autodecoder.training.alignment`).
INITIAL_ROTATIONS = ("random", "principal_axes")

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
    "InitialRotations": _added(lambda v: None if v in INITIAL_ROTATIONS else
                               " or ".join(f'"{r}"' for r in INITIAL_ROTATIONS), "random"),
    "Compile": _added(lambda v: None if isinstance(v, bool) or (isinstance(v, str) and v)
                      else 'true, false or a torch.compile backend name ("inductor", "aot_eager", …)', False),
}

def default(key: str) -> Any:
    """The default of a top-level key (the one place where defaults are kept)."""
    spec = TOP_KEYS[key]
    if not spec.has_default:
        raise KeyError(f"{key} has no default")
    return copy.deepcopy(spec.default)


#: Keys that are accepted and have no effect: why, and for which values a one-line warning says so.
UNUSED_KEYS = {
    "CodeBound": ("is read but unused (as in the original)", lambda v: True),
    # the original's default, 1, describes what happens anyway: only another value gets a word
    "DataLoaderThreads": ("has no effect (samples are drawn in the training process; \"Threads\" sets the CPU "
                          "threads)", lambda v: v != 1),
}

#: Keys of earlier versions that the authors' specs files still carry:
#: accepted and reported as ignored (docs/method.md §8).
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


#: Keys whose value does not change what training computes (beyond float rounding): they may change
#: between a run and its resumption. Every other key must keep its value (see :func:`changed_keys`).
RESULT_NEUTRAL_KEYS = frozenset({
    "Description", "NumEpochs", "LogFrequency", "Threads", "DataLoaderThreads", "CodeBound", "FastPath",
    "TrainChunkSize", "Compile", "AdaptiveSafety", "ReconstructionDims", "ReconstructionFramesPerSequence",
    "ReconstructionSubsetSize", "HDF5CompressionLevel",
})
