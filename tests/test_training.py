"""Training per docs/method.md §4: schedules, regularisation, the optimiser switch, checkpoints, resume, Ctrl-C."""

from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import scipy.io
import torch

from autodecoder.training import loop as training
from autodecoder.experiment import workspace as ws
from autodecoder.training.data import TrainingSet
from autodecoder.training import schedules, state
from autodecoder.model.reference import reference_loss
from autodecoder.training.schedules import schedule
from autodecoder.experiment.specs import validate
from conftest import tiny_specs


def resolved(**overrides) -> dict:
    return validate(tiny_specs(ws.Path("d"), **overrides), ws.Path("specs.json"), "train")


STEP = {"Type": "Step", "Initial": 1e-3, "Interval": 350, "Factor": 0.5}


def test_schedules_by_hand():
    step = schedule(STEP)
    assert step(1) == 1e-3 and step(349) == 1e-3
    assert step(350) == 5e-4 and step(700) == 2.5e-4 and step(1049) == 2.5e-4
    warm = schedule({"Type": "Warmup", "Initial": 1e-4, "Final": 1e-3, "Length": 10})
    assert warm(5) == pytest.approx(1e-4 + 0.9e-3 * 0.5) and warm(10) == pytest.approx(1e-3) and warm(50) == 1e-3
    assert schedule({"Type": "Constant", "Value": 3e-4})(123) == 3e-4


def test_code_regularisation_weights_by_hand():
    no_rot = resolved(OptimizeRot=False, CodeRegularizationLambda=1e-4)
    # λ · min(1, epoch/1000)
    assert schedules.code_regularization_weight(no_rot, 1) == pytest.approx(1e-7)
    assert schedules.code_regularization_weight(no_rot, 500) == pytest.approx(5e-5)
    assert schedules.code_regularization_weight(no_rot, 2000) == pytest.approx(1e-4)
    rot = resolved(OptimizeRot=True, OptRotEpoch=10, CodeRegularizationLambda=1e-4)
    # 1000 · λ / min(1, epoch/100), also after OptRotEpoch
    assert schedules.code_regularization_weight(rot, 1) == pytest.approx(10.0)
    assert schedules.code_regularization_weight(rot, 50) == pytest.approx(0.2)
    assert schedules.code_regularization_weight(rot, 100) == pytest.approx(0.1)
    assert schedules.code_regularization_weight(rot, 300) == pytest.approx(0.1)
    assert schedules.code_regularization_weight(resolved(CodeRegularization=False), 5) == 0.0


def test_code_loss_is_lambda_times_mean_code_norm(tiny_data):
    specs = resolved(OptimizeRot=False, CodeRegularizationLambda=0.5)
    data = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, 0, progress=False)
    decoder, codes, angles = state.init_tables(specs, 0)
    codes = torch.zeros(3, 8)
    codes[0, 0], codes[1, :2] = 3.0, torch.tensor([3.0, 4.0])  # norms 3, 5, 0
    batch = data.batch(torch.tensor([0, 1, 5, 9]), epoch=100)  # sequences 0, 0, 1, 2
    _, code_loss = reference_loss(decoder, codes, angles, batch, None, schedules.code_regularization_weight(specs, 100))
    # S/n = (3 + 3 + 5 + 0)/4 per point; weight 0.5 · 100/1000
    assert code_loss.item() == pytest.approx(0.05 * 11 / 4)


def test_learning_rates_per_group_and_switch():
    specs = resolved(OptimizeRot=True, OptRotEpoch=10,
                     LearningRateSchedule=[dict(STEP, Initial=1e-4), dict(STEP, Initial=1e-3), dict(STEP, Initial=2e-3)])
    dec, code, ang = schedules.learning_rates(specs, 1)
    assert (dec, code, ang) == pytest.approx((1e-4, 1e-2, 2e-3))  # codes ×10 with OptimizeRot
    assert schedules.learning_rates(specs, 350) == pytest.approx((5e-5, 5e-3, 1e-3))
    assert schedules.rotation_phase(specs, 10) and not schedules.rotation_phase(specs, 11)
    no_rot = resolved(OptimizeRot=False, LearningRateSchedule=[dict(STEP, Initial=1e-4), dict(STEP, Initial=1e-3),
                                                               dict(STEP, Initial=2e-3)])
    assert schedules.learning_rates(no_rot, 1) == pytest.approx((1e-4, 1e-3, 2e-3))
    assert not schedules.rotation_phase(no_rot, 1)


