"""evaluate.py: reconstruction quality of an experiment, and real-vs-generated shape comparison."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tifffile

from autodecoder.evaluation import descriptors as desc
from autodecoder.evaluation import compare, pool, statistics
from autodecoder.evaluation import reconstruction as rec
from autodecoder.demo import phantoms
from autodecoder.experiment.errors import UserError
from autodecoder.io import discovery
from autodecoder.io.mask_sdf import sdf_sequence

from conftest import REFERENCE, run_cli, sphere_sdf_sequence, write_h5


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, newline="") as fh:
        header = next(csv.reader(fh))
    return header, rows


def ellipsoid_sdf_sequence(grid: int, frames: int, axes: tuple[float, float, float], growth: float,
                           seed: int) -> np.ndarray:
    """A growing, randomly rotated ellipsoid (semi-axes in grid units [-1, 1]), float32 (T, X, Y, Z)."""
    rng = np.random.default_rng(seed)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    c = np.linspace(-1, 1, grid)
    p = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1) @ rot
    out = []
    for t in range(frames):
        s = 1 + growth * t / max(frames - 1, 1)
        a = np.asarray(axes) * s * rng.uniform(0.95, 1.05)
        out.append((np.sqrt(((p / a) ** 2).sum(-1)) - 1) * a.min())
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def shape_sets(tmp_path_factory) -> dict[str, Path]:
    """Folders of 4 sphere-like and 4 elongated-ellipsoid sequences (32³ × 5 frames)."""
    root = tmp_path_factory.mktemp("sets")
    for i in range(4):
        write_h5(root / "spheres" / f"cell_{i}.h5",
                 ellipsoid_sdf_sequence(32, 5, (0.45, 0.45, 0.45), 0.2, seed=i))
        write_h5(root / "ellipsoids" / f"cell_{i}.h5",
                 ellipsoid_sdf_sequence(32, 5, (0.8, 0.3, 0.3), 0.2, seed=10 + i))
    return {"spheres": root / "spheres", "ellipsoids": root / "ellipsoids"}


# --------------------------------------------------------------------------
# KS tests

def test_ks_identical_sets_give_p_one(shape_sets, tmp_path):
    res = compare.compare(shape_sets["spheres"], shape_sets["spheres"], tmp_path / "same", workers=1, progress=False,
                     log=lambda s: None)
    frame_rows = [r for r in res.ks if r["level"] == "frame"]
    assert [r["descriptor"] for r in frame_rows] == list(desc.FRAME_DESCRIPTORS)
    for r in res.ks:
        assert r["p_value"] == pytest.approx(1.0) and r["ks_statistic"] == 0
        assert r["verdict"] == "no evidence of a difference"
    d, p = statistics.ks_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (d, p) == (0.0, 1.0)


def test_ks_spheres_vs_elongated_ellipsoids(shape_sets, tmp_path):
    out = tmp_path / "diff"
    res = compare.compare(shape_sets["spheres"], shape_sets["ellipsoids"], out, workers=1, progress=False,
                     names=("spheres", "ellipsoids"), log=lambda s: None)
    ks = {r["descriptor"]: r for r in res.ks if r["level"] == "frame"}
    for name in ("elongation", "sphericity", "axis_major"):
        assert ks[name]["p_value"] < 0.01, name
        assert ks[name]["verdict"] == "distributions differ (p < 0.01)"
    assert ks["components"]["p_value"] == pytest.approx(1.0)  # one piece each
    assert ks["elongation"]["real_median"] < 0.1 < 0.4 < ks["elongation"]["generated_median"]

    # the files
    for name in ("descriptors_real.csv", "descriptors_generated.csv", "sequences_real.csv",
                 "sequences_generated.csv", "ks_tests.csv", "report.md", "qq_all.png", "box_all.png"):
        assert (out / name).is_file(), name
    for n in desc.FRAME_DESCRIPTORS:
        for kind in ("qq", "box"):
            png = out / f"{kind}_{n}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, rows = read_csv(out / "descriptors_generated.csv")
    assert header == ["sequence", "source", "frame", *desc.FRAME_DESCRIPTORS]
    assert len(rows) == 4 * 5
    assert sorted({r["sequence"] for r in rows}) == [f"cell_{i}.h5" for i in range(4)]
    header, rows = read_csv(out / "ks_tests.csv")
    assert header == list(statistics.KS_COLUMNS)
    assert [r["descriptor"] for r in rows] == [*desc.FRAME_DESCRIPTORS, "growth_rate", "relative_growth_rate"]
    header, rows = read_csv(out / "sequences_real.csv")
    assert header == ["sequence", "source", *desc.SEQUENCE_DESCRIPTORS] and len(rows) == 4
    assert all(float(r["growth_rate"]) > 0 for r in rows)  # the cells grow
    report = (out / "report.md").read_text()
    assert "## How to read this report" in report
    assert "| elongation | 1 − middle/major |" in report
    assert "distributions differ (p < 0.01)" in report
    assert "![" in report and "(qq_all.png)" in report and "(box_all.png)" in report
    assert "spheres" in report and "ellipsoids" in report


@pytest.mark.slow
def test_worker_processes_give_the_same_rows(shape_sets):
    one = pool.describe([shape_sets["ellipsoids"] / "cell_0.h5", shape_sets["ellipsoids"] / "cell_1.h5"],
                      workers=1, progress=False)
    two = pool.describe([shape_sets["ellipsoids"] / "cell_0.h5", shape_sets["ellipsoids"] / "cell_1.h5"],
                      workers=2, progress=False)
    assert len(one.frames) == 10
    assert one.frames == two.frames
    assert one.sequences == two.sequences


# --------------------------------------------------------------------------
# inputs: any mix of HDF5, MAT and TIFF

def test_mixed_inputs_hdf5_mat_tiff(tmp_path):
    seq = sphere_sdf_sequence((24, 24, 24), 3, 0.4, 0.2)  # (T, X, Y, Z)
    masks = seq <= 0
    write_h5(tmp_path / "a" / "one.h5", seq)
    scipy.io.savemat(tmp_path / "a" / "two.mat", {"sdf_vid": seq})
    frames = tmp_path / "a" / "tiff_frames"  # one 3-D TIFF per frame, numbered without padding
    frames.mkdir()
    for t in range(3):
        tifffile.imwrite(frames / f"mask_t{t * 5}.tif", (masks[t].transpose(2, 1, 0) * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "stack.tif", (masks.transpose(0, 3, 2, 1)).astype(np.uint16) * 7)  # (T, Z, Y, X)
    found = discovery.collect_sequences([tmp_path / "a", tmp_path / "stack.tif"])
    assert sorted((s.kind, s.n_frames) for s in found) == [("sdf", 3), ("sdf", 3), ("tiff-frames", 3),
                                                          ("tiff-stack", 3)]
    assert [Path(p).name for s in found if s.kind == "tiff-frames" for p in s.paths] == \
        ["mask_t0.tif", "mask_t5.tif", "mask_t10.tif"]  # natural order
    ds = pool.describe([tmp_path / "a", tmp_path / "stack.tif"], workers=1, progress=False)
    vols = {}
    for r in ds.frames:
        vols.setdefault(r["frame"], set()).add(r["volume"])
    for t in range(3):  # every format gives the same cell
        assert vols[t] == {float(masks[t].sum())}


def test_zt_stack_gives_the_same_descriptors_as_tz(tmp_path):
    """A 4-D stack stored with the slices outermost (OME axes ZTYX) is read frame by frame as the same
    data stored TZYX (the stack reader honours the file's axis order)."""
    masks = sphere_sdf_sequence((20, 18, 16), 3, 0.3, 0.4) <= 0  # (T, X, Y, Z), growing
    tz = masks.transpose(0, 3, 1, 2).astype(np.uint8)  # (T, Z, X, Y): frames of pages = Z
    tifffile.imwrite(tmp_path / "tz.ome.tif", tz, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "zt.ome.tif", np.ascontiguousarray(tz.transpose(1, 0, 2, 3)), metadata={"axes": "ZTYX"})
    with tifffile.TiffFile(tmp_path / "zt.ome.tif") as tf:
        assert tf.series[0].axes == "ZTYX"
    a = pool.describe([tmp_path / "tz.ome.tif"], workers=1, progress=False)
    b = pool.describe([tmp_path / "zt.ome.tif"], workers=1, progress=False)

    def descriptors(rows):
        return [{k: v for k, v in r.items() if k not in ("sequence", "source")} for r in rows]
    assert len(a.frames) == 3 and [r["volume"] for r in a.frames] == [float(m.sum()) for m in masks]
    assert descriptors(b.frames) == descriptors(a.frames)


def test_different_grids_are_flagged(shape_sets, tmp_path):
    write_h5(tmp_path / "big" / "cell.h5", ellipsoid_sdf_sequence(40, 2, (0.45, 0.45, 0.45), 0.1, seed=0))
    res = compare.compare(shape_sets["spheres"], tmp_path / "big", tmp_path / "out", workers=1, progress=False,
                     log=lambda s: None)
    assert "**Warning**: the sets are on grids of different sizes (real: 32×32×32; generated: 40×40×40)" \
        in res.report.read_text()
    same = discovery.collect_sequences([shape_sets["spheres"]])
    assert compare.grid_warning(same, same) is None


def test_input_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        discovery.collect_sequences([tmp_path / "missing"], "real")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no shapes here")
    with pytest.raises(UserError, match="no shapes found"):
        discovery.collect_sequences([tmp_path / "empty"], "real")
    (tmp_path / "bad.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="bad.h5"):
        discovery.collect_sequences([tmp_path / "bad.h5"])


def test_division_frame_through_an_sdf_file(tmp_path):
    """The dividing demo cell, stored as the demo stores it, divides where the generator put it."""
    masks = phantoms.phantom_sequence("divide", 64, 12, 0)
    write_h5(tmp_path / "seq_000_divide.h5", sdf_sequence(masks, clamp=8.0))
    ds = pool.describe([tmp_path], workers=1, progress=False)
    found = ds.sequences[0]["division_frame"]
    assert found is not None and abs(found - phantoms.abscission_frame("divide", 64, 12, 0)) <= 1
    assert [r["components"] for r in ds.frames][:2] == [1, 1]


# --------------------------------------------------------------------------
# reconstruction mode

@pytest.fixture
def small_experiment(tmp_path) -> Path:
    """The reference checkpoint (epoch 10, 6 codes) with six 12³ × 3-frame training files."""
    exp = tmp_path / "exp"
    shutil.copytree(REFERENCE, exp, ignore=shutil.ignore_patterns("OUT_*"))
    data = tmp_path / "data"
    for i in range(6):
        write_h5(data / f"seq_{i:03d}.h5", sphere_sdf_sequence((12, 12, 12), 3, 0.3 + 0.05 * i, 0.2))
    specs = json.loads((exp / "specs.json").read_text())
    specs.update(DataSource=str(data), NumSequences=6)
    (exp / "specs.json").write_text(json.dumps(specs, indent=2))
    return exp


def test_resample_keeps_voxel_centres_on_minus_one_to_one():
    coarse = np.linspace(-1, 1, 9, dtype=np.float32)[:, None, None] * np.ones((9, 7, 5), np.float32)
    fine = rec.resample(coarse, (17, 13, 11))
    assert fine.shape == (17, 13, 11)
    np.testing.assert_allclose(fine[:, 3, 2], np.linspace(-1, 1, 17), atol=1e-6)


@pytest.fixture
def one_torch_thread(monkeypatch):
    """Tiny networks decode faster on one thread, and much faster on a busy 2-core machine."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the subprocess
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_reconstruction_mode(small_experiment, tmp_path, one_torch_thread):
    res = rec.reconstruction(small_experiment, epoch=10, out_dir=tmp_path / "rec", device="cpu", progress=False,
                            log=lambda s: None)
    header, rows = read_csv(res.csv)
    assert header == list(rec.RECONSTRUCTION_COLUMNS)
    assert len(rows) == 6 * 3
    assert [(int(r["sequence"]), int(r["frame"])) for r in rows] == [(i, t) for i in range(6) for t in range(3)]
    for r in rows:
        assert 0.0 <= float(r["dice"]) <= 1.0 and 0.0 <= float(r["jaccard"]) <= float(r["dice"])
        assert float(r["surface_distance_p95"]) >= 0 and int(r["volume_training"]) > 0
    assert not res.resampled and res.epoch == 10
    assert res.summary[-1]["sequence"] == "all" and len(res.summary) == 7
    assert res.summary[-1]["dice"] > 0.3  # the checkpoint has learned something sphere-like
    report = res.report.read_text()
    assert "directly on the training grid" in report and "resampled" not in report
    assert "| **all** |" in report and res.figure.is_file()

    # second run, at another resolution, from the command line
    out2 = tmp_path / "rec12"
    r = run_cli("evaluate.py", "reconstruction", "-x", small_experiment, "-e", "10", "--dims", "9",
                "--device", "cpu", "--out", out2, "--no-progress")
    assert r.returncode == 0, r.stderr
    report2 = (out2 / "reconstruction.md").read_text()
    assert "resampled" in report2 and "9×9×9" in report2 and "12×12×12" in report2
    _, rows2 = read_csv(out2 / "reconstruction.csv")
    assert len(rows2) == 18 and all(0.0 <= float(x["dice"]) <= 1.0 for x in rows2)
    assert rows2 != rows


@pytest.mark.slow
def test_reconstruction_passes_the_decode_options(small_experiment, tmp_path, monkeypatch, one_torch_thread):
    """The experiment's decode options reach the decoder: "FastPath": false decodes on the plain path."""
    import autodecoder.decoding.grid
    import autodecoder.decoding.trained
    specs = json.loads((small_experiment / "specs.json").read_text())
    specs.update(FastPath=False, Threads=1)
    (small_experiment / "specs.json").write_text(json.dumps(specs, indent=2))
    seen = []
    decode = autodecoder.decoding.grid.decode_frames

    def spy(*args, **kwargs):
        seen.append((kwargs.get("fast", True), kwargs.get("threads")))
        return decode(*args, **kwargs)
    monkeypatch.setattr(autodecoder.decoding.grid, "decode_frames", spy)
    monkeypatch.setattr(autodecoder.decoding.trained, "decode_frames", spy)
    res = rec.reconstruction(small_experiment, epoch=10, out_dir=tmp_path / "rec", device="cpu", progress=False,
                             log=lambda s: None)
    assert len(res.rows) == 18 and len(seen) == 6
    assert set(seen) == {(False, 1)}


@pytest.mark.slow
def test_reconstruction_refuses_mismatched_data(small_experiment, one_torch_thread):
    specs = json.loads((small_experiment / "specs.json").read_text())
    (Path(specs["DataSource"]) / "seq_005.h5").unlink()
    with pytest.raises(UserError, match="6 learned codes but the training folder"):
        rec.reconstruction(small_experiment, epoch=10, device="cpu", progress=False, log=lambda s: None)


# --------------------------------------------------------------------------
# command line errors: one line, exit status 2

def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0]


@pytest.mark.slow
def test_cli_errors(tmp_path, shape_sets):
    assert_one_line_error(run_cli("evaluate.py", "compare", tmp_path / "missing", shape_sets["spheres"]),
                          "missing", "not found")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "readme.txt").write_text("x")
    assert_one_line_error(run_cli("evaluate.py", "compare", shape_sets["spheres"], tmp_path / "nothing"),
                          "no shapes found")
    assert_one_line_error(run_cli("evaluate.py", "compare", shape_sets["spheres"]), "REAL GENERATED")
    assert_one_line_error(run_cli("evaluate.py", "reconstruction", "-x", tmp_path / "no_experiment"), "not found")
    assert_one_line_error(run_cli("evaluate.py"), "required")
