"""Initial rotations from principal axes (autodecoder/training/alignment.py): a known pose recovered,
the angles training starts from and keeps, a bad value refused."""

from __future__ import annotations


import numpy as np
import pytest
import roma
import scipy.io
import torch

from autodecoder.decoding import latent
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import axis_coords
from autodecoder.training import alignment
from autodecoder.training import loop as training


def _egg(rot: np.ndarray, n: int = 48) -> np.ndarray:
    """An ellipsoid (semi-axes 0.6, 0.4, 0.22 along its own x, y, z) with a knob at its +x end and one
    at its +y side, posed so that its own coordinates are ``c = xyz @ rot``: a signed SDF-like
    float32 (X, Y, Z), negative inside."""
    g = axis_coords(n)
    xyz = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    c = xyz @ rot
    body = np.sqrt((c[:, 0] / 0.6) ** 2 + (c[:, 1] / 0.4) ** 2 + (c[:, 2] / 0.22) ** 2) - 1
    knob_x = np.linalg.norm(c - [0.62, 0, 0], axis=1) / 0.12 - 1
    knob_y = np.linalg.norm(c - [0, 0.42, 0], axis=1) / 0.1 - 1
    return np.minimum(body, np.minimum(knob_x, knob_y)).reshape(n, n, n).astype(np.float32)


def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (roma.euler_to_rotmat("XYZ", torch.as_tensor(v, dtype=torch.float64)) for v in (a, b))
    return float(roma.rotmat_geodesic_distance(ra, rb))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_principal_axes_recover_the_pose_of_an_asymmetric_ellipsoid(seed):
    truth = latent.uniform_rotations(1, np.random.default_rng(seed))[0]
    rot = roma.euler_to_rotmat("XYZ", torch.as_tensor(truth, dtype=torch.float64)).numpy()
    found = alignment.principal_axes_angles(_egg(rot))
    # the axes and their signs (the knobs' side), within the voxelisation's error
    assert _angle_between(found, truth) < np.radians(3)
    # the same as a one-frame sequence, and as two frames of it
    sdf = _egg(rot)
    assert np.allclose(alignment.principal_axes_angles(sdf[None]), found, atol=1e-6)
    assert np.allclose(alignment.principal_axes_angles(np.stack([sdf, sdf])), found, atol=1e-5)


def test_aligned_pose_puts_the_longest_axis_on_x():
    rot = roma.euler_to_rotmat("XYZ", torch.tensor([0.7, -0.4, 1.9], dtype=torch.float64)).numpy()
    sdf = _egg(rot)
    r = roma.euler_to_rotmat("XYZ", torch.as_tensor(alignment.principal_axes_angles(sdf), dtype=torch.float64)).numpy()
    g = axis_coords(sdf.shape[0])
    inside = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1)[sdf <= 0]
    c = inside @ r
    var = c.var(axis=0)
    assert var[0] > var[1] > var[2]
    assert np.abs(np.cov(c.T) - np.diag(var)).max() < 0.01 * var[2]  # decorrelated


@pytest.mark.slow
def test_training_starts_from_and_keeps_the_principal_axes(tiny_experiment, tiny_data):
    exp = tiny_experiment(NumEpochs=2, OptimizeRot=False, OptRotEpoch=0, InitialRotations="principal_axes")
    assert training.train(exp, device="cpu", seed=1, progress=False, log=lambda s: None) == 0
    files = sorted(tiny_data.glob("*.h5"))
    learned = scipy.io.loadmat(ws.angles_file(exp, 2))["rot_ang"]
    assert np.array_equal(learned, alignment.initial_angles(files).numpy())  # not learned: kept as started
    assert np.abs(learned).max() > 0


def test_an_unknown_initial_rotation_is_refused_in_one_line(tiny_experiment):
    exp = tiny_experiment(InitialRotations="pca")
    with pytest.raises(UserError) as e:
        training.train(exp, device="cpu", seed=1, progress=False, log=lambda s: None)
    msg = str(e.value)
    assert "InitialRotations" in msg and "principal_axes" in msg and "\n" not in msg


def test_a_file_without_a_cell_is_named(tmp_path):
    from conftest import write_h5
    path = tmp_path / "empty.h5"
    write_h5(path, np.ones((2, 8, 8, 8), np.float32))
    with pytest.raises(UserError, match="empty.h5"):
        alignment.initial_angles([path])


def test_a_fit_starts_at_its_targets_principal_axes(tiny_data):
    from autodecoder.decoding.fitting import fit_code
    from autodecoder.training.state import init_tables
    from test_training import resolved
    target = sorted(tiny_data.glob("*.h5"))[1]
    for how, expected in (("principal_axes", alignment.initial_angles([target])[0].numpy()), ("random", np.zeros(3))):
        specs = resolved(InitialRotations=how)
        decoder, _, _ = init_tables(specs, 0)
        fit = fit_code(decoder, np.zeros(specs["CodeLength"], np.float32), specs, target, iterations=0,
                       progress=False, log=lambda s: None)
        assert np.array_equal(fit.angles, expected)


def test_a_run_saved_before_the_key_existed_resumes_as_random():
    from autodecoder.experiment.specs import changed_keys
    from test_training import resolved
    now = resolved()
    before = {k: v for k, v in now.items() if k != "InitialRotations"}  # specs saved by an earlier version
    assert now["InitialRotations"] == "random" and changed_keys(before, now) == []
    assert changed_keys(before, {**now, "InitialRotations": "principal_axes"}) == [
        ("InitialRotations", "random", "principal_axes")]
