"""Shared helpers: small synthetic data sets and experiments, and running the CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "reference_experiment"
MATLAB_LAYOUT = DATA / "sdf_matlab_layout"


def run_cli(script: str, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python <script> args…`` from the repository root, capturing text output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def sphere_sdf_sequence(grid: tuple[int, int, int], frames: int, radius0: float, growth: float,
                        centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """An analytic growing sphere: float32 (T, X, Y, Z), |p - c| - r(t) in grid units [-1, 1]."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in grid]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    out = []
    for t in range(frames):
        r = radius0 + growth * t / max(frames - 1, 1)
        out.append(np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) - r)
    return np.stack(out).astype(np.float32)


def write_h5(path: Path, sdf: np.ndarray) -> None:
    """Write (T, X, Y, Z) in the original's HDF5 layout, independently of the package's writer."""
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("sdf_vid", data=np.ascontiguousarray(sdf.transpose(3, 2, 1, 0)))


def tiny_specs(data_dir: Path, **overrides) -> dict:
    """Specs of a small, fast experiment on ``data_dir``."""
    specs = {
        "Description": ["tiny test experiment"],
        "DataSource": str(data_dir),
        "NetworkSpecs": {"dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": True},
        "CodeLength": 8,
        "NumEpochs": 4,
        "LearningRateSchedule": [{"Type": "Step", "Initial": 5e-4, "Interval": 2, "Factor": 0.5},
                                 {"Type": "Constant", "Value": 1e-3},
                                 {"Type": "Warmup", "Initial": 1e-4, "Final": 1e-3, "Length": 3}],
        "TrainSampleFraction": 0.05,
        "NumSequences": 3,
        "OptimizeRot": True,
        "OptRotEpoch": 2,
        "ClampSDFminmax": False,
        "ClampingDistance": 0.1,
        "FramesPerBatch": 4,
        "OnTheFlySampling": False,
        "UseHDF5": True,
        "HDF5CompressionLevel": 1,
        "LogFrequency": 2,
        "ReconstructionDims": [10, 9, 8],
        "ReconstructionSubsetSize": 100,
        "ReconstructionFramesPerSequence": 3,
    }
    specs.update(overrides)
    return specs


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Three small sphere sequences (16×14×12 grid; 5, 4 and 3 frames) in the HDF5 layout."""
    d = tmp_path / "data"
    for i, (frames, r) in enumerate([(5, 0.3), (4, 0.4), (3, 0.5)]):
        write_h5(d / f"seq_{i:03d}.h5", sphere_sdf_sequence((16, 14, 12), frames, r, 0.2, (0.1 * i, 0, 0)))
    return d



def trained_spheres(root: Path, radii, grid: tuple[int, int, int], frames: int, growth: float,
                    **overrides) -> Path:
    """Train a tiny experiment (seed 0) on growing spheres, one sequence per radius; return its folder.

    Data go to ``<root>/data/s<i>.h5``, the experiment to ``<root>/exp``
    (:func:`tiny_specs` with ``NumSequences`` = the number of radii and ``overrides``).
    """
    from autodecoder.training import loop as training
    for i, r in enumerate(radii):
        write_h5(root / "data" / f"s{i}.h5", sphere_sdf_sequence(grid, frames, r, growth))
    exp = root / "exp"
    exp.mkdir()
    specs = tiny_specs(root / "data", **{"NumSequences": len(radii), **overrides})
    (exp / "specs.json").write_text(json.dumps(specs))
    assert training.train(exp, device="cpu", seed=0, progress=False, log=lambda s: None) == 0
    return exp

@pytest.fixture
def tiny_experiment(tmp_path: Path, tiny_data: Path):
    """A factory: ``tiny_experiment(**overrides)`` writes specs.json and returns the experiment folder."""
    def make(name: str = "exp", **overrides) -> Path:
        exp = tmp_path / name
        exp.mkdir(exist_ok=True)
        (exp / "specs.json").write_text(json.dumps(tiny_specs(tiny_data, **overrides), indent=2))
        return exp
    return make