def _train(exp, **kw):
    return training.train(exp, device="cpu", progress=False, log=lambda s: None, **kw)


@pytest.mark.slow
def test_run_writes_original_layout_and_switches_optimiser(tiny_experiment):
    exp = tiny_experiment(NumEpochs=4, OptRotEpoch=2, LogFrequency=2)
    assert _train(exp, seed=3) == 0
    for e in (2, 4):
        ck = torch.load(ws.model_file(exp, e), weights_only=True)
        assert ck["epoch"] == e and all(k.startswith("module.") for k in ck["model_state_dict"])
        codes = scipy.io.loadmat(ws.codes_file(exp, e))["lat_vecs"]
        angles = scipy.io.loadmat(ws.angles_file(exp, e))["rot_ang"]
        assert codes.shape == (3, 8) and codes.dtype == np.float32 and angles.shape == (3, 3)
    a2 = scipy.io.loadmat(ws.angles_file(exp, 2))["rot_ang"]
    a4 = scipy.io.loadmat(ws.angles_file(exp, 4))["rot_ang"]
    assert np.abs(a2).max() > 0  # learned, non-zero
    assert np.array_equal(a2, a4)  # frozen after OptRotEpoch
    c2, c4 = (scipy.io.loadmat(ws.codes_file(exp, e))["lat_vecs"] for e in (2, 4))
    assert not np.array_equal(c2, c4)
    st = torch.load(ws.latest_file(exp), weights_only=True)
    batches = math.ceil(12 / 4)
    assert st["opt_first"]["state"][0]["step"] == 2 * batches  # epochs 1-2
    assert st["opt_second"]["state"][0]["step"] == 2 * batches  # epochs 3-4
    lrs = [g["lr"] for g in st["opt_second"]["param_groups"]]
    assert lrs == pytest.approx([5e-4 * 0.5 ** 2, 1e-3 * 10])  # Step at epoch 4; codes ×10
    assert len(list(exp.glob("*_train_log.txt"))) == 1
    log = next(exp.glob("*_train_log.txt")).read_text().splitlines()
    assert log[-1].startswith("epoch 4 / 4, SDF loss ") and ", time " in log[-1]
    assert ws.loss_plot_file(exp).stat().st_size > 1000
    assert (ws.resolved_specs_file(exp)).is_file()


@pytest.mark.slow
def test_without_rotation_angles_stay_zero(tiny_experiment):
    exp = tiny_experiment(NumEpochs=2, OptimizeRot=False, OptRotEpoch=0)
    assert _train(exp, seed=1) == 0
    assert np.all(scipy.io.loadmat(ws.angles_file(exp, 2))["rot_ang"] == 0)


def _final_state(exp, epoch):
    ck = torch.load(ws.model_file(exp, epoch), weights_only=True)["model_state_dict"]
    return ck, scipy.io.loadmat(ws.codes_file(exp, epoch))["lat_vecs"], scipy.io.loadmat(ws.angles_file(exp, epoch))["rot_ang"]


