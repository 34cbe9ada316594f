"""``specs.json``: the experiment's settings, with the original's key names.

Loading validates the file for one command: ``"train"`` needs the training
keys, ``"test"`` the reconstruction keys (docs/method.md §8); keys of the other command
are still type-checked when present. Any problem stops with a
:class:`~autodecoder.experiment.errors.UserError` whose one-line message names the file,
the key and what was expected. Defaults are filled in only where the original
had them (and for the keys this project adds, listed in ``experiments/README.md``); the keys
and their defaults are in :mod:`autodecoder.experiment.keys`.
"""

from __future__ import annotations

import copy
import difflib
import json
import warnings
from pathlib import Path
from typing import Any

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_write_text
from autodecoder.experiment.keys import (LEGACY_NETWORK_KEYS, LEGACY_TOP_KEYS, NETWORK_KEYS, RESULT_NEUTRAL_KEYS,
                                         SCHEDULE_KEYS, TEST, TOP_KEYS, TRAIN, UNUSED_KEYS)
from autodecoder.model.decoder import layer_widths


class SpecsWarning(UserWarning):
    """A key that is accepted but has no effect (legacy or unused)."""


def _fail(path: Path, key: str, expected: str, value: Any = None, show_value: bool = True) -> None:
    got = f", got {json.dumps(value)}" if show_value else ""
    raise UserError(f"{path}: key \"{key}\": expected {expected}{got}")


def refuse_unknown_key(source: str | Path, key: str, known: list[str], where: str = "") -> None:
    """One line: ``source: unknown key "key"<where>; did you mean "…"?`` (the closest known key, or a case slip)."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:  # case slips ("numepochs") are the commonest typo
        close = [k for k in known if k.lower() == key.lower()]
    hint = f"; did you mean \"{close[0]}\"?" if close else ""
    raise UserError(f"{source}: unknown key \"{key}\"{where}{hint}")


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def read_json(path: Path) -> dict:
    """Read a JSON object from ``path``: one-line errors for a missing file, text that is not UTF-8
    (a byte-order mark is accepted), malformed JSON, and a key given twice (JSON would keep the last)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: specs file not found (every experiment folder needs a specs.json)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at position {e.start}); "
                        "save the file as UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except _DuplicateKey as e:
        raise UserError(f"{path}: key \"{e.args[0]}\" is given twice (JSON would silently keep the last value); "
                        "keep one") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of settings, got {type(data).__name__}")
    return data


def changed_keys(saved: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` of every key that affects training and differs between
    the specs a run was started with and the specs now (network options named ``NetworkSpecs.<key>``)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in RESULT_NEUTRAL_KEYS:
            continue
        # a key missing from specs saved by an earlier version means its default, which it then had
        unset = TOP_KEYS[key].default if key in TOP_KEYS and TOP_KEYS[key].has_default else "(not set)"
        old, new = saved.get(key, unset), current.get(key, unset)
        if key == "NetworkSpecs" and isinstance(old, dict) and isinstance(new, dict):
            out += [(f"NetworkSpecs.{k}", a, b) for k, a, b in changed_keys(old, new)]
        elif json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            out.append((key, old, new))
    return out


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
            refuse_unknown_key(path, key, known, "")
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
    for key, (why, worth_saying) in UNUSED_KEYS.items():
        if key in raw and worth_saying(raw[key]):
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
            refuse_unknown_key(path, f"NetworkSpecs.{key}", [f"NetworkSpecs.{k}" for k in known], "")
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
                refuse_unknown_key(path, f"{key}[{i}].{name}", [f"{key}[{i}].{n}" for n in needed],
                         f" (a \"{kind}\" schedule takes " + ", ".join(needed) + ")")


def load(experiment_dir: str | Path, command: str) -> dict:
    """Read and validate ``<experiment_dir>/specs.json`` for ``command`` ("train" or "test")."""
    path = Path(experiment_dir) / "specs.json"
    if not Path(experiment_dir).is_dir():
        raise UserError(f"{experiment_dir}: experiment folder not found")
    return validate(read_json(path), path, command)


def save(specs: dict, path: str | Path) -> None:
    """Write resolved specs as indented JSON (atomically)."""
    atomic_write_text(Path(path), json.dumps(specs, indent=2) + "\n")
