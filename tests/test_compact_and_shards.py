"""test.py --store compact|mask (what each file holds, read without project code) and --shard I/N (the union
of the shards is one run, byte for byte)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from scipy import ndimage

from autodecoder.cli.test import main as cli_main
from autodecoder.decoding import run as generation
from autodecoder.decoding.options import Shard, parse_shard
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import hold_lock
from autodecoder.io.sequences import SequenceFile, SequenceWriter, Storage, read_sequence
from conftest import sphere_sdf_sequence

FILO = 0.035


def _write(path, sdf: np.ndarray, storage: Storage | None = None):
    with SequenceWriter(path, sdf.shape[0], sdf.shape[1:], 4, {"type": "test"}, storage) as w:
        for t, frame in enumerate(sdf):
            w.write_frame(t, frame)
    return path


def _plain(path, name: str = "sdf_vid") -> tuple[np.ndarray, dict, h5py.Dataset]:
    """(T, X, Y, Z) values, attributes and dataset properties, with h5py alone (no project code)."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        props = {"dtype": ds.dtype, "chunks": ds.chunks, "compression": ds.compression, "shuffle": ds.shuffle,
                 "shape": ds.shape}
        return ds[()].transpose(3, 2, 1, 0), dict(f.attrs), props


def _check_compact(dense: np.ndarray, compact: np.ndarray, attrs: dict) -> None:
    """Values of ``dense`` inside and within the band (recomputed here), the constant elsewhere; same masks."""
    band, outside = int(attrs["compact_band_voxels"]), float(attrs["compact_outside_value"])
    top = max(attrs["compact_exact_levels"])
    for d, c in zip(dense, compact):
        inside = d <= np.float32(top)
        dist = ndimage.distance_transform_cdt(~inside, metric="chessboard") if inside.any() else np.full(d.shape, 99)
        kept = dist <= band
        assert np.array_equal(c[kept], d[kept])
        assert np.all(c[~kept] == np.float32(outside))
        for level in (0.0, FILO):
            assert np.array_equal(c <= np.float32(level), d <= np.float32(level))


def test_compact_file_read_with_plain_h5py(tmp_path):
    sdf = sphere_sdf_sequence((48, 44, 40), 3, 0.15, 0.1, (0.2, -0.1, 0.0))
    dense = _write(tmp_path / "dense.h5", sdf)
    compact = _write(tmp_path / "compact.h5", sdf, Storage("compact", levels=(0.0, FILO), band=3))
    values, attrs, props = _plain(compact)
    assert props == {"dtype": np.float32, "chunks": (40, 44, 48, 1), "compression": "gzip", "shuffle": True,
                     "shape": (40, 44, 48, 3)}
    assert attrs["store"] == "compact" and attrs["compact_band_voxels"] == 3
    assert attrs["compact_outside_value"] == 1.0 and attrs["type"] == "test"
    _check_compact(sdf, values, attrs)
    ratio = dense.stat().st_size / compact.stat().st_size
    print(f"dense {dense.stat().st_size} B, compact {compact.stat().st_size} B, ratio {ratio:.1f}")
    assert ratio > 5
    assert np.array_equal(read_sequence(compact), values)  # the project reads it as any SDF file


def test_mask_store_is_uint8_and_refused_by_sdf_readers(tmp_path):
    sdf = sphere_sdf_sequence((20, 18, 16), 2, 0.3, 0.1)
    path = _write(tmp_path / "mask.h5", sdf, Storage("mask", threshold=FILO))
    values, attrs, props = _plain(path, "mask_vid")
    assert props["dtype"] == np.uint8 and props["chunks"] == (16, 18, 20, 1)
    assert attrs["store"] == "mask" and attrs["mask_threshold"] == pytest.approx(FILO)
    assert np.array_equal(values, (sdf <= np.float32(FILO)).astype(np.uint8))
    mat = _write(tmp_path / "mask.mat", sdf, Storage("mask", threshold=FILO))
    assert np.array_equal(scipy.io.loadmat(mat)["mask_vid"], (sdf <= np.float32(FILO)).astype(np.uint8))
    for f in (path, mat):
        with pytest.raises(UserError, match=r"holds masks .*--store dense or compact") as e:
            SequenceFile(f)
        assert "\n" not in str(e.value)


