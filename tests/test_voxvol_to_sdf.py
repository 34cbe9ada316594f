"""Tests of the voxvol_to_sdf.m port (autodecoder.io.prepare, matlab_ports/voxvol_to_sdf.py) and its
MATLAB-compatibility helpers."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from autodecoder.demo import phantoms
from autodecoder.demo.masks import write_cytopacq_masks, write_label_tiff
from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import SequenceFile, read_sequence
from autodecoder.io.mask_sdf import select_components
from autodecoder.io.discovery import CYTOPACQ_MASKS, find_sequences, natural_key
from autodecoder.io.matlab_compat import (imgaussfilt3, imresize3, matlab_round, regionprops_centroid,
                                          resize_contributions)
from autodecoder.demo.masks import convert_demo_masks
from autodecoder.io.prepare import Options, prepare_frame, voxvol_to_sdf

# the identity geometry: no resize, no padding, no crop
PLAIN = Options(scale=1.0, pad=0, crop=None, clamp=8.0, previews=False)


def ball(shape, centre, radius):
    """Analytic sphere on a voxel grid: (mask, signed distance in voxels)."""
    g = [np.arange(n, dtype=np.float64) for n in shape]
    d = np.sqrt((g[0][:, None, None] - centre[0]) ** 2 + (g[1][None, :, None] - centre[1]) ** 2
                + (g[2][None, None, :] - centre[2]) ** 2) - radius
    return d <= 0, d


def write_sequence_dir(folder: Path, masks, name="mask_t{:03d}.tif", label=1) -> Path:
    """Per-frame label TIFFs, CytoPacq-style (the port reads each back as the given (X, Y, Z) array)."""
    for t, m in enumerate(masks):
        write_label_tiff(m, folder / name.format(t), label=label)
    return folder


def cytopacq(root: Path, name: str, masks) -> Path:
    return write_sequence_dir(root / name / "phantom" / "sim_data_afterTM", masks)


def raw_distances(sdf: np.ndarray) -> np.ndarray:
    """Undo the normalisation: an outside voxel with a face-neighbour inside is exactly 1 voxel away."""
    return sdf / sdf[sdf > 0].min()


def run(root, out, options=PLAIN, **kw):
    return voxvol_to_sdf(root, out, options, progress=False, log=lambda s: None, **kw)


# --------------------------------------------------------------------------
# MATLAB compatibility helpers

def test_matlab_round_halves_away_from_zero():
    assert matlab_round([0.5, 1.5, 2.5, -2.5, 2.49]).tolist() == [1, 2, 3, -3, 2]
    assert np.round(2.5) == 2  # what a naive port would do


def test_natural_order():
    names = ["mask_t10.tif", "mask_t2.tif", "mask_t1.tif", "mask_t100.tif"]
    assert sorted(names, key=natural_key) == ["mask_t1.tif", "mask_t2.tif", "mask_t10.tif", "mask_t100.tif"]
    assert sorted(names) == ["mask_t1.tif", "mask_t10.tif", "mask_t100.tif", "mask_t2.tif"]  # MATLAB dir


def test_imresize3_nearest_size_and_sampling():
    # output size ceil(scale * size) (0.65 * 37 = 24.05 -> 25), centre-aligned nearest sampling
    v = np.arange(37, dtype=np.uint16)[:, None, None] * np.ones((1, 10, 20), np.uint16)
    r = imresize3(v, 0.65)
    assert r.shape == (25, 7, 13) and r.dtype == np.uint16
    # along an axis of 10 at 0.65: source = floor((j + 0.5) / 0.65), the last clipped: 0 2 3 5 6 8 9
    w, idx = resize_contributions(10, 7, 0.65)
    assert idx[np.arange(7), w.argmax(1)].tolist() == [0, 2, 3, 5, 6, 8, 9]
    expected = [min(int((j + 0.5) / 0.65), 36) for j in range(25)]  # past the end: the last voxel (mirrored)
    expected[19] = 29  # MATLAB's floating-point arithmetic puts the exact tie 19.5/0.65 = 30 on the lower voxel
    assert r[:, 0, 0].tolist() == expected
    assert np.array_equal(imresize3(v, 1.0), v)
    big = imresize3(np.eye(4, dtype=np.uint8)[:, :, None].repeat(2, 2), 2.0)
    assert big.shape == (8, 8, 4) and big[:2, :2].all() and not big[:2, 2:].any()


def test_imresize3_linear_keeps_constants_and_interpolates():
    v = np.full((6, 7, 8), 3.0, np.float32)
    assert np.allclose(imresize3(v, output_size=(12, 14, 16), method="linear"), 3.0)
    ramp = np.arange(8, dtype=np.float32)[None, None, :].repeat(2, 0).repeat(2, 1)
    up = imresize3(ramp, output_size=(2, 2, 16), method="linear")
    # centre-aligned: output k sits at input (k + 0.5)/2 - 0.5
    inner = up[0, 0, 1:-1]
    assert np.allclose(inner, (np.arange(1, 15) + 0.5) / 2 - 0.5, atol=1e-6)


def test_imgaussfilt3_matches_matlab_kernel_size():
    v = np.zeros((41, 41, 41), np.float32)
    v[20, 20, 20] = 1.0
    f = imgaussfilt3(v, 3.0)  # MATLAB: 2*ceil(2*3)+1 = 13 taps, radius 6
    line = f[20, 20]
    assert line[14] > 0 and line[26] > 0 and line[13] == 0 and line[27] == 0
    assert abs(f.sum() - 1.0) < 1e-5


def test_regionprops_centroid_is_xyz_one_based():
    m = np.zeros((10, 20, 30), bool)
    m[2, 5, 7] = True  # row 2, column 5, slice 7 (0-based)
    assert regionprops_centroid(m) == (6.0, 3.0, 8.0)  # (x = column, y = row, z = slice), 1-based


# --------------------------------------------------------------------------
# connected components (autodecoder.sdf.select_components)

def test_largest_component_drops_a_small_blob():
    big, _ = ball((40, 40, 40), (15, 20, 20), 8)
    small, _ = ball((40, 40, 40), (33, 20, 20), 2)
    kept = select_components(big | small)
    assert np.array_equal(kept, big)
    assert np.array_equal(select_components(big | small, keep="all"), big | small)


def test_diagonal_contact_is_connected_as_in_matlab():
    m = np.zeros((12, 12, 12), bool)
    m[2:6, 2:6, 2:6] = True  # a 4^3 cube
    m[6, 6, 6] = True  # touches it only at a corner
    assert np.array_equal(select_components(m, 26), m)
    assert select_components(m, 6)[6, 6, 6] == np.False_
    assert select_components(m, 18)[6, 6, 6] == np.False_  # edges, not corners


def test_equal_components_tie_break_like_matlab():
    m = np.zeros((10, 10, 10), bool)
    m[0, 8, 0] = True  # first in row-major (C) order
    m[8, 0, 0] = True  # first in column-major order, i.e. MATLAB's bwconncomp order
    kept = select_components(m)
    assert kept[8, 0, 0] and not kept[0, 8, 0]


# --------------------------------------------------------------------------
# one frame

def test_sphere_becomes_analytic_sdf_with_default_resize_and_centred_crop(tmp_path):
    shape, centre, radius = (60, 56, 50), (22.3, 31.6, 27.1), 14.0
    mask, _ = ball(shape, centre, radius)
    cytopacq(tmp_path / "in", "cell", [mask])
    opts = Options(crop=40, clamp=8.0, previews=False)  # scale 0.65, pad 150: the original's
    res = run(tmp_path / "in", tmp_path / "out", opts)
    assert res.skipped == [] and len(res.written) == 1
    sdf = read_sequence(res.written[0])[0]
    with h5py.File(res.written[0]) as f:
        origin = f.attrs["crop_origin"][0]
    assert sdf.shape == (40, 40, 40)
    # nearest resizing maps input voxel centre c to (c + 0.5)*0.65 - 0.5; then pad and crop
    c_out = (np.asarray(centre) + 0.5) * 0.65 - 0.5 + 150 - origin
    _, d = ball(sdf.shape, c_out, radius * 0.65)
    raw = raw_distances(sdf)
    # zero level within one voxel of the analytic sphere (nearest resampling moves it by at most
    # half an input voxel per axis, 0.5 * 0.65 * sqrt(3) = 0.56 output voxels)
    inside = sdf <= 0
    assert np.all(d[inside] <= 0.57) and np.all(d[~inside] >= -0.57)
    # distances: voxel distances are within one voxel of the analytic ones (see the scale-1 test),
    # plus that resampling offset
    near = np.abs(d) < 6
    assert np.abs(raw[near] - d[near]).max() <= 1.0 + 0.57
    # off-centre input, centred output: the centroid sits on voxel crop/2 (to rounding)
    cen = np.argwhere(inside).mean(0)
    assert np.all(np.abs(cen - 20) <= 0.5 + 1e-9)


def test_sphere_distances_at_scale_one(tmp_path):
    mask, d = ball((40, 40, 40), (19.3, 20.1, 18.7), 10.0)
    res = prepare_frame(mask.astype(np.uint16), PLAIN)
    from autodecoder.io.mask_sdf import mask_to_sdf
    raw = raw_distances(mask_to_sdf(res.mask, clamp=8.0))
    assert np.array_equal(res.mask, mask)
    near = np.abs(d) < 7
    assert np.abs(raw[near] - d[near]).max() <= 1.0
    assert raw.max() == pytest.approx(8.0)  # the clamp


def test_crop_centres_on_rounded_centroid_with_matlab_round():
    m = np.zeros((40, 40, 40), np.uint16)
    m[11:21, 5:9, 30:34] = 1  # 0-based mean row 15.5 -> 1-based 16.5 -> MATLAB round 17 (numpy: 16)
    res = prepare_frame(m, Options(scale=1.0, pad=0, crop=20, previews=False))
    # box [c - 10, c + 9] (1-based) for c = (17, 7.5 -> 8, 32.5 -> 33) -> 0-based origin c - 11, then shifted inside
    assert res.origin[0] == 17 - 11
    assert res.origin[1] == 0  # 8 - 11 < 0: shifted inside the volume
    assert res.origin[2] == 40 - 20  # 33 - 11 + 20 > 40: shifted back (the slice axis checked against its own size)
    assert res.mask.sum() == (m > 0).sum()


def test_centroid_axes_are_not_swapped():
    m = np.zeros((30, 50, 40), np.uint16)
    m[5:9, 40:44, 20:24] = 1  # far apart row and column positions
    res = prepare_frame(m, Options(scale=1.0, pad=20, crop=16, previews=False))
    cen = np.argwhere(res.mask).mean(0)
    assert np.all(np.abs(cen - 8) <= 0.5)


def test_cell_near_the_border_is_shifted_not_cut():
    mask, _ = ball((40, 40, 40), (5.0, 20.0, 34.0), 4.5)  # 0.5 voxel from two faces
    res = prepare_frame(mask.astype(np.uint16), Options(scale=1.0, pad=0, crop=24, previews=False))
    assert res.mask.sum() == mask.sum()  # nothing cut
    assert res.origin[0] == 0 and res.origin[2] == 40 - 24
    o = res.origin
    assert np.array_equal(res.mask, mask[o[0]:o[0] + 24, o[1]:o[1] + 24, o[2]:o[2] + 24])
    # with the original's padding it is centred instead
    res = prepare_frame(mask.astype(np.uint16), Options(scale=1.0, pad=150, crop=24, previews=False))
    assert np.all(np.abs(np.argwhere(res.mask).mean(0) - 12) <= 0.5)


def test_label_images_and_binary_255_masks():
    m = np.zeros((40, 40, 40), np.uint16)
    a, _ = ball(m.shape, (10, 10, 10), 5)
    b, _ = ball(m.shape, (28, 27, 26), 4)
    m[a] = 1
    m[b] = 7
    both = prepare_frame(m, Options(scale=1.0, pad=0, crop=None, components="all", previews=False))
    assert np.array_equal(both.mask, a | b)  # the original: every non-zero voxel is foreground
    only7 = prepare_frame(m, Options(scale=1.0, pad=10, crop=20, label=7, previews=False))
    assert only7.mask.sum() == b.sum()
    assert np.all(np.abs(np.argwhere(only7.mask).mean(0) - 10) <= 0.5)
    fiji = prepare_frame(b.astype(np.uint8) * 255, Options(scale=1.0, pad=10, crop=20, previews=False))
    assert fiji.mask.sum() == b.sum()


# --------------------------------------------------------------------------
# whole runs

def test_round_trip_masks_to_training_loader(tmp_path):
    """Scale 1, no padding, no crop: masks -> voxvol_to_sdf -> loader gives back the masks (sdf <= 0)."""
    masks = phantoms.phantom_sequence("deform", grid=32, frames=3, seed=2)
    cytopacq(tmp_path / "in", "seq_a", masks)
    cytopacq(tmp_path / "in", "seq_b", masks[::-1])
    res = run(tmp_path / "in", tmp_path / "data", PLAIN)
    assert [p.name for p in res.written] == ["seq_a.h5", "seq_b.h5"]
    with SequenceFile(res.written[0]) as f:
        assert (f.n_frames, f.grid_shape) == (3, (32, 32, 32))
        for t, frame in enumerate(f.frames()):
            assert np.array_equal(frame <= 0, masks[t])
    from autodecoder.training.data import TrainingSet
    ts = TrainingSet.from_folder(tmp_path / "data", True, 2, 0.05, False, seed=0, progress=False)
    flat = np.concatenate([masks.reshape(3, -1), masks[::-1].reshape(3, -1)])
    for i in range(len(ts)):
        idx = ts.index[i].numpy()
        assert np.array_equal(ts.values[i].numpy() <= 0, flat[i][idx])


def test_dividing_cell_keeps_both_daughters_with_components_all(tmp_path):
    shape = (40, 40, 40)
    one, _ = ball(shape, (20, 20, 20), 8)
    d1, _ = ball(shape, (20, 20, 12), 6)
    d2, _ = ball(shape, (20, 20, 28.5), 5.5)  # a little smaller: the largest is unambiguous
    cytopacq(tmp_path / "in", "div", [one, d1 | d2])
    largest = run(tmp_path / "in", tmp_path / "a", PLAIN)
    everything = run(tmp_path / "in", tmp_path / "b", Options(scale=1.0, pad=0, crop=None, components="all",
                                                              previews=False))
    assert np.array_equal(read_sequence(largest.written[0])[1] <= 0, d1)
    assert np.array_equal(read_sequence(everything.written[0])[1] <= 0, d1 | d2)


def test_bad_sequences_are_skipped_whole_and_reported(tmp_path):
    good, _ = ball((30, 30, 30), (15, 15, 15), 5)
    big, _ = ball((30, 30, 30), (15, 15, 15), 12)
    cytopacq(tmp_path / "in", "a_good", [good, good])
    cytopacq(tmp_path / "in", "b_empty", [good, np.zeros_like(good), good])
    cytopacq(tmp_path / "in", "c_cut", [good, big])
    lines = []
    res = voxvol_to_sdf(tmp_path / "in", tmp_path / "out", Options(scale=1.0, pad=0, crop=16, previews=True),
                        progress=False, log=lines.append)
    assert [p.name for p in res.written] == ["a_good.h5"]
    reasons = dict(res.skipped)
    assert set(reasons) == {"b_empty", "c_cut"}
    assert "mask_t001" in reasons["b_empty"] and "empty" in reasons["b_empty"]
    assert "mask_t001" in reasons["c_cut"] and "cut" in reasons["c_cut"]
    assert not (tmp_path / "out" / "b_empty.h5").exists() and not (tmp_path / "out" / "c_cut.h5").exists()
    assert not list((tmp_path / "out").glob(".*tmp*"))
    assert any("skipped 2 of 3" in s for s in lines) and any("c_cut" in s for s in lines[-2:])
    previews = sorted((tmp_path / "out" / "preview" / "a_good").iterdir())
    assert [p.name for p in previews] == ["mask_t000.png", "mask_t001.png"]
    assert not (tmp_path / "out" / "preview" / "c_cut").exists()


def test_frames_are_naturally_ordered_with_a_warning(tmp_path):
    frames = [ball((24, 24, 24), (12, 12, 12), r)[0] for r in (3, 4, 5)]
    d = tmp_path / "seq"
    for t, name in zip(range(3), ["mask_t1.tif", "mask_t2.tif", "mask_t10.tif"]):
        write_label_tiff(frames[t], d / name)
    with pytest.warns(UserWarning, match="lexicographic"):
        seqs = find_sequences(d, "mask_t*.tif")
    assert [f.name for f in seqs[0].frames] == ["mask_t1", "mask_t2", "mask_t10"]
    with pytest.warns(UserWarning, match="character order"):
        seqs = find_sequences(d, "mask_t*.tif", order="lexicographic")
    assert [f.name for f in seqs[0].frames] == ["mask_t1", "mask_t10", "mask_t2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run(d, tmp_path / "out")
    sdf = read_sequence(res.written[0])
    assert [int((f <= 0).sum()) for f in sdf] == [int(f.sum()) for f in frames]


def test_inputs_outside_cytopacq(tmp_path):
    frames = [ball((20, 22, 24), (10, 11, 12), r)[0] for r in (4, 6)]
    # a folder of per-frame masks with its own name pattern; the CytoPacq glob's file part also works
    write_sequence_dir(tmp_path / "plain", frames, name="cell_{:02d}.tiff")
    assert [f.name for f in find_sequences(tmp_path / "plain", "cell_*.tiff")[0].frames] == ["cell_00", "cell_01"]
    write_sequence_dir(tmp_path / "flat", frames)
    assert find_sequences(tmp_path / "flat", CYTOPACQ_MASKS)[0].name == "flat"
    # one 4D stack (T, Z, Y, X) as tifffile reads it; ImageJ hyperstack and plain
    stack = np.stack([np.asarray(f).transpose(2, 0, 1) for f in frames]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "movie.tif", stack, imagej=True, metadata={"axes": "TZYX"})
    (tmp_path / "stacks").mkdir()
    tifffile.imwrite(tmp_path / "stacks" / "plain.tif", stack)  # a folder of 4D stacks
    for path in (tmp_path / "movie.tif", tmp_path / "stacks"):
        seqs = find_sequences(path)
        assert len(seqs) == 1 and len(seqs[0].frames) == 2
        res = run(path, tmp_path / ("out_" + path.stem))
        sdf = read_sequence(res.written[0])
        for t in range(2):
            assert np.array_equal(sdf[t] <= 0, frames[t])


def test_missing_and_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        find_sequences(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no masks"):
        find_sequences(tmp_path / "empty")
    (tmp_path / "flat2d").mkdir()
    tifffile.imwrite(tmp_path / "flat2d" / "a.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(UserError, match="--masks"):
        find_sequences(tmp_path / "flat2d")
    with pytest.raises(UserError, match="not 3D"):
        find_sequences(tmp_path / "flat2d", "*.tif")
    m, _ = ball((20, 20, 20), (10, 10, 10), 4)
    cytopacq(tmp_path / "small", "s", [m])
    with pytest.raises(UserError, match="crop does not fit"):
        run(tmp_path / "small", tmp_path / "o", Options(scale=1.0, pad=0, crop=32))
    with pytest.raises(UserError, match="--scale"):
        run(tmp_path / "small", tmp_path / "o", Options(scale=0))


def test_mat_output(tmp_path):
    m, _ = ball((20, 20, 20), (10, 9, 11), 5)
    cytopacq(tmp_path / "in", "s", [m, m])
    res = run(tmp_path / "in", tmp_path / "out", Options(scale=1.0, pad=0, crop=None, fmt="mat", previews=False))
    assert res.written[0].suffix == ".mat"
    sdf = read_sequence(res.written[0])
    assert sdf.shape == (2, 20, 20, 20) and np.array_equal(sdf[1] <= 0, m)


def test_hdf5_layout_and_provenance(tmp_path):
    m, _ = ball((20, 20, 20), (10, 9, 11), 5)
    cytopacq(tmp_path / "in", "s", [m, m, m])
    res = run(tmp_path / "in", tmp_path / "out", Options(scale=1.0, pad=4, crop=16, previews=False))
    with h5py.File(res.written[0]) as f:
        ds = f["sdf_vid"]
        assert ds.shape == (16, 16, 16, 3) and ds.chunks == (16, 16, 16, 1)
        assert ds.compression == "gzip" and ds.compression_opts == 9
        assert f.attrs["crop_origin"].shape == (3, 3)
        assert f.attrs["source_frames"].split("\n") == ["mask_t000", "mask_t001", "mask_t002"]


def test_demo_masks_round_trip(tmp_path):
    """The demo's path: phantoms -> CytoPacq-style TIFFs -> port -> each frame is the phantom, translated."""
    grid, frames = 32, 3
    folders = write_cytopacq_masks(tmp_path / "masks", grid, frames)
    assert [f.name for f in folders] == [n for n, _ in phantoms.demo_sequences(grid, frames)]
    one = folders[0] / "phantom" / "sim_data_afterTM" / "mask_t000.tif"
    with tifffile.TiffFile(one) as t:
        assert t.series[0].dtype == np.uint16 and len(t.pages) == grid  # pages = slices
    files = convert_demo_masks(tmp_path / "masks", tmp_path / "sdf", grid=grid, clamp=8.0, progress=False,
                               log=lambda s: None)
    for (name, masks), path in zip(phantoms.demo_sequences(grid, frames), files):
        assert path.name == f"{name}.h5"
        sdf = read_sequence(path)
        with h5py.File(path) as f:
            shift = grid // 2 - f.attrs["crop_origin"]
        assert sdf.shape == masks.shape
        for t in range(frames):
            assert np.abs(shift[t]).max() <= 3
            assert np.array_equal(np.roll(masks[t], tuple(shift[t]), axis=(0, 1, 2)), sdf[t] <= 0)
            assert (sdf[t] <= 0).sum() == masks[t].sum()  # nothing lost
