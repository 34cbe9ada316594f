"""test.py: reconstruct / generate / generate_filo, output layouts, provenance, seeds, streaming."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from autodecoder.decoding.types import plan
from autodecoder.decoding import run as generation
from autodecoder.experiment import workspace as ws
from autodecoder.io.sequences import read_provenance, read_sequence
from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    from conftest import trained_spheres
    return trained_spheres(tmp_path_factory.mktemp("gen"), [0.3, 0.4, 0.5], (16, 14, 12), 4, 0.1, NumEpochs=2)


def _run(exp, kind, **kw):
    return generation.run(exp, kind, epoch=kw.pop("epoch", "latest"), device="cpu", progress=False,
                          log=lambda s: None, **kw)


def test_reconstruct_non_cubic_any_frames_with_provenance(trained_dir, tmp_path):
    files = _run(trained_dir, "reconstruct", out_dir=tmp_path / "rec", seed=4)
    angles = torch.load(ws.latest_file(trained_dir), weights_only=True)["angles"].numpy()
    assert [f.name for f in files] == [ws.output_name("reconstruct", i, angles[i], "h5") for i in range(3)]
    assert files[0].name.startswith("rec_seq_000_rot_")
    sdf = read_sequence(files[1])
    assert sdf.shape == (3, 10, 9, 8)  # ReconstructionFramesPerSequence × ReconstructionDims
    with h5py.File(files[1]) as f:
        assert f["sdf_vid"].shape == (8, 9, 10, 3) and f["sdf_vid"].chunks == (8, 9, 10, 1)
    prov = read_provenance(files[1])
    assert prov["type"] == "reconstruct" and prov["sequence_index"] == 1 and prov["seed"] == 4
    assert prov["epoch"] == 2 and np.allclose(prov["rotation_angles"], angles[1])
    assert prov["autodecoder_version"]


def test_generate_is_reproducible_with_seed(trained_dir, tmp_path):
    a = _run(trained_dir, "generate", out_dir=tmp_path / "a", seed=7)
    b = _run(trained_dir, "generate", out_dir=tmp_path / "b", seed=7)
    c = _run(trained_dir, "generate", out_dir=tmp_path / "c", seed=8)
    assert [f.name for f in a] == [f.name for f in b] != [f.name for f in c]
    assert len(a) == 3 and a[0].name.startswith("gen_seq_000_rot_")
    assert np.array_equal(read_sequence(a[2]), read_sequence(b[2]))
    angles = np.array([read_provenance(f)["rotation_angles"] for f in a])
    assert np.all(np.abs(angles) <= math.pi)


def test_generate_draws_by_the_original_rules():
    codes = np.arange(12, dtype=np.float32).reshape(4, 3) * 10
    gen = plan("generate", codes, np.zeros((4, 3), np.float32), num_sequences=500, seed=1)
    new = np.stack([j.code for j in gen])
    assert new.shape == (500, 3)
    assert abs(new.std() - 0.001) < 1e-4 and abs(new.mean()) < 2e-4  # N(0, 0.001²)
    rot = np.stack([j.angles for j in gen])
    assert rot.min() >= -math.pi and rot.max() <= math.pi and rot.std() > 1.5  # U(-π, π): std π/√3 ≈ 1.81
    filo = plan("generate_filo", codes, np.zeros((4, 3), np.float32), num_sequences=9, seed=1)
    assert len(filo) == 4  # one per learned code, not NumSequences
    picked = [int(j.origin.split()[2]) for j in filo]
    assert sorted(picked) == [0, 1, 2, 3]
    for j, p in zip(filo, picked):
        assert np.abs(j.code - codes[p]).max() < 1e-3  # learned code + N(0, 1e-4²) noise
        assert not np.array_equal(j.code, codes[p])


def test_mat_output(trained_dir, tmp_path):
    specs = json.loads((trained_dir / "specs.json").read_text())
    specs["UseHDF5"] = False
    (trained_dir / "specs.json").write_text(json.dumps(specs))
    try:
        files = _run(trained_dir, "generate_filo", out_dir=tmp_path / "m", seed=1)
    finally:
        specs["UseHDF5"] = True
        (trained_dir / "specs.json").write_text(json.dumps(specs))
    assert files[0].suffix == ".mat"
    arr = scipy.io.loadmat(files[0])["sdf_vid"]
    assert arr.shape == (3, 10, 9, 8) and arr.dtype == np.float32  # (T, X, Y, Z) directly
    assert read_provenance(files[0])["type"] == "generate_filo"


def test_cli_epoch_and_out(trained_dir, tmp_path):
    res = run_cli("test.py", "-x", trained_dir, "-t", "generate", "-e", "2", "--seed", "3", "--out", tmp_path / "o",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "o").glob("gen_seq_*.h5"))) == 3
    assert not (trained_dir / ws.OUT_DIRS["generate"]).exists()


_PEAK = """
import json, resource, sys, torch
from pathlib import Path
from autodecoder.decoding import run as generation
from autodecoder.experiment import workspace as ws
from autodecoder.model.decoder import Decoder
exp = Path(sys.argv[1]); frames = int(sys.argv[2])
specs = json.loads((exp / "specs.json").read_text())
specs["ReconstructionDims"] = [96, 96, 96]; specs["ReconstructionFramesPerSequence"] = frames
specs["ReconstructionSubsetSize"] = 65536
(exp / "specs.json").write_text(json.dumps(specs))
generation.run(exp, "generate", epoch="latest", device="cpu", seed=0, progress=False, log=lambda s: None,
               out_dir=exp / f"out{frames}")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_peak_memory_does_not_grow_with_frames(trained_dir, tmp_path):
    import shutil
    peaks = {}
    for frames in (4, 24):
        exp = tmp_path / f"e{frames}"
        shutil.copytree(trained_dir, exp, ignore=shutil.ignore_patterns("OUT_*"))
        specs = json.loads((exp / "specs.json").read_text())
        specs["NumSequences"] = 1
        (exp / "specs.json").write_text(json.dumps(specs))
        out = subprocess.run([sys.executable, "-c", _PEAK, str(exp), str(frames)], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        peaks[frames] = int(out.stdout.split()[-1]) / 1024  # MiB
    # holding the frames of 96³ float32 would add 20 × 3.4 MiB = 68 MiB (the first few
    # frames warm up the allocators, hence 4, not 1, as the base)
    assert peaks[24] - peaks[4] < 20, peaks
