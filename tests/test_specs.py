"""specs.json validation: required keys per command, types and ranges, typos, legacy keys."""

from __future__ import annotations

import copy
import json
import warnings

import pytest

from autodecoder.experiment import specs as S
from autodecoder.experiment.errors import UserError
from conftest import REFERENCE, tiny_specs


def _validate(raw, command="train"):
    return S.validate(raw, S.Path("exp/specs.json"), command)


def _error(raw, command="train") -> str:
    with pytest.raises(UserError) as e:
        _validate(raw, command)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("exp/specs.json: ")
    return msg


def test_reference_specs_valid_for_both_commands():
    raw = json.loads((REFERENCE / "specs.json").read_text())
    for command in ("train", "test"):
        specs = _validate(raw, command)
        # defaults only where the original had them
        assert specs["CodeInitStdDev"] == 1.0 and specs["GradientClipNorm"] is None
        assert specs["NetworkSpecs"]["use_sine"] is True
        assert specs["NetworkSpecs"]["dropout"] == []


def test_defaults_filled():
    raw = tiny_specs(S.Path("d"))
    specs = _validate(raw)
    assert specs["CodeRegularization"] is True
    assert specs["CodeRegularizationLambda"] == 1e-4
    assert specs["LogFrequency"] == 2  # given
    del raw["LogFrequency"]
    assert _validate(raw)["LogFrequency"] == 1
    assert _validate(raw)["DataLoaderThreads"] == 1


@pytest.mark.parametrize("key", ["NumEpochs", "LearningRateSchedule", "TrainSampleFraction", "FramesPerBatch",
                                 "OnTheFlySampling", "ClampSDFminmax", "OptimizeRot", "DataSource"])
def test_training_key_required_for_train_only(key):
    raw = tiny_specs(S.Path("d"))
    del raw[key]
    msg = _error(raw, "train")
    assert f'"{key}"' in msg and "required for training" in msg
    _validate(raw, "test")  # test.py does not need it


@pytest.mark.parametrize("key", ["ReconstructionDims", "ReconstructionFramesPerSequence",
                                 "ReconstructionSubsetSize", "HDF5CompressionLevel"])
def test_reconstruction_key_required_for_test_only(key):
    raw = tiny_specs(S.Path("d"))
    del raw[key]
    assert f'"{key}"' in _error(raw, "test")
    _validate(raw, "train")


@pytest.mark.parametrize("key,value,expected", [
    ("NumEpochs", "10", "an integer >= 1"),
    ("NumEpochs", 0, "an integer >= 1"),
    ("NumEpochs", True, "an integer >= 1"),
    ("TrainSampleFraction", 1.5, "a number in (0, 1]"),
    ("UseHDF5", "yes", "true or false"),
    ("HDF5CompressionLevel", 10, "an integer from 0 to 9"),
    ("ReconstructionDims", [64, 64], "a list of three positive integers"),
    ("ClampingDistance", -0.1, "a number > 0"),
    ("GradientClipNorm", 0, "null or a number > 0"),
])
def test_bad_values_name_key_and_expectation(key, value, expected):
    raw = tiny_specs(S.Path("d"))
    raw[key] = value
    msg = _error(raw, "train" if key != "ReconstructionDims" else "test")
    assert f'"{key}"' in msg and expected in msg and json.dumps(value) in msg


def test_unknown_key_did_you_mean():
    raw = tiny_specs(S.Path("d"))
    raw["NumEpoch"] = 3
    msg = _error(raw)
    assert 'unknown key "NumEpoch"' in msg and 'did you mean "NumEpochs"' in msg


def test_unknown_network_key_did_you_mean():
    raw = tiny_specs(S.Path("d"))
    raw["NetworkSpecs"]["latent_inn"] = [2]
    msg = _error(raw)
    assert "NetworkSpecs.latent_inn" in msg and 'did you mean "NetworkSpecs.latent_in"' in msg


def test_legacy_keys_accepted_and_reported():
    raw = tiny_specs(S.Path("d"))
    raw["SampleFraction"] = 0.1
    raw["ScenesPerBatch"] = 4
    raw["NetworkSpecs"]["positional_encoding"] = False
    raw["NetworkSpecs"]["fourier_degree"] = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        specs = _validate(raw)
    text = " | ".join(str(w.message) for w in caught)
    for key in ("SampleFraction", "ScenesPerBatch", "positional_encoding", "fourier_degree"):
        assert key in text and "ignored" in text
    assert "SampleFraction" not in specs and "positional_encoding" not in specs["NetworkSpecs"]


def test_keys_without_effect_get_a_one_line_warning():
    raw = tiny_specs(S.Path("d"))
    raw["DataLoaderThreads"] = 4
    raw["CodeBound"] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _validate(raw)
    text = [str(w.message) for w in caught]
    assert any('"DataLoaderThreads" has no effect' in m for m in text)
    assert any('"CodeBound" is read but unused' in m for m in text)
    assert all("\n" not in m for m in text)


@pytest.mark.parametrize("sched,expected", [
    ([{"Type": "Step", "Initial": 1e-3, "Interval": 10, "Factor": 0.5}] * 2, "a list of three schedules"),
    ([{"Type": "Linear", "Initial": 1e-3}] * 3, "LearningRateSchedule[0].Type"),
    ([{"Type": "Step", "Initial": 1e-3, "Interval": 10}] * 3, "LearningRateSchedule[0].Factor"),
    ([{"Type": "Constant", "Value": 1e-3}, {"Type": "Warmup", "Initial": 0, "Final": 1e-3, "Lenght": 3},
      {"Type": "Constant", "Value": 1e-3}], "LearningRateSchedule[1]"),
])
def test_bad_schedules(sched, expected):
    raw = tiny_specs(S.Path("d"))
    raw["LearningRateSchedule"] = sched
    assert expected in _error(raw)


def test_network_shape_inconsistency_is_reported():
    raw = tiny_specs(S.Path("d"))
    raw["NetworkSpecs"]["dims"] = [32, 10, 32]  # layer 2 reads the input: dims[1] must exceed 8 + 4
    msg = _error(raw)
    assert "NetworkSpecs.dims" in msg and "CodeLength + 4 = 12" in msg
    raw = copy.deepcopy(tiny_specs(S.Path("d")))
    raw["NetworkSpecs"]["latent_in"] = [7]
    assert "layer indices below 4" in _error(raw)


def test_invalid_json_is_one_line(tmp_path):
    (tmp_path / "specs.json").write_text('{"NumEpochs": 3,}')
    with pytest.raises(UserError) as e:
        S.load(tmp_path, "train")
    assert "not valid JSON" in str(e.value) and "line 1" in str(e.value)
