"""Synthetic microscopy end to end: ground truth equals the shapes, lineage from the shapes, cells never
overlap, the CTC export validates and scores 1, OME metadata, reproducible bytes, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy.config import build_config
from autodecoder.microscopy.run import FileSource, synthesize
from conftest import run_cli, write_h5

GRID = (40, 36, 32)  # the files' grid (X, Y, Z), spanning the model cube [-1, 1]³


def _axes():
    return np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in GRID], indexing="ij")


def ellipsoid(a=(0.6, 0.4, 0.3), frames=3) -> np.ndarray:
    """An SDF-like field (T, X, Y, Z), negative inside an ellipsoid of semi-axes ``a`` along X, Y, Z."""
    x, y, z = _axes()
    f = (np.sqrt((x / a[0]) ** 2 + (y / a[1]) ** 2 + (z / a[2]) ** 2) - 1) * min(a)
    return np.repeat((f / np.abs(f).max())[None], frames, axis=0).astype(np.float32)


def dividing(frames=8, split=4, small=False) -> np.ndarray:
    """Two balls on X that touch (one cell) until ``split``, then are apart; ``small``: the second is a fragment."""
    x, y, z = _axes()
    out = []
    for t in range(frames):
        sep = 0.25 if t < split else 0.55  # touching lobes (one component), then two cells
        r2 = 0.08 if small else 0.25
        f = np.minimum(np.sqrt((x + sep) ** 2 + y ** 2 + z ** 2) - 0.3, np.sqrt((x - sep) ** 2 + y ** 2 + z ** 2) - r2)
        out.append(f)
    return np.stack(out).astype(np.float32)


def config(**sections):
    base = {"field": {"shape_zyx": [24, 64, 64], "voxel_size_xyz": [0.5, 0.5, 1.0], "frames": 3, "cube_size_um": 16.0},
            "scene": {"step_um": 0.0, "offset_frames": 0, "min_gap_um": 0.5},
            "cells": {"count": 1, "min_volume_um3": 5.0}, "optics": {"oversample_z": 3, "model": "gaussian"},
            "output": {"projections": False}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return build_config(overrides=base)


def run(tmp_path: Path, files: dict[str, np.ndarray], cfg, seed=0, name="out") -> Path:
    for stem, sdf in files.items():
        write_h5(tmp_path / "cells" / f"{stem}.h5", sdf)
    out = tmp_path / name
    synthesize(FileSource([tmp_path / "cells"]), cfg, out, seed, progress=False, log=lambda s: None)
    return out


def tracks(out: Path) -> list[list[int]]:
    return [list(map(int, line.split())) for line in (out / "01_GT/TRA/man_track.txt").read_text().splitlines()]


def test_labels_are_the_shape_at_the_output_voxel_centres(tmp_path):
    cfg = config()
    out = run(tmp_path, {"ell": ellipsoid()}, cfg)
    rec = json.loads((out / "synthesis.json").read_text())
    centre = np.array(rec["sequences"][0]["cells"][0]["start_um_zyx"])
    vz, vy, vx = 1.0, 0.5, 0.5
    z, y, x = np.meshgrid(*[(np.arange(n) + 0.5) * v for n, v in zip((24, 64, 64), (vz, vy, vx))], indexing="ij")
    ux, uy, uz = (x - centre[2]) / 8, (y - centre[1]) / 8, (z - centre[0]) / 8  # image x, y, z = model X, Y, Z
    exact = np.sqrt((ux / 0.6) ** 2 + (uy / 0.4) ** 2 + (uz / 0.3) ** 2) - 1
    labels = tifffile.imread(out / "01_GT/SEG/man_seg001.tif")
    band = np.abs(exact) < 0.06  # the files' grid resolves the surface to about a voxel
    assert np.array_equal((labels > 0)[~band], (exact <= 0)[~band])
    assert abs((labels > 0).sum() * 0.25 - 4 / 3 * np.pi * 4.8 * 3.2 * 2.4) < 0.1 * 154  # µm³
    extent = [np.ptp(np.nonzero(labels)[a]) * v for a, v in enumerate((vz, vy, vx))]
    assert extent[2] > extent[1] > extent[0]  # longest along x (model X), shortest along z (model Z)


def test_a_division_gives_one_parent_and_two_daughters(tmp_path):
    cfg = config(field={"frames": 8})
    out = run(tmp_path, {"div": dividing()}, cfg)
    rows = sorted(tracks(out))
    parent = [r for r in rows if r[3] == 0]
    daughters = [r for r in rows if r[3] != 0]
    assert len(parent) == 1 and parent[0][1:3] == [0, 3]
    assert len(daughters) == 2 and all(d[1:] == [4, 7, parent[0][0]] for d in daughters)
    small = run(tmp_path, {"div": dividing(small=True)}, cfg, name="fragment")
    assert tracks(small) == [[1, 0, 7, 0]]  # the fragment is below min_volume_um3: no division


def test_a_cell_leaving_the_field_ends_its_track(tmp_path):
    cfg = config(field={"frames": 8}, scene={"drift_um_per_frame": [0.0, 0.0, 7.0], "may_leave": True})
    out = run(tmp_path, {"ell": ellipsoid(frames=2)}, cfg)
    (label, begin, end, parent), = tracks(out)
    assert begin == 0 and end < 7
    assert not tifffile.imread(out / "01_GT/TRA/man_track007.tif").any()


def test_cluster_cells_touch_without_overlapping(tmp_path):
    cfg = config(cells={"count": 3}, scene={"layout": "cluster", "min_gap_um": -1.5})
    out = run(tmp_path, {"a": ellipsoid((0.4, 0.4, 0.4), 2), "b": ellipsoid((0.45, 0.4, 0.35), 2),
                         "c": ellipsoid((0.35, 0.4, 0.45), 2)}, cfg)
    labels = tifffile.imread(out / "01_GT/SEG/man_seg000.tif")
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    touching = [(labels[:, :, :-1] != labels[:, :, 1:]) & (labels[:, :, :-1] > 0) & (labels[:, :, 1:] > 0),
                (labels[:, :-1] != labels[:, 1:]) & (labels[:, :-1] > 0) & (labels[:, 1:] > 0)]
    assert any(t.any() for t in touching)  # two different cells share a face: they touch


def test_ctc_dataset_validates_and_scores_one(tmp_path):
    from ctc_metrics import evaluate_sequence, validate_sequence
    cfg = config(field={"frames": 8}, cells={"count": 2})
    out = run(tmp_path, {"div": dividing(), "ell": ellipsoid(frames=2)}, cfg)
    res = out / "01_RES"
    res.mkdir()
    for f in sorted((out / "01_GT/TRA").glob("man_track*.tif")):
        shutil.copy(f, res / f.name.replace("man_track", "mask"))
    shutil.copy(out / "01_GT/TRA/man_track.txt", res / "res_track.txt")
    assert validate_sequence(str(res), threads=1)["Valid"] == 1
    scores = evaluate_sequence(str(res), str(out / "01_GT"), metrics=["SEG", "DET", "TRA"], threads=1)
    assert (scores["SEG"], scores["DET"], scores["TRA"]) == (1.0, 1.0, 1.0)
    assert len(tracks(out)) == 4  # the dividing cell (parent + daughters) and the ellipsoid


def test_ome_tiff_calibration_and_reproducible_bytes(tmp_path):
    from ome_types import from_tiff
    cfg = config(output={"projections": True})
    a = run(tmp_path, {"ell": ellipsoid()}, cfg, seed=7, name="a")
    b = run(tmp_path, {"ell": ellipsoid()}, cfg, seed=7, name="b")
    c = run(tmp_path, {"ell": ellipsoid()}, cfg, seed=8, name="c")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "synthesis.json")
    assert len(files) > 10
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "01/t000.tif").read_bytes() != (c / "01/t000.tif").read_bytes()
    meta = from_tiff(a / "ome/sequence_01.ome.tif").images[0].pixels
    assert (meta.physical_size_x, meta.physical_size_y, meta.physical_size_z) == (0.5, 0.5, 1.0)
    assert meta.time_increment == 60.0 and meta.size_t == 3 and meta.size_z == 24
    assert tifffile.imread(a / "ome/sequence_01_labels.ome.tif").shape == (3, 24, 64, 64)


def test_interim_stages_and_switches(tmp_path):
    cfg = config(output={"save_interim": True}, optics={"psf": False}, camera={"noise": False},
                 phantom={"texture": False, "brightness_cv": 0.0})
    out = run(tmp_path, {"ell": ellipsoid()}, cfg)
    stages = {s: tifffile.imread(out / f"interim/01/{s}/t000.tif") for s in ("labels", "phantom", "blurred", "noisy")}
    assert np.allclose(stages["phantom"], stages["blurred"] / stages["blurred"].max() * stages["phantom"].max(),
                       atol=1e-5)  # no PSF (and no bleaching difference at frame 0): blurred is the phantom
    noisy = stages["noisy"].astype(float)
    assert np.unique(noisy[stages["phantom"] == 0]).size == 1  # no noise: the background is one value


def test_bad_requests_are_one_line(tmp_path):
    with pytest.raises(UserError, match="did you mean \"optics.na\""):
        build_config(overrides={"optics": {"nna": 1.2}})
    with pytest.raises(UserError, match="odd"):
        build_config(overrides={"optics": {"oversample_z": 2}})
    cfg = config(cells={"count": 6}, field={"shape_zyx": [16, 32, 32]})
    with pytest.raises(UserError, match="cells fit"):
        run(tmp_path, {"ell": ellipsoid()}, cfg)
    res = run_cli("synthesize.py", "--inputs", tmp_path / "cells", "-x", "experiments/demo", "--out", tmp_path / "o")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "either from a model" in res.stderr


@pytest.mark.slow
def test_model_cells_are_evaluated_by_the_network_on_the_output_grid(tmp_path):
    """Labels equal the network's sdf <= threshold at the output voxel centres (adaptive = dense)."""
    from autodecoder.decoding.points import PointDecoder
    from autodecoder.decoding.trained import load_model
    from autodecoder.microscopy.run import ModelSource
    from conftest import trained_spheres
    exp = trained_spheres(tmp_path, [0.35, 0.5], (16, 14, 12), 3, 0.15, NumEpochs=3, TrainSampleFraction=0.2)
    cfg = config(field={"frames": 2, "shape_zyx": [32, 72, 72]}, cells={"threshold": 0.05})
    source = ModelSource(exp, "latest", "cpu", "reconstruct", None, adaptive=True)
    out = tmp_path / "out"
    synthesize(source, cfg, out, 3, progress=False, log=lambda s: None)
    cell = json.loads((out / "synthesis.json").read_text())["sequences"][0]["cells"][0]
    centre = np.array(cell["start_um_zyx"])
    z, y, x = np.meshgrid(*[(np.arange(n) + 0.5) * v for n, v in zip((32, 72, 72), (1.0, 0.5, 0.5))], indexing="ij")
    model = load_model(exp, "latest", "cpu")
    pd = PointDecoder(model.decoder, cell["code"], cell["rotation_angles"], (1, 1, 1))
    for t, time in enumerate((-1.0, 1.0)):
        pd.set_time(time)
        pts = np.stack([(x - centre[2]) / 8, (y - centre[1]) / 8, (z - centre[0]) / 8], axis=-1).reshape(-1, 3)
        inside = (pd.evaluate_points(pts) <= 0.05).reshape(z.shape)
        box = min(cell["radius_um"] / 8, 1.0)  # the cell's box: its bounding radius, within the model cube
        inside &= (np.abs(pts).max(axis=1) <= box).reshape(z.shape)
        labels = tifffile.imread(out / f"01_GT/SEG/man_seg00{t}.tif")
        assert inside.any() and np.array_equal(labels > 0, inside)


