"""Tests of autodecoder.exports: binary TIFFs, ImageJ hyperstacks, MIP previews and meshes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import trimesh
from matplotlib.image import imread

from autodecoder.demo.masks import write_label_tiff
from autodecoder.experiment.errors import UserError
from autodecoder.io.exports import (export_sequence, frame_to_tiff, masks_from_sdf, mesh_from_sdf, tiff_to_frame,
                                 write_meshes)
from autodecoder.io.sequences import write_sequence
from autodecoder.io.mask_sdf import mask_to_sdf, sdf_sequence
from autodecoder.io.prepare import Options, voxvol_to_sdf


def ball(shape, centre, radius):
    g = [np.arange(n, dtype=np.float64) for n in shape]
    return ((g[0][:, None, None] - centre[0]) ** 2 + (g[1][None, :, None] - centre[1]) ** 2
            + (g[2][None, None, :] - centre[2]) ** 2) <= radius ** 2


@pytest.fixture
def seq_file(tmp_path):
    """A 3-frame sequence on a non-cubic (20, 16, 12) grid: a growing off-centre ellipsoid-ish blob."""
    shape = (20, 16, 12)
    masks = np.stack([ball(shape, (8 + t, 7, 5), 3 + t) for t in range(3)])
    masks[:, 1, 1, 1] = True  # a lone voxel marks the orientation
    path = tmp_path / "rec_seq_000.h5"
    write_sequence(path, sdf_sequence(masks, clamp=4.0))
    return path, masks


def test_masks_and_orientation_helpers():
    sdf = np.array([-0.5, 0.0, 0.02, 0.04], np.float32)
    assert masks_from_sdf(sdf).tolist() == [True, True, False, False]
    assert masks_from_sdf(sdf, 0.035).tolist() == [True, True, True, False]
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (X, Y, Z)
    assert frame_to_tiff(a).shape == (4, 2, 3)  # (pages = Z, rows = X, columns = Y)
    assert frame_to_tiff(a)[3, 1, 2] == a[1, 2, 3]
    assert np.array_equal(tiff_to_frame(frame_to_tiff(a)), a)


def test_tif_frames_and_hyperstack_read_back(seq_file, tmp_path):
    path, masks = seq_file
    files = export_sequence(path, tmp_path / "exp", tif=True, voxel_size=(0.2, 0.3, 0.5))
    base = tmp_path / "exp" / "rec_seq_000" / "tif"
    assert [f.name for f in files] == [f"rec_seq_000_t{t:03d}.tif" for t in range(3)] + ["rec_seq_000_hyperstack.tif"]
    for t in range(3):
        with tifffile.TiffFile(base / f"rec_seq_000_t{t:03d}.tif") as tif:
            s = tif.series[0]
            assert s.axes == "ZYX" and s.shape == (12, 20, 16) and s.dtype == np.uint8
            data = s.asarray()
            assert set(np.unique(data)) == {0, 255}
            assert np.array_equal(data == 255, masks[t].transpose(2, 0, 1))
            assert tif.imagej_metadata["spacing"] == pytest.approx(0.5)
            assert tif.imagej_metadata["unit"] == "um"
    with tifffile.TiffFile(base / "rec_seq_000_hyperstack.tif") as tif:
        s = tif.series[0]
        assert s.axes == "TZYX" and s.shape == (3, 12, 20, 16)
        meta = tif.imagej_metadata
        assert meta["frames"] == 3 and meta["slices"] == 12 and meta["hyperstack"]
        assert meta["spacing"] == pytest.approx(0.5) and meta["unit"] == "um"
        page = tif.pages[0]
        xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
        # Fiji x (columns) is the SDF's Y axis (0.3 um), Fiji y (rows) its X axis (0.2 um)
        assert xres[1] / xres[0] == pytest.approx(0.3) and yres[1] / yres[0] == pytest.approx(0.2)
        data = s.asarray()
        assert np.array_equal(data == 255, masks.transpose(0, 3, 1, 2))


def test_masks_prepared_from_tiffs_come_back_as_they_were(tmp_path):
    """Mask TIFFs -> voxvol_to_sdf -> SDF -> --tif: the same pages, rows and columns (as Fiji shows them)."""
    pages = np.zeros((2, 10, 14, 18), np.uint16)  # (T, Z, rows, columns), as tifffile reads the inputs
    pages[0, 2:7, 3:6, 4:15] = 1
    pages[1, 1:9, 8:12, 2:5] = 1
    d = tmp_path / "cell" / "phantom" / "sim_data_afterTM"
    d.mkdir(parents=True)
    for t in range(2):
        tifffile.imwrite(d / f"mask_t{t:03d}.tif", pages[t], metadata=None)
    res = voxvol_to_sdf(tmp_path, tmp_path / "sdf", Options(scale=1.0, pad=0, crop=None, previews=False),
                        progress=False, log=lambda s: None)
    files = export_sequence(res.written[0], tmp_path / "exp", tif=True)
    for t in range(2):
        back = tifffile.imread(files[t])
        assert back.shape == pages[t].shape
        assert np.array_equal(back > 0, pages[t] > 0)
    assert np.array_equal(tifffile.imread(files[-1]) > 0, pages > 0)


def test_png_previews_and_contact_sheet(seq_file, tmp_path):
    path, masks = seq_file
    files = export_sequence(path, tmp_path / "exp", png=True)
    base = tmp_path / "exp" / "rec_seq_000" / "png"
    assert [f.name for f in files] == [f"rec_seq_000_t{t:03d}.png" for t in range(3)] + ["rec_seq_000_sheet.png"]
    for t in range(3):
        img = imread(base / f"rec_seq_000_t{t:03d}.png")
        assert img.shape[:2] == (20, 16)  # rows X, columns Y
        assert np.array_equal(img[..., 0] > 0.5, masks[t].max(axis=2))
    sheet = imread(base / "rec_seq_000_sheet.png")
    assert sheet.shape[:2] == (2 + 22, 2 + 3 * 18)


def test_mesh_of_a_closed_cell_is_watertight_with_the_voxel_volume():
    mask = ball((40, 40, 40), (19.3, 20.1, 18.7), 10.0)
    sdf = mask_to_sdf(mask, clamp=8.0)
    mesh = mesh_from_sdf(sdf, 0.0, "voxels")
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert abs(mesh.volume / mask.sum() - 1) < 0.03
    norm = mesh_from_sdf(sdf, 0.0, "normalised")
    assert np.all(norm.bounds >= -1) and np.all(norm.bounds <= 1)
    assert norm.volume == pytest.approx(mesh.volume * (2 / 39) ** 3, rel=1e-6)
    um = mesh_from_sdf(sdf, 0.0, "um", voxel_size=(0.1, 0.2, 0.5))
    assert um.volume == pytest.approx(mesh.volume * 0.01, rel=1e-6)
    centre = um.vertices.mean(0) / np.array([0.1, 0.2, 0.5])
    assert np.allclose(centre, np.argwhere(mask).mean(0), atol=0.5)


def test_mesh_of_a_cell_touching_the_border_is_closed():
    mask = np.zeros((16, 16, 16), bool)
    mask[0:8, 4:12, 4:12] = True
    mesh = mesh_from_sdf(mask_to_sdf(mask), 0.0, "voxels")
    assert mesh.is_watertight and abs(mesh.volume / mask.sum() - 1) < 0.1


@pytest.mark.parametrize("fmt", ["ply", "obj", "stl"])
def test_mesh_files_load_back(seq_file, tmp_path, fmt):
    path, masks = seq_file
    files = export_sequence(path, tmp_path / "exp", mesh=fmt, units="voxels")
    assert [f.name for f in files] == [f"rec_seq_000_t{t:03d}.{fmt}" for t in range(3)]
    m = trimesh.load(files[2], force="mesh")
    assert m.is_watertight and m.volume > 0  # (STL stores no shared vertices: trimesh merges them on load)
    assert len(m.faces) > 100


def test_filopodial_threshold_and_empty_frames(tmp_path):
    sdf = np.full((2, 12, 12, 12), 0.5, np.float32)
    sdf[0, 4:8, 4:8, 4:8] = -0.5
    sdf[1, 6, 6, 6] = 0.03  # outside at 0, inside at 0.035
    path = tmp_path / "gen.h5"
    write_sequence(path, sdf)
    with pytest.warns(UserWarning, match="no surface"):
        files = write_meshes(sdf, tmp_path / "m", "gen", "ply")
    assert len(files) == 1
    files = export_sequence(path, tmp_path / "e", tif=True, threshold=0.035)
    assert (tifffile.imread(files[1]) > 0).sum() == 1


def test_export_argument_errors(seq_file, tmp_path):
    path, _ = seq_file
    with pytest.raises(UserError, match="voxel size"):
        export_sequence(path, tmp_path, mesh="ply", units="um")
    with pytest.raises(UserError, match="mesh format"):
        export_sequence(path, tmp_path, mesh="vtk")
    with pytest.raises(UserError, match="not found"):
        export_sequence(tmp_path / "missing.h5", tmp_path, png=True)
    assert export_sequence(path, tmp_path) == []


def test_demo_label_tiff_is_read_back_as_xyz(tmp_path):
    m = np.zeros((5, 6, 7), bool)
    m[1, 2, 3] = True
    write_label_tiff(m, tmp_path / "mask_t000.tif")
    vol = tifffile.imread(tmp_path / "mask_t000.tif")
    assert vol.dtype == np.uint16 and vol.shape == (7, 5, 6)
    assert np.array_equal(vol.transpose(1, 2, 0) == 1, m)  # the port's MATLAB-style transpose