def test_compact_mat_file(tmp_path):
    sdf = sphere_sdf_sequence((20, 18, 16), 2, 0.3, 0.1)
    mat = _write(tmp_path / "c.mat", sdf, Storage("compact", levels=(0.0, FILO), band=2))
    got = scipy.io.loadmat(mat)["sdf_vid"]
    _check_compact(sdf, got, {"compact_band_voxels": 2, "compact_outside_value": 1.0,
                              "compact_exact_levels": [0.0, FILO]})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import trained_spheres
    return trained_spheres(tmp_path_factory.mktemp("cs"), [0.3, 0.5], (16, 14, 12), 3, 0.1, NumEpochs=2,
                           ReconstructionDims=[20, 18, 16])


def _run(exp, kind="reconstruct", **kw):
    return generation.run(exp, kind, epoch="latest", device="cpu", progress=False, log=lambda s: None, **kw)


def test_compact_and_mask_outputs_of_a_model_match_dense(trained, tmp_path):
    dense = _run(trained, out_dir=tmp_path / "d", seed=0)
    compact = _run(trained, out_dir=tmp_path / "c", seed=0, store="compact", band=2)
    adaptive = _run(trained, out_dir=tmp_path / "a", seed=0, adaptive=True)  # compact by default
    masks = _run(trained, out_dir=tmp_path / "m", seed=0, store="mask")
    assert "store" not in _plain(dense[0])[1]  # the default file is as before
    for d, c, a, m in zip(dense, compact, adaptive, masks):
        ref = read_sequence(d)
        got, attrs, _ = _plain(c)
        _check_compact(ref, got, attrs)
        ad, ad_attrs, _ = _plain(a)
        assert ad_attrs["store"] == "compact" and ad_attrs["extraction"] == "adaptive"
        for level in (0.0, FILO):
            assert np.array_equal(ad <= np.float32(level), ref <= np.float32(level))
        assert np.array_equal(_plain(m, "mask_vid")[0], (ref <= 0).astype(np.uint8))


def test_store_options_are_checked(trained, tmp_path, capsys):
    common = ["-x", str(trained), "-t", "reconstruct", "-e", "latest", "--device", "cpu", "--no-progress"]
    for extra, message in [(["--band", "2"], "--band 2: only used by --store compact"),
                           (["--store", "compact", "--band", "0"], "--band 0: expected an integer >= 1"),
                           (["--store", "mask", "--tif"], "--store mask: the exports"),
                           (["--store", "compact", "--threshold", "1.5"], "--threshold 1.5: compact files"),
                           (["--shard", "2/2", "--seed", "1"], "--shard 2/2: expected 0 <= I < N"),
                           (["--shard", "1of2"], "--shard 1of2: expected I/N"),
                           (["--shard", "0/2"], "--shard 0/2: needs --seed")]:
        assert cli_main(common + ["--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


def test_parse_shard_and_round_robin():
    assert parse_shard(" 1 / 3 ") == Shard(1, 3)
    assert Shard(1, 3).take(list(range(8))) == [1, 4, 7]


def test_two_shards_make_one_run_byte_for_byte(trained, tmp_path):
    one = _run(trained, "generate", out_dir=tmp_path / "one", seed=5, shard=Shard(0, 1))
    out = tmp_path / "shards"
    sibling = out / Shard(1, 2).lock_folder
    sibling.mkdir(parents=True)
    with hold_lock(sibling, "shard 1/2"):  # shard 1 running meanwhile is no obstacle: each has its own lock
        first = _run(trained, "generate", out_dir=out, seed=5, shard=Shard(0, 2))
    second = _run(trained, "generate", out_dir=out, seed=5, shard=Shard(1, 2))
    assert len(one) == 2 and [f.name for f in first] == [one[0].name] and [f.name for f in second] == [one[1].name]
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in one)  # no lock folders left
    assert all((out / f.name).read_bytes() == f.read_bytes() for f in one)
    plain = _run(trained, "generate", out_dir=tmp_path / "plain", seed=5)  # a run without --shard: stamped
    for a, b in zip(one, plain):
        va, attrs_a, _ = _plain(a)
        vb, attrs_b, _ = _plain(b)
        assert a.name == b.name and np.array_equal(va, vb) and "created" not in attrs_a
        assert {k: str(v) for k, v in attrs_a.items()} == {k: str(v) for k, v in attrs_b.items() if k != "created"}
