"""Nothing lost, nothing mixed: locks, resume with changed specs, JSON pitfalls, memory estimates, read
errors, SIGTERM, outputs of several models, leftovers, unwritable places, suspicious data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.training import loop as training
from autodecoder.training.state import find_start
from conftest import ROOT, sphere_sdf_sequence, write_h5

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes

HOLD = """
import sys, time
from pathlib import Path
from autodecoder.experiment.guards import hold_lock
with hold_lock(Path(sys.argv[1]), "the test folder", log=lambda s: None):
    print("held", flush=True)
    time.sleep(60)
"""


MAINS = {"train.py": "autodecoder.cli.train", "test.py": "autodecoder.cli.test", "evaluate.py": "autodecoder.cli.evaluate"}


def run_cli(script: str, *args) -> subprocess.CompletedProcess:
    """A command line run in this process (as ``conftest.run_cli`` runs it in a new one, without the seconds
    of starting Python and torch): its exit status and what it printed."""
    import contextlib
    import importlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = importlib.import_module(MAINS[script]).main([str(a) for a in args])
    return subprocess.CompletedProcess([script, *map(str, args)], code, out.getvalue(), err.getvalue())


def _train(exp: Path, **kw) -> int:
    return training.train(exp, device="cpu", progress=False, log=lambda s: None, **kw)


def _one_error_line(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if not l.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@pytest.fixture
def holder():
    """Start a process that holds the lock of a folder; yields a function folder -> the process."""
    procs = []

    def start(folder: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p
    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import trained_spheres
    return trained_spheres(tmp_path_factory.mktemp("rel"), [0.3, 0.45], (16, 14, 12), 3, 0.15, NumEpochs=2)


# --------------------------------------------------------------------------
# 1. locks

def test_second_training_is_refused_and_a_dead_holder_is_taken_over(tiny_experiment, holder):
    exp = tiny_experiment("locked", NumEpochs=1)
    first = holder(exp)
    line = _one_error_line(run_cli("train.py", "-x", exp, "--seed", "0", "--no-progress"))
    assert str(exp) in line and f"process {first.pid}" in line and socket.gethostname() in line
    assert not ws.latest_file(exp).exists()  # the refused run wrote nothing
    first.kill()
    first.wait()
    res = run_cli("train.py", "-x", exp, "--seed", "0", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert f"took over the lock of process {first.pid}" in res.stdout + res.stderr
    assert not (exp / ".lock").exists()


def test_lock_of_another_host_names_it_and_can_be_broken(tiny_experiment):
    exp = tiny_experiment("remote", NumEpochs=1)
    (exp / ".lock").write_text(json.dumps({"pid": 4242, "host": "node17", "start_epoch": time.time() - 7200,
                                           "start": "two hours ago", "token": "x"}))
    line = _one_error_line(run_cli("train.py", "-x", exp, "--seed", "0", "--no-progress"))
    assert "node17" in line and "2 h" in line and "--break-lock" in line
    res = run_cli("train.py", "-x", exp, "--seed", "0", "--no-progress", "--break-lock")
    assert res.returncode == 0, res.stderr


def test_two_runs_into_one_output_folder(trained, holder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    first = holder(out)
    line = _one_error_line(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "latest", "--out", out,
                                   "--no-progress", "--seed", "0"))
    assert str(out) in line and f"process {first.pid}" in line
    assert not list(out.glob("*.h5"))


# --------------------------------------------------------------------------
# 2. resume with changed settings

def test_resume_refuses_changed_training_keys_and_passes_neutral_ones(tiny_experiment):
    exp = tiny_experiment("changed", NumEpochs=1)
    assert _train(exp, seed=3) == 0
    specs = json.loads((exp / "specs.json").read_text())
    specs.update(NumEpochs=2, LogFrequency=1, ReconstructionDims=[8, 8, 8])  # neutral: no word
    (exp / "specs.json").write_text(json.dumps(specs))
    assert _train(exp, resume="latest") == 0
    specs.update(NumEpochs=3, FramesPerBatch=2, TrainSampleFraction=0.1)
    (exp / "specs.json").write_text(json.dumps(specs))
    with pytest.raises(UserError) as e:
        _train(exp, resume="latest")
    msg = str(e.value)
    assert '"FramesPerBatch" 4 → 2' in msg and '"TrainSampleFraction" 0.05 → 0.1' in msg
    assert "--accept-changed-specs" in msg and "NumEpochs" not in msg and "\n" not in msg
    notes = []
    assert training.train(exp, device="cpu", progress=False, log=notes.append, resume="latest",
                          accept_changed_specs=True) == 0
    assert any("going on with changed specs" in n for n in notes)
    assert torch.load(ws.latest_file(exp), weights_only=True)["specs"]["FramesPerBatch"] == 2


def test_accepted_change_restarts_an_interrupted_epoch(tiny_experiment):
    exp = tiny_experiment("midepoch", NumEpochs=2)
    assert _train(exp, seed=3) == 0
    st = torch.load(ws.latest_file(exp), weights_only=True)
    st.update(next_epoch=2, next_batch=2, completed_epoch=1, epoch_sums=[1.0, 0.5, 3.0])
    torch.save(st, ws.latest_file(exp))
    specs = specs_mod.load(exp, "train")
    specs["FramesPerBatch"] = 3
    with pytest.raises(UserError, match="FramesPerBatch"):
        find_start(exp, specs, "latest", None)
    start = find_start(exp, specs, "latest", None, accept_changes=True, log=lambda s: None)
    assert start.state["next_batch"] == 0 and start.state["epoch_sums"] == [0.0, 0.0, 0.0]
    assert start.state["next_epoch"] == 2


# --------------------------------------------------------------------------
# 3. JSON pitfalls

def test_duplicate_key_and_encoding(tiny_experiment):
    exp = tiny_experiment("json")
    text = (exp / "specs.json").read_text()
    (exp / "specs.json").write_text(text.replace('"NumEpochs": 4', '"NumEpochs": 4, "NumEpochs": 9'))
    line = _one_error_line(run_cli("train.py", "-x", exp))
    assert "specs.json" in line and '"NumEpochs" is given twice' in line
    (exp / "specs.json").write_bytes(text.replace("tiny test experiment", "cellule étalée").encode("latin-1"))
    line = _one_error_line(run_cli("train.py", "-x", exp))
    assert "specs.json: not UTF-8" in line
    (exp / "specs.json").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # a byte-order mark is fine
    assert specs_mod.load(exp, "train")["NumEpochs"] == 4


# --------------------------------------------------------------------------
# 4. size before allocation

def test_huge_grid_and_network_are_refused_up_front(trained, tiny_experiment, tmp_path):
    specs = json.loads((trained / "specs.json").read_text())
    huge = trained.parent / "huge"
    huge.mkdir(exist_ok=True)
    for d in ("model_parameters", "latent_codes"):
        os.symlink(trained / d, huge / d) if not (huge / d).exists() else None
    (huge / "specs.json").write_text(json.dumps({**specs, "ReconstructionDims": [6000, 6000, 6000]}))
    t0 = time.time()
    line = _one_error_line(run_cli("test.py", "-x", huge, "-t", "reconstruct", "-e", "latest", "--out",
                                   tmp_path / "o", "--no-progress"))
    assert "needs about" in line and "TiB" in line and "--ignore-memory-check" in line
    assert time.time() - t0 < 30
    big = tiny_experiment("bignet", NetworkSpecs={"dims": [150000, 150000], "latent_in": [], "xyz_in_all": False})
    line = _one_error_line(run_cli("train.py", "-x", big, "--no-progress"))
    assert "training" in line and "GiB" in line and "NetworkSpecs" in line


# --------------------------------------------------------------------------
# 5. read errors name the file

def _corrupt(path: Path) -> None:
    with h5py.File(path, "r") as f:
        offset = f["sdf_vid"].id.get_chunk_info(2).byte_offset  # the compressed bytes of frame 2
    with open(path, "r+b") as fh:
        fh.seek(offset + 8)
        fh.write(b"\x00\xff" * 16)


def test_corrupted_compressed_frame_names_file_and_frame(tiny_experiment, tiny_data):
    target = tiny_data / "seq_000.h5"
    with h5py.File(target, "r") as f:
        sdf = f["sdf_vid"][()]
    target.unlink()
    with h5py.File(target, "w") as f:
        f.create_dataset("sdf_vid", data=sdf, chunks=sdf.shape[:3] + (1,), compression="gzip")
    _corrupt(target)
    exp = tiny_experiment("corrupt", NumEpochs=1)
    line = _one_error_line(run_cli("train.py", "-x", exp, "--no-progress"))
    assert "seq_000.h5: frame 2: cannot read" in line


# --------------------------------------------------------------------------
# 6. SIGTERM is Ctrl-C

def test_sigterm_saves_training_and_stops_test_py_cleanly(tiny_experiment, trained, tmp_path):
    exp = tiny_experiment("term", NumEpochs=10000, LogFrequency=5000)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-x", str(exp), "--seed", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not ws.latest_file(exp).is_file():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resume with --continue latest" in out + err and "Traceback" not in err
    assert torch.load(ws.latest_file(exp), weights_only=True)["completed_epoch"] >= 1
    specs = json.loads((trained / "specs.json").read_text())
    slow = trained.parent / "slowdecode"
    slow.mkdir(exist_ok=True)
    for d in ("model_parameters", "latent_codes"):
        if not (slow / d).exists():
            os.symlink(trained / d, slow / d)
    (slow / "specs.json").write_text(json.dumps({**specs, "ReconstructionDims": [96, 96, 96],
                                                 "ReconstructionFramesPerSequence": 200, "FastPath": False}))
    out_dir = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, str(ROOT / "test.py"), "-x", str(slow), "-t", "reconstruct", "-e",
                             "latest", "--out", str(out_dir), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    while time.time() < deadline + 60 and not list(out_dir.glob(".*tmp*")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not list(out_dir.glob(".*tmp*")) and not list(out_dir.glob("*.h5")) and not (out_dir / ".lock").exists()


# --------------------------------------------------------------------------
# 7 and 8. outputs that cannot be told apart; leftovers

def test_outputs_of_another_epoch_are_refused_unless_replace(trained, tmp_path):
    out = tmp_path / "mixed"
    common = ["-x", trained, "-t", "reconstruct", "--out", out, "--no-progress", "--seed", "0"]
    assert run_cli("test.py", *common, "-e", "2").returncode == 0
    first = sorted(out.glob("*.h5"))
    (out / first[0].stem).mkdir()  # an export folder of the first run
    (out / ".rec_seq_009_rot_0.000_0.000_0.000.h5.tmp999999").write_bytes(b"x" * 1000)  # a killed run's leftover
    line = _one_error_line(run_cli("test.py", *common, "-e", "latest"))
    assert first[0].name in line and ("checkpoint" in line or "epoch" in line)
    assert "--replace" in line and sorted(out.glob("*.h5")) == first
    res = run_cli("test.py", *common, "-e", "latest", "--replace")
    assert res.returncode == 0, res.stderr
    said = res.stdout + res.stderr
    assert "removed 1 stale temporar" in said and "removed 2 earlier output(s)" in said
    assert not (out / first[0].stem).exists() and not list(out.glob(".*tmp*"))
    assert len(list(out.glob("*.h5"))) == 2


# --------------------------------------------------------------------------
# 9. unwritable places

def test_output_folder_under_a_regular_file(trained, tmp_path):
    (tmp_path / "plain_file").write_text("not a folder")
    line = _one_error_line(run_cli("test.py", "-x", trained, "-t", "reconstruct", "-e", "latest", "--out",
                                   tmp_path / "plain_file" / "out", "--no-progress"))
    assert "plain_file" in line and "output folder" in line


# --------------------------------------------------------------------------
# 10. suspicious data

def test_unnormalised_data_refused_and_empty_frames_warned(tiny_experiment, tiny_data):
    sdf = sphere_sdf_sequence((16, 14, 12), 4, 0.4, 0.2)
    sdf[1] = 1e30
    write_h5(tiny_data / "seq_001.h5", sdf)
    exp = tiny_experiment("garbage", NumEpochs=1)
    line = _one_error_line(run_cli("train.py", "-x", exp, "--no-progress"))
    assert "seq_001.h5: frame 1" in line and "1e+30" in line and "not a normalised SDF" in line
    sdf = sphere_sdf_sequence((16, 14, 12), 4, 0.4, 0.2)
    sdf[2] = np.abs(sdf[2]) + 0.01  # nothing inside
    write_h5(tiny_data / "seq_001.h5", sdf)
    res = run_cli("train.py", "-x", exp, "--no-progress", "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert "warning: " in res.stderr and "seq_001.h5: frame(s) 2 have no voxel inside the cell" in res.stderr


def test_malicious_checkpoint_message_gives_no_unsafe_advice(trained, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    exp = tmp_path / "evil"
    exp.mkdir()
    (exp / "specs.json").write_text((trained / "specs.json").read_text())
    (exp / "model_parameters").mkdir()
    torch.save({"epoch": 1, "model_state_dict": Evil()}, exp / "model_parameters" / "e0001_model.pth")
    line = _one_error_line(run_cli("test.py", "-x", exp, "-t", "reconstruct", "-e", "1", "--no-progress"))
    assert "e0001_model.pth" in line and "weights_only" not in line and "never run" in line
    assert not (tmp_path / "pwned").exists()


def test_evaluate_refuses_outputs_of_several_models(trained, tiny_data, tmp_path):
    for epoch, out in (("2", "a"), ("latest", "b")):
        assert run_cli("test.py", "-x", trained, "-t", "generate", "-e", epoch, "--out", tmp_path / out,
                       "--no-progress", "--seed", "0").returncode == 0
    line = _one_error_line(run_cli("evaluate.py", "compare", tiny_data, tmp_path / "a", "--generated",
                                   tmp_path / "b", "--out", tmp_path / "ev", "--no-progress"))
    assert "mixed outputs" in line and "checkpoint" in line
    assert not (tmp_path / "ev").exists()


def test_corrupted_file_named_by_compare_and_fit(trained, tiny_data, tmp_path):
    target = tmp_path / "cell.h5"
    sdf = sphere_sdf_sequence((16, 14, 12), 3, 0.4, 0.1)
    with h5py.File(target, "w") as f:
        f.create_dataset("sdf_vid", data=np.ascontiguousarray(sdf.transpose(3, 2, 1, 0)),
                         chunks=(12, 14, 16, 1), compression="gzip")
    _corrupt(target)
    line = _one_error_line(run_cli("evaluate.py", "compare", tiny_data, target, "--out", tmp_path / "ev",
                                   "--no-progress", "--workers", "1"))
    assert "cell.h5: frame 2: cannot read" in line
    line = _one_error_line(run_cli("test.py", "-x", trained, "-t", "fit", "-e", "latest", "--target", target,
                                   "--iterations", "2", "--out", tmp_path / "fit", "--no-progress"))
    assert "cell.h5: frame 2: cannot read" in line


def test_mask_with_nan_refused_and_dropped_components_hinted(tmp_path):
    import tifffile
    from autodecoder.io.prepare import Options, voxvol_to_sdf
    vol = np.zeros((20, 20, 20), np.float32)
    vol[5:9, 5:9, 5:9] = 1
    vol[12:15, 12:15, 12:15] = 1  # a second, smaller component
    folder = tmp_path / "in" / "cell" / "phantom" / "sim_data_afterTM"
    folder.mkdir(parents=True)
    for t in range(2):
        tifffile.imwrite(folder / f"mask_t{t:03d}.tif", vol)
    with pytest.warns(UserWarning, match="--components all"):
        voxvol_to_sdf(tmp_path / "in", tmp_path / "out", Options(scale=1.0, pad=0, crop=None), progress=False,
                      log=lambda s: None)
    vol[6, 6, 6] = np.nan
    tifffile.imwrite(folder / "mask_t001.tif", vol)
    with pytest.raises(UserError, match="mask_t001.tif.*NaN"):
        voxvol_to_sdf(tmp_path / "in", tmp_path / "out2", Options(scale=1.0, pad=0, crop=None), progress=False,
                      log=lambda s: None)
