"""``evaluate.py images``: the realism metrics on constructed images, and the command line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from autodecoder.cli.evaluate import main as evaluate_main
from autodecoder.evaluation import images as im
from autodecoder.microscopy.datasets import collect_images
from autodecoder.microscopy.ctc import CTCWriter


def two_blocks(shape=(12, 48, 48)) -> np.ndarray:
    """Labels ``(Z, Y, X)``: two blocks 8 voxels apart in x, so that the closing fills the gap between them
    (background inside) and leaves a margin around them (background outside)."""
    mask = np.zeros(shape, np.uint16)
    mask[:, 12:36, 6:20] = 1
    mask[:, 12:36, 28:42] = 2
    return mask


def textured(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Positive intensities: bright noisy cells on a dimmer noisy background."""
    rng = np.random.default_rng(seed)
    return 100.0 + rng.normal(0, 10, mask.shape) + 300.0 * (mask > 0) * (1 + 0.2 * rng.random(mask.shape))


def scores_by(rows: list[dict], region: str) -> list:
    return [r["score"] for r in rows if r["region"] == region]


def test_regions_are_disjoint_and_non_empty():
    reg = im.regions(two_blocks())
    assert all(reg[name].any() for name in im.REGIONS)
    assert not (reg["foreground"] & reg["background_inside"]).any()
    assert not (reg["background_inside"] & reg["background_outside"]).any()
    # the gap between the blocks is background inside, eroded twice from both cells: x 22..25
    assert reg["background_inside"][6, 24, 22:26].all() and not reg["background_inside"][6, 24, 20:22].any()
    # the outside keeps the first and last slices (the image border is not an edge)
    assert reg["background_outside"][0].any() and reg["background_outside"][-1].any()


def test_identical_images_score_one_everywhere():
    mask = two_blocks()
    img = textured(mask)
    rows = im.slice_scores(img, mask, img.copy(), mask.copy())
    assert len(rows) == mask.shape[0] * len(im.REGIONS)
    for r in rows:
        assert r["wasserstein"] == pytest.approx(0.0, abs=1e-9)
        assert r["score"] == pytest.approx(1.0, abs=1e-12)


def test_black_image_scores_zero_in_the_foreground():
    mask = two_blocks()
    rows = im.slice_scores(textured(mask), mask, np.zeros(mask.shape), mask)
    fg = scores_by(rows, "foreground")
    assert fg == pytest.approx([0.0] * mask.shape[0], abs=1e-12)
    # a grey copy (half the intensities) lies between: score 0.5
    half = im.slice_scores(textured(mask), mask, 0.5 * textured(mask), mask)
    assert scores_by(half, "foreground") == pytest.approx([0.5] * mask.shape[0], abs=1e-9)


def test_a_region_empty_in_one_image_is_missing_not_a_number():
    real_mask = two_blocks()
    real_mask[:4] = 0  # no cells in the first four real slices
    synthetic_mask = np.zeros_like(real_mask)  # no cells at all
    rows = im.slice_scores(textured(real_mask), real_mask, textured(two_blocks(), 1), synthetic_mask)
    assert all(s is None for s in scores_by(rows, "foreground"))
    assert all(s is None for s in scores_by(rows, "background_inside"))
    assert all(s is not None and math.isfinite(s) for s in scores_by(rows, "background_outside"))
    assert im.normalised_wasserstein(np.array([]), np.ones(5)) == (None, None, None)
    assert im.normalised_wasserstein(np.zeros(5), np.ones(5))[0] is None  # all-zero real: no scale


def test_slices_pair_by_relative_depth():
    assert [im.paired_slice(z, 5, 9) for z in range(5)] == [0, 2, 4, 6, 8]
    assert [im.paired_slice(z, 4, 4) for z in range(4)] == [0, 1, 2, 3]
    assert [im.third_of(z, 7) for z in range(7)] == ["upper"] * 3 + ["middle"] * 2 + ["lower"] * 2


