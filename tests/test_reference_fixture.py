"""The original's checkpoint loads here and reconstructs what the original wrote (≤ 1e-5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REFERENCE, run_cli

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes

EXPECTED = sorted(p.name for p in (REFERENCE / "OUT_reconstruct").glob("*.h5"))


def _copy_reference(tmp_path: Path, no_epoch_layout: bool) -> Path:
    exp = tmp_path / "reference"
    shutil.copytree(REFERENCE, exp, ignore=shutil.ignore_patterns("OUT_reconstruct"))
    if no_epoch_layout:
        (exp / "model_parameters" / "e0010_model.pth").rename(exp / "model_parameters" / "model.pth")
        (exp / "latent_codes" / "e0010_lat_vecs.mat").rename(exp / "latent_codes" / "lat_vecs.mat")
        (exp / "latent_codes" / "e0010_rot_angs.mat").rename(exp / "latent_codes" / "rot_angs.mat")
    return exp


@pytest.mark.parametrize("no_epoch_layout", [False, True], ids=["-e 10", "no-epoch layout"])
def test_reconstruct_matches_original(tmp_path, no_epoch_layout):
    exp = _copy_reference(tmp_path, no_epoch_layout)
    args = ["-x", exp, "-t", "reconstruct", "--device", "cpu", "--no-progress"]
    if not no_epoch_layout:
        args += ["-e", "10"]
    res = run_cli("test.py", *args)
    assert res.returncode == 0, res.stderr
    out = exp / "OUT_reconstruct"
    assert sorted(p.name for p in out.iterdir()) == EXPECTED
    assert len(EXPECTED) == 6
    for name in EXPECTED:
        with h5py.File(REFERENCE / "OUT_reconstruct" / name) as ref, h5py.File(out / name) as got:
            a, b = ref["sdf_vid"], got["sdf_vid"]
            assert b.shape == a.shape == (16, 20, 24, 4)  # (Z, Y, X, T) on disk
            assert b.dtype == np.float32
            assert b.chunks == (16, 20, 24, 1)
            assert b.compression == "gzip" and b.compression_opts == 4
            assert np.abs(a[()] - b[()]).max() <= 1e-5
            # provenance is recorded beside, not inside, sdf_vid
            assert got.attrs["type"] == "reconstruct"
            assert got.attrs["epoch"] == 10
            assert list(got.keys()) == ["sdf_vid"]


def test_missing_epoch_lists_available(tmp_path):
    exp = _copy_reference(tmp_path, False)
    res = run_cli("test.py", "-x", exp, "-t", "reconstruct", "-e", "7")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "epoch 7 not found" in lines[0] and "available: 10" in lines[0]
    assert not (exp / "OUT_reconstruct").exists()


def test_unknown_type_lists_types(tmp_path):
    exp = _copy_reference(tmp_path, False)
    res = run_cli("test.py", "-x", exp, "-t", "reconstrct", "-e", "10")
    assert res.returncode == 2
    line = res.stderr.strip()
    assert "\n" not in line and "reconstruct, generate, generate_filo" in line
