"""Training on several processes with torchrun and DDP (gloo on the CPU): same weights as one process,
rank 0 alone writes, a killed rank stops the run with a clear message and the checkpoint resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autodecoder.training import distributed
from conftest import ROOT, run_cli

pytestmark = [pytest.mark.slow,  # trains models in several processes
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc to find the ranks")]


def torchrun(exp: Path, *args: str, nproc: int = 2, popen: bool = False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(ROOT / "train.py"), "-x", str(exp), "--device", "cpu", "--no-progress", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def state(exp: Path) -> dict:
    return torch.load(exp / "model_parameters" / "latest.pth", weights_only=True)


def assert_same_training(a: dict, b: dict, atol: float = 1e-6) -> None:
    """Weights, codes, angles and the loss history of two runs equal to float tolerance."""
    assert a["completed_epoch"] == b["completed_epoch"]
    for k in a["decoder"]:
        torch.testing.assert_close(a["decoder"][k], b["decoder"][k], atol=atol, rtol=1e-5, msg=k)
    torch.testing.assert_close(a["codes"], b["codes"], atol=atol, rtol=1e-5)
    torch.testing.assert_close(a["angles"], b["angles"], atol=atol, rtol=1e-5)
    for ha, hb in zip(a["history"], b["history"]):
        assert ha[0] == hb[0]
        assert ha[1] == pytest.approx(hb[1], rel=1e-5) and ha[2] == pytest.approx(hb[2], rel=1e-5)


def test_share_splits_every_frame_once():
    items = torch.arange(7)
    parts = [distributed.share(items, distributed.Context(r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat(parts), items)
    assert [len(distributed.share(torch.arange(1), distributed.Context(r, 2))) for r in range(2)] == [1, 0]


# FramesPerBatch 5 on 2 ranks: shares of 3 and 2 frames, and a last batch of 2 frames (12 frames);
# FramesPerBatch 1 on the plain path: one rank is idle in every batch.
@pytest.mark.parametrize("fast, fpb", [(True, 5), (False, 1)])
def test_two_ranks_match_one_process(tiny_experiment, fast, fpb):
    specs = dict(FramesPerBatch=fpb, FastPath=fast, CodeRegularization=True, CodeRegularizationLambda=1e-3,
                 TrainChunkSize=200, NumEpochs=4 if fpb > 1 else 3)
    one, two = tiny_experiment("one", **specs), tiny_experiment("two", **specs)
    r1 = run_cli("train.py", "-x", one, "--seed", "0", "--device", "cpu", "--no-progress")
    assert r1.returncode == 0, r1.stderr
    r2 = torchrun(two, "--seed", "0")
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "× 2 ranks (DDP)" in r2.stdout
    assert_same_training(state(one), state(two))
    # rank 0 alone wrote: one log, one line per epoch, same checkpoint files as one process
    logs = list(two.glob("*_train_log.txt"))
    assert len(logs) == 1 and sum(line.startswith("epoch ") for line in logs[0].read_text().splitlines()) == \
        specs["NumEpochs"]
    assert r2.stdout.count("done: ") == 1
    names = lambda e: sorted(p.relative_to(e).as_posix() for p in e.rglob("*") if "log" not in p.name)  # noqa: E731
    assert names(one) == names(two)


def _rank_pid(exp: Path, rank: int, timeout: float = 60) -> int:
    """PID of the process of ``rank`` training ``exp`` (torchrun sets RANK in its environment)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b" ".join(env) and \
                    str(exp).encode() in cmd:
                return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} process found")


def stop_after_first_epoch(exp: Path, seed: str, action) -> tuple[int, str]:
    """Train ``exp`` on 2 ranks; once latest.pth exists call ``action(process)``; (exit code, output)."""
    proc = torchrun(exp, "--seed", seed, popen=True)
    latest = exp / "model_parameters" / "latest.pth"
    try:
        t0 = time.time()
        while not latest.exists():
            assert proc.poll() is None and time.time() - t0 < 120, "training ended before its first epoch"
            time.sleep(0.05)
        action(proc)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out


def test_killed_rank_stops_cleanly_and_the_checkpoint_resumes_on_one_process(tiny_experiment):
    specs = dict(FramesPerBatch=5, NumEpochs=25, LogFrequency=1000, TrainSampleFraction=0.2)
    ref, exp = tiny_experiment("ref", **specs), tiny_experiment("killed", **specs)
    returncode, out = stop_after_first_epoch(exp, "3", lambda proc: os.kill(_rank_pid(exp, 1), signal.SIGKILL))
    assert returncode != 0
    assert "lost contact with another rank" in out and "resume with --continue latest" in out, out[-3000:]
    done = state(exp)["completed_epoch"]
    assert 1 <= done < 25, "the kill should land mid-run"
    # resume on one process: the same weights as a run that was never interrupted
    r = run_cli("train.py", "-x", exp, "--continue", "latest", "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run_cli("train.py", "-x", ref, "--seed", "3", "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert_same_training(state(ref), state(exp), atol=1e-5)


def test_ctrl_c_under_torchrun_saves_mid_epoch_and_resumes_on_three_ranks(tiny_experiment):
    specs = dict(FramesPerBatch=5, NumEpochs=25, LogFrequency=1000, TrainSampleFraction=0.2)
    ref, exp = tiny_experiment("ref", **specs), tiny_experiment("stopped", **specs)
    # SIGINT to the process group: what Ctrl-C in the terminal does
    _, out = stop_after_first_epoch(exp, "4", lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert "interrupted" in out and "resume with --continue latest" in out, out[-3000:]
    st = state(exp)
    assert st["completed_epoch"] < 25
    # resume on 3 ranks (shares of 2, 2 and 1 frames): the weights of an uninterrupted one-process run
    r = torchrun(exp, "--continue", "latest", nproc=3)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("train.py", "-x", ref, "--seed", "4", "--device", "cpu", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert_same_training(state(ref), state(exp), atol=1e-5)


def test_environment_must_be_torchrun_like(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(distributed.UserError, match="RANK=5 with WORLD_SIZE=2"):
        distributed.context_from_environment()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(distributed.UserError, match="RANK='x'"):
        distributed.context_from_environment()


def test_test_py_under_torchrun_splits_the_sequences_like_shards(tiny_experiment, tmp_path):
    """2 ranks started by torchrun write, together, the very files of one run (``--shard 0/1``)."""
    from autodecoder.cli.test import main as test_main
    from autodecoder.training import loop as training
    exp = tiny_experiment(NumEpochs=1)
    assert training.train(exp, device="cpu", seed=0, progress=False, log=lambda s: None) == 0
    common = ["-x", str(exp), "-t", "generate", "-e", "latest", "--seed", "3", "--no-progress", "--device", "cpu"]
    assert test_main(common + ["--out", str(tmp_path / "one"), "--shard", "0/1"]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "test.py"), *common, "--out", str(tmp_path / "two")]
    r = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    one, two = sorted((tmp_path / "one").glob("*.h5")), sorted((tmp_path / "two").glob("*.h5"))
    assert len(one) == 3 and [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))


def test_test_py_under_torchrun_needs_a_seed(tiny_experiment, monkeypatch, capsys):
    from autodecoder.cli.test import main as test_main
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    exp = tiny_experiment()
    assert test_main(["-x", str(exp), "-t", "generate", "--device", "cpu"]) == 2
    assert "--seed" in capsys.readouterr().err
    assert not (exp / "OUT_randomgen").exists()
