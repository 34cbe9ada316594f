"""Every bad input: non-zero exit, one line naming the file/key/value, no traceback, nothing on disk changed."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from autodecoder.training import loop as training
from conftest import run_cli, sphere_sdf_sequence, write_h5

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def trained(tiny_experiment):
    exp = tiny_experiment(NumEpochs=1)
    assert training.train(exp, device="cpu", seed=0, progress=False, log=lambda s: None) == 0
    return exp


def _expect_error(res, *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if not l.startswith("warning:")]
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _break_data(data: Path, case: str) -> str:
    """Damage the data folder; returns the text the message must contain."""
    target = data / "seq_001.h5"
    if case == "no sdf_vid":
        target.unlink()
        with h5py.File(target, "w") as f:
            f.create_dataset("volume", data=np.zeros((4, 4, 4, 2), np.float32))
        return 'seq_001.h5: no dataset "sdf_vid"'
    if case == "wrong rank":
        target.unlink()
        with h5py.File(target, "w") as f:
            f.create_dataset("sdf_vid", data=np.zeros((12, 14, 16), np.float32))
        return "seq_001.h5: \"sdf_vid\" must be 4-D"
    if case == "NaN":
        sdf = sphere_sdf_sequence((16, 14, 12), 4, 0.4, 0.2)
        sdf[2, 3, 3, 3] = np.nan
        write_h5(target, sdf)
        return "seq_001.h5: frame 2 holds NaN or infinite values"
    if case == "other frame size":
        write_h5(target, sphere_sdf_sequence((16, 14, 10), 4, 0.4, 0.2))
        return "seq_001.h5: frames of size (16, 14, 10) but seq_000.h5 has (16, 14, 12)"
    if case == "no data files":
        for p in data.glob("*.h5"):
            p.unlink()
        return "no .h5 data files"
    if case == "NumSequences":
        write_h5(data / "seq_003.h5", sphere_sdf_sequence((16, 14, 12), 2, 0.4, 0.2))
        return 'holds 4 data files but "NumSequences" is 3'
    if case == "not HDF5":
        target.write_bytes(b"not an hdf5 file at all")
        return "seq_001.h5: not an HDF5 or MAT file"
    raise ValueError(case)


@pytest.mark.parametrize("case", ["no sdf_vid", "wrong rank", "NaN", "other frame size", "no data files",
                                  "NumSequences", "not HDF5"])
def test_bad_training_data(trained, tiny_data, case):
    before = _snapshot(trained)
    needle = _break_data(tiny_data, case)
    res = run_cli("train.py", "-x", trained, "--device", "cpu", "--no-progress")
    _expect_error(res, needle)
    assert _snapshot(trained) == before


def _edit_specs(exp: Path, **changes) -> None:
    specs = json.loads((exp / "specs.json").read_text())
    for k, v in changes.items():
        if v is None:
            specs.pop(k)
        else:
            specs[k] = v
    (exp / "specs.json").write_text(json.dumps(specs))


@pytest.mark.parametrize("changes,needle", [
    ({"NumEpochs": "ten"}, 'key "NumEpochs": expected an integer >= 1, got "ten"'),
    ({"FramesPerbatch": 4}, 'did you mean "FramesPerBatch"'),
    ({"TrainSampleFraction": None}, '"TrainSampleFraction"'),
    ({"DataSource": "nowhere/at/all"}, '"DataSource": folder "nowhere/at/all" not found'),
])
def test_bad_specs_for_training(trained, changes, needle):
    _edit_specs(trained, **changes)
    before = _snapshot(trained)
    res = run_cli("train.py", "-x", trained, "--no-progress")
    line = _expect_error(res, needle)
    assert "specs.json" in line
    assert _snapshot(trained) == before


def test_bad_options(trained):
    before = _snapshot(trained)
    _expect_error(run_cli("train.py", "-x", trained, "--continue", "99"), "epoch 99 not found", "available: 1")
    _expect_error(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "abc"), "-e abc")
    _expect_error(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "latest", "--device", "cuda"),
                  "no CUDA GPU")
    _expect_error(run_cli("train.py"), "the following arguments are required: -x")
    _expect_error(run_cli("test.py", "-x", trained.parent / "missing", "-t", "generate"), "experiment folder not found")
    assert _snapshot(trained) == before


def test_damaged_checkpoint_and_tables(trained):
    (trained / "model_parameters" / "e0001_model.pth").write_bytes(b"garbage")
    before = _snapshot(trained)
    _expect_error(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "1"),
                  "e0001_model.pth: not a readable PyTorch checkpoint")
    _edit_specs(trained, CodeLength=9)
    _expect_error(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "latest"),
                  "does not match \"CodeLength\"/\"NetworkSpecs\"")
    assert not (trained / "OUT_reconstruct").exists()
    assert {k: v for k, v in _snapshot(trained).items() if k != "specs.json"} == \
        {k: v for k, v in before.items() if k != "specs.json"}