def _assert_same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        assert torch.allclose(a[0][k], b[0][k], atol=1e-6, rtol=0), k
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    np.testing.assert_allclose(a[2], b[2], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("stop_after_batches", [4, 6], ids=["mid-epoch", "epoch-end"])
def test_ctrl_c_then_resume_equals_uninterrupted(tiny_experiment, monkeypatch, stop_after_batches):
    overrides = dict(NumEpochs=4, OptRotEpoch=2, LogFrequency=1, OnTheFlySampling=True,
                     NetworkSpecs={"dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": True,
                                   "dropout": [0, 1], "dropout_prob": 0.1})  # dropout: the RNG state matters
    ref = tiny_experiment("ref", **overrides)
    assert _train(ref, seed=11) == 0
    exp = tiny_experiment("cut", **overrides)
    calls = {"n": 0}
    original = TrainingSet.batch

    def batch_then_interrupt(self, items, epoch):
        calls["n"] += 1
        if calls["n"] == stop_after_batches:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during this batch
        return original(self, items, epoch)

    monkeypatch.setattr(TrainingSet, "batch", batch_then_interrupt)
    assert _train(exp, seed=11) == 130
    monkeypatch.setattr(TrainingSet, "batch", original)
    st = torch.load(ws.latest_file(exp), weights_only=True)
    if stop_after_batches == 4:
        assert (st["next_epoch"], st["next_batch"]) == (2, 1)  # the batch in progress was finished
    else:
        assert (st["next_epoch"], st["next_batch"]) == (3, 0)
    assert _train(exp, resume="latest") == 0
    _assert_same(_final_state(ref, 4), _final_state(exp, 4))


@pytest.mark.slow
def test_resume_from_original_checkpoint_restarts_optimisers(tiny_experiment):
    exp = tiny_experiment(NumEpochs=2, LogFrequency=1)
    assert _train(exp, seed=5) == 0
    ws.latest_file(exp).unlink()  # as the original leaves it: no optimiser state
    before = _final_state(exp, 2)
    exp_specs = exp / "specs.json"
    exp_specs.write_text(exp_specs.read_text().replace('"NumEpochs": 2', '"NumEpochs": 3'))
    messages = []
    assert training.train(exp, device="cpu", progress=False, log=messages.append, resume="2") == 0
    assert any("optimisers restart" in m for m in messages)
    after = _final_state(exp, 3)
    assert not np.array_equal(before[1], after[1])
    assert _final_state(exp, 2)[1].tolist() == before[1].tolist()  # epoch 2 files untouched


@pytest.mark.slow
def test_resume_with_other_seed_is_refused(tiny_experiment):
    from autodecoder.experiment.errors import UserError
    exp = tiny_experiment(NumEpochs=1)
    assert _train(exp, seed=5) == 0
    with pytest.raises(UserError, match="differs from the seed 5"):
        _train(exp, seed=6, resume="latest")


@pytest.mark.slow
def test_same_seed_same_result(tiny_experiment):
    a, b = tiny_experiment("a", NumEpochs=2), tiny_experiment("b", NumEpochs=2)
    assert _train(a, seed=2) == 0 and _train(b, seed=2) == 0
    _assert_same(_final_state(a, 2), _final_state(b, 2))


@pytest.mark.slow
def test_trains_on_mat_files_and_reads_v73(tmp_path, tiny_experiment):
    """MAT v5 files hold (T, X, Y, Z) directly; MAT v7.3 files are HDF5 stored MATLAB-style."""
    import h5py
    from autodecoder.io.sequences import read_sequence
    from conftest import sphere_sdf_sequence
    data = tmp_path / "matdata"
    data.mkdir()
    seqs = [sphere_sdf_sequence((12, 10, 8), n, 0.4, 0.2) for n in (3, 2, 4)]
    scipy.io.savemat(data / "a.mat", {"sdf_vid": seqs[0]})
    scipy.io.savemat(data / "b.mat", {"sdf_vid": seqs[1]})
    with h5py.File(data / "c.mat", "w") as f:  # what MATLAB's save -v7.3 writes
        f.create_dataset("sdf_vid", data=seqs[2].transpose(3, 2, 1, 0))
    for name, ref in zip("abc", seqs):
        assert np.array_equal(read_sequence(data / f"{name}.mat"), ref)
    exp = tiny_experiment("mat", DataSource=str(data), UseHDF5=False, NumEpochs=1)
    assert _train(exp, seed=0) == 0
    assert scipy.io.loadmat(ws.codes_file(exp, 1))["lat_vecs"].shape == (3, 8)


@pytest.mark.slow
def test_cli_ctrl_c_exits_130_and_keeps_a_resumable_checkpoint(tiny_experiment):
    import subprocess
    import sys
    import time
    from conftest import ROOT
    exp = tiny_experiment("sigint", NumEpochs=10000, LogFrequency=5000)
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-x", str(exp), "--seed", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.time() + 120
    while time.time() < deadline and not ws.latest_file(exp).is_file():  # first epoch done
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with --continue latest" in out + err
    assert "Traceback" not in err
    st = torch.load(ws.latest_file(exp), weights_only=True)
    assert st["completed_epoch"] >= 1
    assert not list(exp.glob("model_parameters/.*tmp*"))  # no partial file left behind