def test_ome_zarr_output_reads_back(tmp_path):
    pytest.importorskip("ome_zarr")  # the "zarr" extra, installed by setup.sh
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    out = run(tmp_path, {"ell": ellipsoid()}, config(output={"ome_zarr": True, "ome_tiff": False}))
    nodes = list(Reader(parse_url(str(out / "ome/sequence_01.ome.zarr")))())
    image = np.asarray(nodes[0].data[0])
    assert image.shape == (3, 24, 64, 64) and image.dtype == np.uint16
    assert np.array_equal(image[1], tifffile.imread(out / "01/t001.tif"))
    assert not (out / "ome/sequence_01.ome.tif").exists()  # OME-TIFF was not asked for


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the record and lock folders, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".synthesis-shards" not in p.parts and p.name != "synthesis.json"}


def test_shards_and_torchrun_ranks_make_one_run_byte_for_byte(tmp_path, monkeypatch):
    """synthesize.py --shard I/N (a job array) and under torchrun (ranks as shards) write, together, the files of
    one run byte for byte, and the last shard writes the one run's record; mixing and repeats are refused."""
    from autodecoder.cli import synthesize as cli
    write_h5(tmp_path / "cells" / "div.h5", dividing(frames=3, split=1))
    write_h5(tmp_path / "cells" / "ell.h5", ellipsoid())
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"field": {"shape_zyx": [16, 48, 48], "voxel_size_xyz": [0.5, 0.5, 1.0], "frames": 3,
                                         "cube_size_um": 12.0}, "cells": {"count": 2},
                               "output": {"sequences": 3, "projections": True}}))
    common = ["--inputs", str(tmp_path / "cells"), "--config", str(cfg), "--seed", "4", "--no-progress"]
    assert cli.main(common + ["--out", str(tmp_path / "one")]) == 0
    one = _files(tmp_path / "one")
    assert sum(k.startswith("ome/") for k in one) == 6 and "03_GT/TRA/man_track.txt" in one
    assert cli.main(common + ["--out", str(tmp_path / "array"), "--shard", "1/2"]) == 0
    assert not (tmp_path / "array" / "synthesis.json").exists()  # shard 0 still missing
    assert cli.main(common + ["--out", str(tmp_path / "array"), "--shard", "1/2"]) == 2  # its sequences are there
    other = [a if a != "4" else "5" for a in common]
    assert cli.main(other + ["--out", str(tmp_path / "array"), "--shard", "0/2"]) == 2  # another seed: not mixed
    assert cli.main(common + ["--out", str(tmp_path / "array"), "--shard", "0/2"]) == 0
    for rank in ("1", "0"):  # torchrun's environment: each rank its shard, no --shard
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert cli.main(common + ["--out", str(tmp_path / "ranks")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "x"), "--shard", "0/2"]) == 2  # --shard under torchrun
    for out in ("array", "ranks"):
        assert _files(tmp_path / out) == one
        merged, single = (json.loads((tmp_path / d / "synthesis.json").read_text()) for d in (out, "one"))
        merged.pop("created"), single.pop("created")
        assert merged == single and [s["sequence"] for s in merged["sequences"]] == ["01", "02", "03"]
    monkeypatch.delenv("RANK"), monkeypatch.delenv("WORLD_SIZE")
    res = run_cli("synthesize.py", "--inputs", tmp_path / "cells", "--out", tmp_path / "y", "--shard", "0/2")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "needs --seed" in res.stderr