def step_edge(n_slices: int = 3, size: int = 100) -> np.ndarray:
    """A vertical step edge (0 → 1000) in the middle of every slice, ``(Z, Y, X)``."""
    img = np.zeros((n_slices, size, size))
    img[:, :, size // 2:] = 1000.0
    return img


@pytest.mark.parametrize("sigma_b", [2.0, 3.0, 4.0])
def test_blur_lowers_the_edge_peak_by_the_predicted_factor(sigma_b):
    # A unit step smoothed by a Gaussian of σ has the gradient peak 1/(σ√(2π)); two Gaussians make
    # one of σ = √(σ_s² + σ_b²), so an extra blur σ_b scales the peak by σ_s / √(σ_s² + σ_b²).
    sharp = step_edge()
    blurred = ndimage.gaussian_filter(sharp, (0, sigma_b, sigma_b))
    peak = im.edge_curve(sharp, percentile=100)[0]
    peak_blurred = im.edge_curve(blurred, percentile=100)[0]
    sigma_s = im.EDGE_SIGMA[1]
    predicted = sigma_s / math.hypot(sigma_s, sigma_b)
    assert peak_blurred / peak == pytest.approx(predicted, rel=0.1)
    # the Sobel kernel is 8 × the derivative: the absolute peak too (within the pixel discretisation)
    assert peak == pytest.approx(8 * 1000 / (sigma_s * math.sqrt(2 * math.pi)), rel=0.1)


def test_edge_curve_follows_blur_growing_with_depth():
    img = step_edge(4)
    sigmas = [0.0, 2.0, 3.0, 4.0]  # more blur deeper down, as scattering does
    degraded = np.stack([ndimage.gaussian_filter(img[0], s) for s in sigmas])
    curve = im.normalised_curve(im.edge_curve(np.concatenate([np.zeros((2, 100, 100)), degraded]), percentile=100))
    predicted = [3.0 / math.hypot(3.0, s) for s in sigmas]
    assert len(curve) == 4  # starts at the peak slice (2), not at the first
    assert curve == pytest.approx(predicted, rel=0.1)
    default = im.edge_curve(degraded)  # the 95th percentile falls too
    assert np.all(np.diff(default) < 0)
    assert im.edge_difference(default, default) == 0.0
    flat = im.edge_curve(degraded[:1].repeat(4, 0))  # no degradation with depth: normalised curve all 1
    expected = np.mean(1 - im.normalised_curve(default))
    assert expected > 0.1 and im.edge_difference(default, flat) == pytest.approx(expected)


def test_snr_and_contrast_ratio_of_known_levels():
    rng = np.random.default_rng(3)
    mask = np.zeros((20, 64, 64), np.uint16)
    mask[:, 16:48, 16:48] = 1
    img = np.where(mask > 0, rng.normal(300, 5, mask.shape), rng.normal(100, 10, mask.shape))
    snr, cr = im.frame_snr_cr(img, mask)
    assert snr == pytest.approx((300 - 100) / 10, rel=0.02)
    assert cr == pytest.approx(3.0, rel=0.01)
    assert im.frame_snr_cr(img, np.zeros_like(mask)) == (None, None)


def test_power_spectrum_sees_blur():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (2, 64, 64))
    sharp, smooth = im.radial_power_spectrum(noise), im.radial_power_spectrum(ndimage.gaussian_filter(noise, (0, 2, 2)))
    high = slice(40, 64)  # above 0.3 cycles/pixel
    assert np.nanmean(smooth[high]) / np.nanmean(smooth) < 0.01 < np.nanmean(sharp[high]) / np.nanmean(sharp)


def write_ctc(root: Path, n_frames: int, noise: float, seed: int) -> None:
    """A small CTC dataset: two textured blocks per frame, uint16, masks in SEG and TRA."""
    rng = np.random.default_rng(seed)
    writer = CTCWriter(root, 1, n_frames)
    mask = two_blocks((8, 40, 48))
    for t in range(n_frames):
        img = 100 + rng.normal(0, noise, mask.shape) + 300 * (mask > 0)
        writer.write_frame(t, np.clip(img, 0, 65535).astype(np.uint16), mask)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_tables_plots_and_report(tmp_path):
    write_ctc(tmp_path / "real", 2, 10, 0)
    write_ctc(tmp_path / "synthetic", 3, 20, 1)
    plain = tmp_path / "plain"  # 3-D frames without masks
    plain.mkdir()
    for t in range(2):
        tifffile.imwrite(plain / f"frame{t}.tif", textured(two_blocks((8, 40, 48)), t).astype(np.uint16))
    out = tmp_path / "out"
    assert evaluate_main(["images", str(tmp_path / "real"), str(tmp_path / "synthetic" / "01"),
                          "--out", str(out), "--no-progress"]) == 0
    for name in ("wasserstein_slices.csv", "wasserstein_summary.csv", "edge_curves.csv", "frames.csv",
                 "wasserstein_z.png", "edge_curves.png", "histograms_spectra.png", "snr_cr.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    slices = read_rows(out / "wasserstein_slices.csv")
    assert len(slices) == 2 * 8 * 3  # the shorter side's 2 frames × 8 slices × 3 regions
    assert all(0.5 < float(r["score"]) <= 1 for r in slices if r["region"] == "foreground")
    frames = read_rows(out / "frames.csv")
    assert float(frames[0]["real_snr"]) == pytest.approx(30, rel=0.15)
    report = (out / "report.md").read_text()
    assert "first 2 of each are paired" in report and "![" in report and "edge_curves.png" in report
    # without masks on one side: no scores (empty CSV), SNR/CR missing, the report says so
    assert evaluate_main(["images", str(tmp_path / "real"), str(plain), "--out", str(tmp_path / "out2"),
                          "--no-progress"]) == 0
    assert read_rows(tmp_path / "out2" / "wasserstein_slices.csv") == []
    assert read_rows(tmp_path / "out2" / "frames.csv")[0]["synthetic_snr"] == ""
    assert "no masks for the synthetic images" in (tmp_path / "out2" / "report.md").read_text()
    assert collect_images(plain, tmp_path / "real" / "01_GT" / "SEG").has_masks


def test_cli_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    write_ctc(tmp_path / "real", 1, 10, 0)
    code = evaluate_main(["images", str(tmp_path / "real"), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "nowhere" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before any output
