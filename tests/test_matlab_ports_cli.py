"""The port scripts as users run them: ``python matlab_ports/<script>.py`` from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from matplotlib.image import imread

from autodecoder.demo.masks import write_label_tiff
from autodecoder.io.sequences import write_sequence
from autodecoder.io.mask_sdf import sdf_sequence

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("voxvol_to_sdf", "quick_preview", "sdf_to_tif", "render_sdf")


def run(script: str, *args, progress: bool = False) -> subprocess.CompletedProcess:
    """Run a port script from the repository root, without PYTHONPATH (the scripts find the package)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    extra = [] if progress or "--help" in args else ["--no-progress"]
    return subprocess.run([sys.executable, f"matlab_ports/{script}.py", *map(str, args), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def ball(shape, centre, radius):
    g = [np.arange(n, dtype=np.float64) for n in shape]
    return ((g[0][:, None, None] - centre[0]) ** 2 + (g[1][None, :, None] - centre[1]) ** 2
            + (g[2][None, None, :] - centre[2]) ** 2) <= radius ** 2


@pytest.fixture
def sdf_dir(tmp_path):
    d = tmp_path / "sdfs"
    masks = np.stack([ball((16, 16, 16), (8, 7, 8), r) for r in (3, 4)])
    write_sequence(d / "gen_seq_000.h5", sdf_sequence(masks, clamp=4.0))
    return d


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_has_an_example(script):
    r = run(script, "--help")
    assert r.returncode == 0, r.stderr
    assert "example" in r.stdout and f"python matlab_ports/{script}.py" in r.stdout


def test_voxvol_missing_folder(tmp_path):
    assert_one_line_error(run("voxvol_to_sdf", tmp_path / "nope", tmp_path / "out"), "not found")


def test_voxvol_folder_without_masks(tmp_path):
    (tmp_path / "in" / "seq").mkdir(parents=True)
    (tmp_path / "in" / "seq" / "notes.txt").write_text("no masks here")
    assert_one_line_error(run("voxvol_to_sdf", tmp_path / "in", tmp_path / "out"), "no masks")


def test_voxvol_mask_not_3d(tmp_path):
    d = tmp_path / "in" / "seq" / "phantom" / "sim_data_afterTM"
    d.mkdir(parents=True)
    tifffile.imwrite(d / "mask_t000.tif", np.ones((8, 8), np.uint16))
    assert_one_line_error(run("voxvol_to_sdf", tmp_path / "in", tmp_path / "out"), "mask_t000.tif", "not 3D")


def test_voxvol_stack_not_4d_and_bad_option(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.ones((4, 8, 8), np.uint16), photometric="minisblack")
    assert_one_line_error(run("voxvol_to_sdf", tmp_path / "one.tif", tmp_path / "out"), "4D")
    assert_one_line_error(run("voxvol_to_sdf", tmp_path, tmp_path / "out", "--crop", "big"), "--crop")


def test_voxvol_run_skips_a_bad_sequence_and_says_so(tmp_path):
    good = ball((24, 24, 24), (12, 11, 12), 5)
    for name, frames in (("cell_a", [good, good]), ("cell_b", [good, np.zeros_like(good)])):
        for t, m in enumerate(frames):
            write_label_tiff(m, tmp_path / "in" / name / "phantom" / "sim_data_afterTM" / f"mask_t{t}.tif")
    r = run("voxvol_to_sdf", tmp_path / "in", tmp_path / "out", "--scale", "1", "--pad", "8", "--crop", "20",
            "--clamp", "4", progress=True)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "100%" in r.stderr  # the progress bar
    assert "skipped 1 of 2" in r.stdout and "cell_b" in r.stdout and "mask_t1" in r.stdout
    with h5py.File(tmp_path / "out" / "cell_a.h5") as f:
        assert f["sdf_vid"].shape == (20, 20, 20, 2)
    assert (tmp_path / "out" / "preview" / "cell_a" / "mask_t1.png").is_file()
    assert not (tmp_path / "out" / "cell_b.h5").exists()


@pytest.mark.parametrize("script", ["quick_preview", "sdf_to_tif", "render_sdf"])
def test_sdf_scripts_reject_missing_and_foreign_files(script, tmp_path):
    assert_one_line_error(run(script, tmp_path / "missing.h5"), "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    assert_one_line_error(run(script, tmp_path / "other.h5"), "sdf_vid")


def test_quick_preview_writes_a_png_per_frame(sdf_dir, tmp_path):
    r = run("quick_preview", sdf_dir, "--out", tmp_path / "prev", "--sheet")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "prev").iterdir())
    assert names == ["gen_seq_000_sheet.png", "gen_seq_000_t000.png", "gen_seq_000_t001.png"]
    img = imread(tmp_path / "prev" / "gen_seq_000_t001.png")
    assert img.shape[:2] == (16, 16) and (img[..., 0] > 0.5).sum() == ball((16, 16, 16), (8, 7, 8), 4).max(2).sum()


def test_sdf_to_tif_both_variants(sdf_dir, tmp_path):
    r = run("sdf_to_tif", sdf_dir / "gen_seq_000.h5", "--out", tmp_path / "t", "--size", "32", "--sigma", "2",
            "--voxel-size", "0.5", "--hyperstack")
    assert r.returncode == 0, r.stderr
    d = tmp_path / "t" / "gen_seq_000"
    vol = tifffile.imread(d / "cell_cele_t001.tif")
    assert vol.shape == (32, 32, 32) and set(np.unique(vol)) <= {0, 255}
    from autodecoder.io.sequences import read_sequence
    from autodecoder.io.tif_volumes import Variant, binary_volume
    expected = binary_volume(read_sequence(sdf_dir / "gen_seq_000.h5")[1], Variant(0.0, 32, 2.0, 192.0))
    assert np.array_equal(vol.transpose(1, 2, 0) > 0, expected)  # pages = Z, rows = X, columns = Y
    # smoothing, then "> 192" of 255, shrinks a small cell: the original's method
    assert 0.3 < expected.sum() / (ball((16, 16, 16), (8, 7, 8), 4).sum() * 8) < 1.0
    assert (d / "preview_cell_cele_t001.png").is_file()
    with tifffile.TiffFile(d / "cell_cele_hyperstack.tif") as tif:
        assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 32, 32, 32)
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.25)  # 0.5 um at 16 -> 0.25 um at 32
    r = run("sdf_to_tif", sdf_dir, "--out", tmp_path / "f", "--variant", "filo", "--type", "a549")
    assert r.returncode == 0, r.stderr
    vol = tifffile.imread(tmp_path / "f" / "gen_seq_000" / "cell_a549_t000.tif")
    assert vol.shape == (16, 16, 16)  # the original filopodial script saves the un-resized volume


def test_render_sdf_draws_an_isosurface(sdf_dir, tmp_path):
    r = run("render_sdf", sdf_dir, "--out", tmp_path / "r", "--size", "32", "--sigma", "1", "--dpi", "50")
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "r" / "gen_seq_000").iterdir())
    assert [f.name for f in files] == ["gen_seq_000_t000.png", "gen_seq_000_t001.png"]
    img = imread(files[1])[..., :3]
    orange = (img[..., 0] > img[..., 2] + 0.2)  # the surface colour, nowhere else in the figure
    assert img.shape[:2] == (300, 300) and 200 < orange.sum() < 0.5 * 300 * 300
