"""The learned realism step (``realism.py train|apply``): it learns a known mapping (paired) and the real
intensity distribution (unpaired), resumes to the same weights, tiles without seams, keeps every
ground-truth file byte for byte and refuses bad inputs in one line.

Tiny networks and patches throughout, one torch thread; about 30 s on the shared 2-core machine, 20 s of
them training the two learning tests' models (the unpaired one is marked slow).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from scipy.ndimage import gaussian_filter

pytest.importorskip("monai")

from autodecoder.cli.realism import main  # noqa: E402
from autodecoder.microscopy.datasets import collect_images  # noqa: E402
from autodecoder.microscopy.ctc import CTCWriter  # noqa: E402
from autodecoder.microscopy.ome import write_ome_tiff  # noqa: E402
from autodecoder.realism import networks  # noqa: E402
from autodecoder.realism.apply import PICTURE, RECORD, infer, load_model, translate, windows  # noqa: E402
from autodecoder.realism.config import build_config  # noqa: E402
from autodecoder.realism.data import PatchSampler, measure_intensity, voxel_size_zyx  # noqa: E402
from autodecoder.realism.networks import build_generators, halo, receptive_radius  # noqa: E402
from autodecoder.realism.train import CHECKPOINT, train  # noqa: E402

#: Small networks: a two-level U-Net (down-sampling 2) and a two-layer patch discriminator.
TINY = {"channels": [8, 16], "res_units": 1, "disc_channels": 8, "disc_layers": 2, "checkpoint_every": 1000}


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Networks this small run fastest on one thread (and leave the other core to the rest)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """A smooth random texture (Gaussian in y and x), standardised."""
    g = gaussian_filter(rng.standard_normal(shape), (0, sigma, sigma))
    return g / g.std()


def blobs(rng: np.random.Generator, shape: tuple[int, int, int], n: int) -> np.ndarray:
    """Instance labels 1 … n: ellipsoids (flattened in z), later ones over earlier ones."""
    labels = np.zeros(shape, np.uint16)
    zz, yy, xx = np.indices(shape)
    for k in range(1, n + 1):
        c = rng.uniform([0, 6, 6], [shape[0], shape[1] - 6, shape[2] - 6])
        r = rng.uniform(3, 7)
        labels[(yy - c[1]) ** 2 + (xx - c[2]) ** 2 + ((zz - c[0]) * 2.0) ** 2 < r * r] = k
    return labels


def write_frames(folder: Path, volumes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, v in enumerate(volumes):
        tifffile.imwrite(folder / f"t{t:03d}.tif", v, photometric="minisblack")
    return folder


def blur_gamma(labels: np.ndarray) -> np.ndarray:
    """The known mapping of the paired test: the foreground blurred (σ 1.5 voxels in y, x), then √."""
    blurred = gaussian_filter((labels > 0).astype(np.float64), (0, 1.5, 1.5))
    return np.rint(200 + 1500 * np.sqrt(blurred)).astype(np.uint16)


def synthetic_texture(rng, shape):
    return np.rint(1000 + 100 * field(rng, shape, 1.5)).astype(np.uint16)


def real_texture(rng, shape):
    """Skewed (log-normal) and coarser: percentile normalisation alone does not make them alike."""
    return np.rint(300 + 200 * np.exp(0.5 * field(rng, shape, 3.0))).astype(np.uint16)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """A 2-D paired model trained 300 steps on masks -> blur_gamma(masks); held-out masks and images."""
    root, rng = tmp_path_factory.mktemp("paired"), np.random.default_rng(0)
    labels = [blobs(rng, (4, 48, 48), 6) for _ in range(8)]
    write_frames(root / "images", [blur_gamma(m) for m in labels[:6]])
    write_frames(root / "masks", labels[:6])
    assert train(root / "images", None, root / "run", real_masks=root / "masks", progress=False, log=quiet,
                 overrides={**TINY, "mode": "paired", "dims": 2, "patch": 32, "batch": 8, "steps": 300, "seed": 0,
                            "lr_generator": 2e-3, "lr_discriminator": 2e-3}) == 0
    return root / "run", labels[6:]


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    """A 2-D unpaired model trained 250 steps: Gaussian texture (synthetic) -> coarser log-normal texture (real)."""
    root, rng = tmp_path_factory.mktemp("unpaired"), np.random.default_rng(1)
    write_frames(root / "synthetic", [synthetic_texture(rng, (4, 48, 48)) for _ in range(6)])
    write_frames(root / "real", [real_texture(rng, (4, 48, 48)) for _ in range(6)])
    write_frames(root / "held_out", [synthetic_texture(rng, (4, 48, 48)) for _ in range(2)])
    assert train(root / "real", root / "synthetic", root / "run", progress=False, log=quiet,
                 overrides={**TINY, "dims": 2, "patch": 32, "batch": 8, "steps": 250, "seed": 1,
                            "lr_generator": 1e-3, "lr_discriminator": 5e-4}) == 0
    return root


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """Small 3-D data (real, synthetic) and a tiny 3-D unpaired model trained 6 steps on them."""
    root, rng = tmp_path_factory.mktemp("volumes"), np.random.default_rng(2)
    write_frames(root / "synthetic", [synthetic_texture(rng, (12, 36, 40)) for _ in range(3)])
    write_frames(root / "real", [real_texture(rng, (12, 36, 40)) for _ in range(3)])
    (root / "tiny.json").write_text(json.dumps({**TINY, "patch": 16}))
    args = ["train", "--real", root / "real", "--synthetic", root / "synthetic", "--config", root / "tiny.json",
            "--steps", "6", "--seed", "3", "--no-progress"]
    assert main([str(a) for a in args + ["--out", root / "run"]]) == 0
    return root, [str(a) for a in args]


def _error_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


# --------------------------------------------------------------------------
# 1. paired: a known mapping

def test_paired_learns_blur_and_gamma_on_held_out_masks(paired):
    run, held_out = paired
    model = load_model(run, "cpu")
    real = model.intensities["real"]
    errors, baseline = [], []
    for labels in held_out:
        target = blur_gamma(labels).astype(np.float32)
        errors.append(np.abs(translate(model, labels, None) - target).mean())
        # identity baseline: the mask itself drawn at the real data's two levels
        baseline.append(np.abs(real.restore(2.0 * (labels > 0) - 1) - target).mean())
    span = real.high - real.low  # 1500 intensity units
    assert np.mean(baseline) > 0.05 * span
    assert np.mean(errors) < 0.025 * span  # measured 0.0125 × span (19 of 1500), the baseline 0.098 × span
    assert np.mean(errors) < 0.25 * np.mean(baseline)


# --------------------------------------------------------------------------
# 2. unpaired: the real intensity distribution

@pytest.mark.slow  # 7–13 s on the shared machine: 250 steps of a GAN
def test_unpaired_translation_takes_the_real_mean_and_spread(unpaired):
    model = load_model(unpaired / "run", "cpu")
    held = collect_images(unpaired / "held_out")
    scale = measure_intensity(held.frames, model.config.percentiles, "held-out")
    frames = [tifffile.imread(f.path) for f in held.frames]
    real = np.concatenate([tifffile.imread(p).ravel() for p in sorted((unpaired / "real").glob("*.tif"))])
    out = np.concatenate([translate(model, f, scale).ravel() for f in frames])
    mean, std = real.mean(), real.std()  # about 525 and 130
    # measured -0.29 σ and 0.85 (over ten seeds of data and training: at most 0.34 σ off, 0.84 … 1.22)
    assert abs(out.mean() - mean) < 0.4 * std and 0.7 < out.std() / std < 1.3
    # the untrained generator (the same networks, fresh weights) is far off
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.generator.load_state_dict(build_generators(model.config)["to_real"].state_dict())
    fresh = np.concatenate([translate(model, f, scale).ravel() for f in frames])
    assert abs(fresh.mean() - mean) > 1.0 * std or not 0.7 < fresh.std() / std < 1.3  # measured +1.7 σ, 1.24


# --------------------------------------------------------------------------
# 3. Ctrl-C, then --resume: the weights of an uninterrupted run

def test_interrupted_then_resumed_run_ends_with_the_uninterrupted_weights(volumes, monkeypatch, tmp_path):
    root, args = volumes
    draw, calls = PatchSampler.draw, {"n": 0}

    def draw_then_interrupt(self):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during step 3
        return draw(self)

    monkeypatch.setattr(PatchSampler, "draw", draw_then_interrupt)
    assert main(args + ["--out", str(tmp_path / "run")]) == 130
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["step"] == 3
    monkeypatch.setattr(PatchSampler, "draw", draw)
    assert main(args + ["--out", str(tmp_path / "run"), "--resume"]) == 0
    resumed = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    whole = torch.load(root / "run" / CHECKPOINT, weights_only=True)
    assert resumed["step"] == whole["step"] == 6
    for part in ("generators", "discriminators"):
        for name, tensor in whole[part].items():
            assert torch.equal(resumed[part][name], tensor), (part, name)
    assert resumed["sampler"] == whole["sampler"]


# --------------------------------------------------------------------------
# 4. tiles: no seams; datasets through apply

def _cores_cover(n, tile, margin, f):
    wins = windows(n, tile, margin, f)
    covered = np.zeros(n, bool)
    for a, b, lo, hi in wins:
        assert a % f == 0 and b - a <= tile and a <= lo < hi <= b
        covered[lo:hi] = True
    return covered.all() and len(wins)


def test_tiled_inference_equals_whole_volume_in_3d_and_2d(volumes):
    rng = np.random.default_rng(5)
    model = load_model(volumes[0] / "run", "cpu")  # 3-D, down-sampling 2
    f, margin = model.config.down_factor, model.halo
    assert margin >= model.radius > 0
    x = rng.standard_normal((1, 23, 41, 37)).astype(np.float32) * 0.3
    tile = 2 * margin + 2 * f + 2
    assert all(_cores_cover(n + (-n) % f, tile, margin, f) >= 2 for n in x.shape[1:])
    whole = infer(model.generator, x, 3, f, margin, None, model.device)
    tiled = infer(model.generator, x, 3, f, margin, tile, model.device)
    assert whole.shape == x.shape[1:] and np.abs(tiled - whole).max() < 1e-4
    # 2-D: the default generator (down-sampling 4, receptive radius about 22), freshly initialised
    config = build_config(overrides={"dims": 2, "seed": 0})
    gen = build_generators(config)["to_real"].eval()
    f, margin = config.down_factor, halo(receptive_radius(gen, 2, config.down_factor), config.down_factor)
    x = rng.standard_normal((1, 3, 101, 77)).astype(np.float32) * 0.3
    tile = 2 * margin + 2 * f
    assert all(_cores_cover(n + (-n) % f, tile, margin, f) >= 3 for n in x.shape[2:])
    whole = infer(gen, x, 2, f, margin, None, torch.device("cpu"))
    tiled = infer(gen, x, 2, f, margin, tile, torch.device("cpu"))
    assert np.abs(tiled - whole).max() < 1e-4


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctc_dataset_through_apply_keeps_ground_truth_and_calibration(volumes, paired, tmp_path, capsys):
    rng = np.random.default_rng(6)
    ctc, vox = tmp_path / "ctc", (0.5, 0.2, 0.25)
    writer = CTCWriter(ctc, 1, n_frames=3, voxel_size_zyx=vox)
    for t in range(3):
        labels = blobs(rng, (10, 34, 42), 3)
        writer.write_frame(t, synthetic_texture(rng, (10, 34, 42)), labels)
    writer.write_tracks([(1, 0, 2, 0), (2, 0, 2, 0), (3, 0, 2, 0)])
    (ctc / "synthesis.json").write_text('{"seed": 6}\n')
    (ctc / "ome").mkdir()  # untranslated images: left out
    out = tmp_path / "out"
    assert main(["apply", "--model", str(volumes[0] / "run"), str(ctc), "--out", str(out), "--tile", "20",
                 "--no-progress"]) == 0
    assert _tree(out / "01_GT") == _tree(ctc / "01_GT") and len(_tree(ctc / "01_GT")) == 7
    assert (out / "synthesis.json").read_bytes() == (ctc / "synthesis.json").read_bytes()
    assert not (out / "ome").exists() and (out / PICTURE).is_file() and (out / RECORD).is_file()
    model = load_model(volumes[0] / "run", "cpu")
    scale = measure_intensity(collect_images(ctc).frames, model.config.percentiles, "input")
    for t in range(3):
        with tifffile.TiffFile(out / "01" / f"t{t:03d}.tif") as tif:
            image = tif.asarray()
            assert image.shape == (10, 34, 42) and image.dtype == np.uint16
        assert voxel_size_zyx(out / "01" / f"t{t:03d}.tif") == pytest.approx(vox)
    whole = model.intensities["real"].to_file(translate(model, tifffile.imread(ctc / "01" / "t002.tif"), scale))
    assert np.abs(image.astype(int) - whole.astype(int)).max() <= 1  # tiles vs one window: rounding at most
    # the output folder is not overwritten by accident
    code = main(["apply", "--model", str(volumes[0] / "run"), str(ctc), "--out", str(out), "--no-progress"])
    assert "--replace" in _error_line(capsys, code)
    # a paired model (2-D) translates the dataset's masks
    assert main(["apply", "--model", str(paired[0]), str(ctc / "01"), "--out", str(out), "--replace",
                 "--no-progress"]) == 0
    assert _tree(out / "01_GT") == _tree(ctc / "01_GT") and tifffile.imread(out / "01" / "t000.tif").shape == (10, 34, 42)


def test_4d_ome_stack_keeps_its_layout_and_labels(volumes, tmp_path):
    rng = np.random.default_rng(7)
    stack = tmp_path / "in" / "cells.ome.tif"
    stack.parent.mkdir()
    write_ome_tiff(stack, np.stack([synthetic_texture(rng, (8, 30, 26)) for _ in range(2)]), (0.4, 0.3, 0.3), 30.0,
                   labels=np.stack([blobs(rng, (8, 30, 26), 2) for _ in range(2)]))
    out = tmp_path / "out"
    assert main(["apply", "--model", str(volumes[0] / "run"), str(stack), "--out", str(out), "--no-progress"]) == 0
    with tifffile.TiffFile(out / "cells.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 8, 30, 26)
    assert voxel_size_zyx(out / "cells.ome.tif") == pytest.approx((0.4, 0.3, 0.3))
    labels = "cells_labels.ome.tif"
    assert (out / labels).read_bytes() == (stack.parent / labels).read_bytes()


# --------------------------------------------------------------------------
# 5. bad inputs: one line each

def test_bad_inputs_are_refused_in_one_line(volumes, tmp_path, capsys, monkeypatch):
    root, args = volumes
    real, synthetic, run = root / "real", root / "synthetic", root / "run"
    cases = [
        (["train", "--real", str(tmp_path / "nowhere"), "--synthetic", str(synthetic), "--out", str(tmp_path / "a")],
         "nowhere: real images not found"),
        (["train", "--real", str(real), "--paired", "--out", str(tmp_path / "b")], "paired training needs masks"),
        (["train", "--real", str(real), "--out", str(tmp_path / "c")], "--synthetic: required for unpaired"),
        (["apply", "--model", str(real), str(synthetic), "--out", str(tmp_path / "d")], "not a realism run folder"),
        (["apply", "--model", str(tmp_path / "none"), str(synthetic), "--out", str(tmp_path / "e")], "no such folder"),
        (["apply", "--model", str(run), str(synthetic), "--out", str(synthetic / "inside")], "must lie outside"),
        (["apply", "--model", str(run), str(synthetic), "--out", str(tmp_path / "f"), "--tile", "8"],
         "--tile 8: too small"),
        (args + ["--out", str(run)], "pass --resume"),
        (args + ["--out", str(run), "--resume", "--patch", "12"], "patch 16 → 12"),
        (["train", "--real", str(real), "--synthetic", str(synthetic), "--out", str(tmp_path / "g"), "--dims", "4"],
         "--dims: invalid choice"),
    ]
    (tmp_path / "bad.json").write_text('{"chanels": [8, 16]}')
    cases.append((["train", "--real", str(real), "--synthetic", str(synthetic), "--out", str(tmp_path / "h"),
                   "--config", str(tmp_path / "bad.json")], 'did you mean "channels"'))
    for argv, expected in cases:
        line = _error_line(capsys, main(argv))
        assert expected in line, (argv, line)
    monkeypatch.setattr(networks, "UNet", None)
    line = _error_line(capsys, main(["train", "--real", str(real), "--synthetic", str(synthetic), "--out",
                                     str(tmp_path / "i")]))
    assert "pip install -e '.[realism]'" in line
