"""Run safety: locks, stop requests, temporaries, output provenance, writable folders, memory.

Locks and signals are exercised with real second processes and real signals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autodecoder.experiment.guards import room
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (
    atomic_path, available_memory_bytes, break_lock, check_memory, check_output_folder,
    clean_stale_temporaries, ensure_writable_dir, format_bytes, hold_lock, read_lock,
    refuse_mixed, stop_requests, terminate_as_interrupt)

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from autodecoder.experiment.guards import hold_lock
with hold_lock(sys.argv[1], "the experiment"):
    print("locked", flush=True)
    time.sleep(60)
"""

STOPPER = """
import sys, time
from autodecoder.experiment.guards import stop_requests
try:
    with stop_requests("stopping after this step") as stop:
        print("ready", flush=True)
        deadline = time.time() + 20
        # "wait": a loop that checks the flag; "busy": a long step that never checks it
        while time.time() < deadline and (sys.argv[1] == "busy" or not stop.requested):
            time.sleep(0.02)
        print("stopped", stop.signal_name, flush=True)
    sys.exit(130 if stop.requested else 1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
"""

TERMINATED = """
import sys, time
from pathlib import Path
from autodecoder.experiment.guards import atomic_path, terminate_as_interrupt
try:
    with terminate_as_interrupt():
        with atomic_path(Path(sys.argv[1])) as tmp:
            tmp.write_text("partial")
            print(tmp, flush=True)
            time.sleep(20)
except KeyboardInterrupt:
    sys.exit(130)
finally:
    print("cleaned", flush=True)
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _first_line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().strip()
    assert line, f"child said nothing: {proc.stderr.read() if proc.poll() is not None else ''}"
    return line


# --------------------------------------------------------------------------- locks

def test_lock_of_a_live_process_is_refused_then_taken_over_after_it_dies(tmp_path):
    proc = _spawn(HOLDER, tmp_path)
    try:
        assert _first_line(proc) == "locked"
        assert read_lock(tmp_path)["pid"] == proc.pid
        with pytest.raises(UserError) as err:
            with hold_lock(tmp_path, "the experiment"):
                pass
        msg = str(err.value)
        assert f"process {proc.pid}" in msg and "in use" in msg and "\n" not in msg
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close(), proc.stderr.close()
    notes = []
    with hold_lock(tmp_path, "the experiment", log=notes.append) as lockfile:
        assert json.loads(lockfile.read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and "took over" in notes[0] and str(proc.pid) in notes[0]
    assert not (tmp_path / ".lock").exists()


def test_lock_from_another_host_is_refused_with_host_and_age(tmp_path):
    info = {"pid": 4242, "host": "elsewhere.example", "start": "2020-01-01T00:00:00+00:00",
            "start_epoch": time.time() - 7260, "command": "train.py exp", "token": "x"}
    (tmp_path / ".lock").write_text(json.dumps(info))
    with pytest.raises(UserError) as err:
        with hold_lock(tmp_path, "the experiment", break_hint="pass --break-lock"):
            pass
    msg = str(err.value)
    assert "elsewhere.example" in msg and "4242" in msg and "2 h 1 min ago" in msg
    assert "pass --break-lock" in msg and "\n" not in msg
    assert (tmp_path / ".lock").exists()  # a refusal never removes someone else's lock
    assert break_lock(tmp_path)["host"] == "elsewhere.example"
    assert not (tmp_path / ".lock").exists()


def test_lock_of_a_reused_pid_is_taken_over_and_another_container_is_refused(tmp_path):
    newer = subprocess.Popen(["sleep", "30"])  # alive, but started after the lock was taken
    try:
        info = {"pid": newer.pid, "host": socket.gethostname(), "start": "an hour ago",
                "start_epoch": time.time() - 3600, "command": "old run", "token": "x"}
        (tmp_path / ".lock").write_text(json.dumps(info))
        notes = []
        with hold_lock(tmp_path, "the experiment", log=notes.append):
            assert read_lock(tmp_path)["pid"] == os.getpid()
        assert len(notes) == 1 and f"process {newer.pid}" in notes[0]
        # same host name, other pid namespace: its pids cannot be checked from here
        (tmp_path / ".lock").write_text(json.dumps(dict(info, pidns="pid:[1]", pid=1)))
        with pytest.raises(UserError, match="another container"):
            with hold_lock(tmp_path, "the experiment"):
                pass
    finally:
        newer.kill()
        newer.wait()


def test_lock_is_released_after_an_exception_and_nests(tmp_path):
    with pytest.raises(RuntimeError):
        with hold_lock(tmp_path, "the output folder"):
            with hold_lock(tmp_path, "the output folder"):  # nested: counted, no deadlock
                pass
            assert (tmp_path / ".lock").exists()  # the inner exit keeps the outer's lock
            raise RuntimeError("boom")
    assert not (tmp_path / ".lock").exists()
    with hold_lock(tmp_path, "the output folder"):
        with pytest.raises(UserError, match="refusing to break"):
            break_lock(tmp_path)  # our own, live lock


# --------------------------------------------------------------------------- signals

def test_sigterm_sets_the_stop_flag_and_the_process_exits_cleanly():
    proc = _spawn(STOPPER, "wait")
    assert _first_line(proc) == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "stopped SIGTERM" in out
    assert err.count("stopping after this step") == 1


def test_second_sigint_interrupts_a_step_that_does_not_check():
    proc = _spawn(STOPPER, "busy")
    assert _first_line(proc) == "ready"
    os.kill(proc.pid, signal.SIGINT)
    assert "stopping after this step" in proc.stderr.readline()  # first one: flag + message
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3 and "interrupted" in out, err


def test_handlers_are_restored_on_exit():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_requests("x", speak=False):
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    with terminate_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_sigterm_in_terminate_as_interrupt_runs_finally_and_removes_the_temporary(tmp_path):
    target = tmp_path / "volume.h5"
    proc = _spawn(TERMINATED, target)
    tmp = Path(_first_line(proc))
    assert tmp.exists() and tmp.name == f".volume.h5.tmp{proc.pid}"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "cleaned" in out
    assert not tmp.exists() and not target.exists()


# --------------------------------------------------------------------------- temporaries

def test_clean_stale_temporaries_removes_dead_and_keeps_live(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.h5.tmp{dead_pid}"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".b.h5.tmp{os.getpid()}"
    live.write_text("being written")
    other = tmp_path / ".c.h5.tmpx"
    other.write_text("not a temporary of ours")
    log = []
    removed = clean_stale_temporaries(tmp_path, log=log.append)
    assert removed == [stale] and not stale.exists()
    assert live.exists() and other.exists()
    assert len(log) == 1 and "removed 1 " in log[0] and format_bytes(1000) in log[0]
    assert clean_stale_temporaries(tmp_path, log=log.append) == [] and len(log) == 1
    reused = tmp_path / f".d.h5.tmp{os.getpid()}"  # our pid, but older than this process
    reused.write_text("left by an earlier process that had our pid")
    os.utime(reused, (time.time() - 10 ** 6, time.time() - 10 ** 6))
    assert clean_stale_temporaries(tmp_path, log=log.append) == [reused] and live.exists()


def test_atomic_path_keeps_the_old_file_when_the_body_fails(tmp_path):
    path = tmp_path / "specs.json"
    path.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(path) as tmp:
            tmp.write_text("new, half")
            raise ValueError("interrupted")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["specs.json"]
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"


# --------------------------------------------------------------------------- provenance

def _read(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None  # not one of ours


def test_output_folder_refuses_other_provenance_and_replace_removes_exactly_those(tmp_path):
    mine = {"checkpoint": "exp/models/e0010_model.pth", "epoch": 10, "kind": "rec"}
    (tmp_path / "rec_0.json").write_text(json.dumps(mine))
    (tmp_path / "rec_1.json").write_text(json.dumps(dict(mine, epoch=20)))
    (tmp_path / "rec_2.json").write_text(json.dumps(mine))
    (tmp_path / "rec_3.json").write_text("a file of the user")
    (tmp_path / "notes.txt").write_text(json.dumps(dict(mine, epoch=30)))
    keys = ("checkpoint", "epoch", "kind")
    args = (tmp_path, mine, keys, _read, "rec_*.json")
    with pytest.raises(UserError) as err:
        check_output_folder(*args, replace=False)
    msg = str(err.value)
    assert "rec_1.json" in msg and "epoch=20" in msg and "epoch=10" in msg
    assert "--replace" in msg and "\n" not in msg
    with pytest.raises(UserError, match="different models"):
        refuse_mixed(tmp_path.glob("rec_*.json"), _read, keys)
    log = []
    assert check_output_folder(*args, replace=True, log=log.append) == [tmp_path / "rec_1.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "rec_0.json", "rec_2.json", "rec_3.json"]
    assert len(log) == 1 and "removed 1" in log[0]
    assert check_output_folder(*args, replace=False) == []
    assert refuse_mixed(tmp_path.glob("rec_*.json"), _read, keys) == mine


# --------------------------------------------------------------------------- places and memory

def test_ensure_writable_dir_under_a_regular_file_is_one_line(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("I am a file")
    with pytest.raises(UserError) as err:
        ensure_writable_dir(plain / "out" / "sub", "output")
    msg = str(err.value)
    assert f"{plain} is a file, not a folder" in msg and "output folder" in msg
    assert "\n" not in msg
    made = ensure_writable_dir(tmp_path / "a" / "b", "output")
    assert made.is_dir() and list(made.iterdir()) == []


def test_check_memory_refuses_ten_times_what_is_available():
    avail = available_memory_bytes("cpu")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < avail <= total
    need = 10 * avail
    with pytest.raises(UserError) as err:
        check_memory(need, "cpu", "the reconstruction", "use a coarser --grid", override=False)
    msg = str(err.value)
    assert f"needs about {format_bytes(need)}" in msg
    assert "use a coarser --grid" in msg and "--ignore-memory-check" in msg and "\n" not in msg
    m = re.search(r"only ([\d.]+) (MiB|GiB|TiB)", msg)
    shown = float(m.group(1)) * 1024 ** {"MiB": 2, "GiB": 3, "TiB": 4}[m.group(2)]
    assert abs(shown - avail) < 0.2 * avail  # the other number is what is available
    log = []
    assert check_memory(need, "cpu", "the reconstruction", "x", override=True, log=log.append) > 0
    assert len(log) == 1 and "continuing" in log[0]
    check_memory(1024, "cpu", "a tiny step", "x", override=False)


def test_cgroup_room_reads_v1_and_v2_limits_of_the_process_and_its_ancestors(tmp_path, monkeypatch):
    v2 = tmp_path / "cg"
    (v2 / "job" / "step").mkdir(parents=True)
    (v2 / "job" / "memory.max").write_text("1000000\n")  # the parent's limit binds
    (v2 / "job" / "memory.current").write_text("600000\n")
    (v2 / "job" / "memory.stat").write_text("anon 1\ninactive_file 100000\n")  # reclaimable
    (v2 / "job" / "step" / "memory.max").write_text("max\n")
    (v2 / "job" / "step" / "memory.current").write_text("5\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/job/step\n")
    assert room.cgroup_room(v2, membership) == 1000000 - 500000
    v1 = tmp_path / "v1" / "memory"
    (v1 / "a").mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(str(2 ** 63 - 4096))  # root: no limit
    (v1 / "a" / "memory.limit_in_bytes").write_text("8000")
    (v1 / "a" / "memory.usage_in_bytes").write_text("3000")
    membership.write_text("4:memory:/a\n1:cpu:/\n")
    assert room.cgroup_room(tmp_path / "v1", membership) == 5000
    membership.write_text("0::/\n")
    assert room.cgroup_room(tmp_path / "empty", membership) is None  # no limit anywhere
    monkeypatch.setattr(room, "cgroup_room", lambda: 123 * 1024 ** 2)
    assert available_memory_bytes("cpu") == 123 * 1024 ** 2
