"""``realism.py apply``: translate whole 3-D+t sequences with a trained realism model, tile by tile.

Tiled inference: the frame (unpaired: its normalised intensities; paired: its mask channels) is padded
at its far ends (edge values) to a multiple of the generator's down-sampling factor ``f``; windows of
``--tile`` voxels start at multiples of ``f`` and overlap; each window's outer ``halo`` voxels (the
measured receptive radius rounded up to ``f``) are dropped except at the volume's own border, and the
overlapping cores are blended with linear ramps (weights normalised to sum 1). The generator has no
normalisation layer, so every core voxel equals whole-volume inference (to float rounding): no seams.
2-D models run slice by slice, tiled in (Y, X). The output is mapped back to the real recordings'
intensity scale stored in the model, rounded and clipped to uint16 (float32 for float data).

Layouts, kept: a CTC dataset (root, or one sequence folder ``01/`` with its ``01_GT/``) gives a CTC
dataset: images ``NN/tTTT.tif`` translated, every ``NN_GT/`` and ``NN_ST/`` folder and every top-level
file but pictures copied byte for byte (other folders, e.g. ``ome/`` or ``projections/``, and
top-level pictures hold untranslated images and are left out); a folder of 3-D frames gives the same file names; a 4-D stack gives a 4-D stack of
the same name (OME-TIFF for ``.ome.tif``, its ``_labels.ome.tif`` copied). Voxel sizes (µm) are kept.
Paired models read the input's masks (``01_GT/SEG``, else ``TRA``; OME labels).

The output folder is locked while written, refused when it holds anything but an earlier output of
``apply`` (``--replace`` removes that), filled in a hidden staging folder and moved into place;
``realism_apply.json`` records the model and settings, ``before_after.png`` shows one slice of an
input frame, its translation and a real image.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import tifffile
import torch
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (REPLACE_FLAG, atomic_path, check_memory, clean_stale_temporaries,
                                           ensure_writable_dir, hold_lock, temp_name)
from autodecoder.experiment.runtime import pick_device
from autodecoder.io.pictures import plt, save_figure
from autodecoder.io.tiff import TIFF_SUFFIXES, tiff_info
from autodecoder.microscopy.ctc import write_tiff
from autodecoder.microscopy.datasets import ImageSet, ctc_sequences, collect_images, read_frame, read_pair
from autodecoder.microscopy.ome import labels_path, write_ome_tiff
from autodecoder.realism.config import RealismConfig, build_config
from autodecoder.realism.data import (Intensity, frame_shape, mask_channels, measure_intensity, time_increment_s,
                                      voxel_size_zyx)
from autodecoder.realism.networks import Generator, build_generators, halo, receptive_radius
from autodecoder.realism.train import load_checkpoint

RECORD = "realism_apply.json"
PICTURE = "before_after.png"
#: Top-level files of a CTC dataset that are pictures of its images: left out, not copied.
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
FORMAT = "autodecoder-realism-apply/1"
#: Default window edge (voxels): 3-D windows (Z, Y, X), 2-D windows (Y, X).
DEFAULT_TILE = {3: 192, 2: 1024}
#: Voxels per network call in 2-D (slices are batched up to this).
SLICE_BATCH_VOXELS = 1 << 21
#: Bytes per voxel of a window and first-level channel during inference (measured, with a margin).
BYTES_PER_VOXEL_CHANNEL = 32

Log = Callable[[str], Any]


@dataclass
class Model:
    """A trained realism model ready to apply.

    generator: ``to_real`` in eval mode on ``device``; halo: voxels dropped at window borders (the
    receptive radius, measured on this network, rounded up to ``config.down_factor``);
    intensities: the training datasets' scales (``real`` maps outputs back); step: steps trained.
    """

    config: RealismConfig
    generator: Generator
    device: torch.device
    radius: int
    halo: int
    intensities: dict[str, Intensity]
    step: int
    source: Path
    real_example: np.ndarray


def load_model(run_dir: str | Path, device: str | None = None) -> Model:
    """The generator of the run folder ``run_dir`` (written by ``realism.py train``)."""
    state = load_checkpoint(Path(run_dir))
    config = build_config(saved=state["config"])
    dev = pick_device(device)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's stream alone
        gens = build_generators(config)
    gens.load_state_dict(state["generators"])
    gen = gens["to_real"].to(dev).eval()
    radius = receptive_radius(gen, config.dims, config.down_factor)
    return Model(config, gen, dev, radius, halo(radius, config.down_factor),
                 {k: Intensity.from_dict(v) for k, v in state["intensities"].items()}, int(state["step"]),
                 Path(run_dir), np.asarray(state["real_example"]))


# --------------------------------------------------------------------------
# tiled inference

def windows(n: int, tile: int, margin: int, f: int) -> list[tuple[int, int, int, int]]:
    """Windows along one axis of (padded) length ``n``: ``(start, stop, core_lo, core_hi)``.

    ``n`` and ``tile`` are multiples of ``f``; starts are multiples of ``f``, spread evenly; a window's
    core drops ``margin`` voxels at each end that is not the volume's end; consecutive cores overlap by
    at least ``f``; one window when ``tile >= n``.
    """
    if tile >= n:
        return [(0, n, 0, n)]
    stride = (tile - 2 * margin - f) // f * f
    count = math.ceil((n - tile) / stride) + 1
    starts = [(k * (n - tile) // (count - 1)) // f * f for k in range(count)]
    return [(a, a + tile, a + margin if k else 0, a + tile - margin if k < count - 1 else n)
            for k, a in enumerate(starts)]


def _ramp(wins: list[tuple[int, int, int, int]], k: int) -> np.ndarray:
    """Blending weights of window ``k``'s core: rising over its overlap with the previous core, falling
    over its overlap with the next, 1 elsewhere (always > 0)."""
    _, _, lo, hi = wins[k]
    w = np.ones(hi - lo, np.float32)
    i = np.arange(lo, hi) + 0.5
    if k > 0 and wins[k - 1][3] > lo:
        end = wins[k - 1][3]
        w = np.minimum(w, np.clip((i - lo) / (end - lo), 0, 1))
    if k + 1 < len(wins) and wins[k + 1][2] < hi:
        start = wins[k + 1][2]
        w = np.minimum(w, np.clip((hi - i) / (hi - start), 0, 1))
    return w


def check_tile(tile: int | None, model_halo: int, f: int) -> int | None:
    """``--tile`` rounded down to a multiple of ``f``; refused when the halos leave too small a core."""
    if tile is None:
        return None
    need = 2 * model_halo + 2 * f
    if tile // f * f < need:
        raise UserError(f"--tile {tile}: too small for this model (halo {model_halo} voxels on each side); "
                        f"expected at least {need}")
    return tile // f * f


def infer(generator: Generator, x: np.ndarray, dims: int, f: int, margin: int, tile: int | None,
          device: torch.device) -> np.ndarray:
    """The generator on a whole frame, in overlapping windows (``tile`` None: one window).

    ``x``: float32 ``(C, Z, Y, X)`` network inputs. 3-D models tile (Z, Y, X); 2-D models take the z
    slices as a batch and tile (Y, X). Returns float32 ``(Z, Y, X)`` network outputs.
    """
    spatial = x.shape[-dims:]
    padded = [math.ceil(n / f) * f for n in spatial]
    xp = np.pad(x, [(0, 0)] * (x.ndim - dims) + [(0, p - n) for p, n in zip(padded, spatial)], mode="edge")
    axes = [windows(p, p if tile is None else min(tile, p), margin, f) for p in padded]
    lead = x.shape[1:-dims]  # (Z,) for 2-D models, () for 3-D
    out = np.zeros((*lead, *padded), np.float32)
    total = np.zeros(padded, np.float32)
    with torch.no_grad():
        for ks in itertools.product(*[range(len(a)) for a in axes]):
            wins = [a[k] for a, k in zip(axes, ks)]
            piece = xp[(Ellipsis, *[slice(a, b) for a, b, _, _ in wins])]
            pred = _run(generator, piece, dims, device)
            core = tuple(slice(lo, hi) for _, _, lo, hi in wins)
            local = tuple(slice(lo - a, hi - a) for a, _, lo, hi in wins)
            weight = _ramp(axes[0], ks[0])
            for axis in range(1, dims):
                weight = np.multiply.outer(weight, _ramp(axes[axis], ks[axis]))
            out[(Ellipsis, *core)] += weight * pred[(Ellipsis, *local)]
            total[core] += weight
    return (out / total)[(Ellipsis, *[slice(0, n) for n in spatial])]


def _run(generator: Generator, piece: np.ndarray, dims: int, device: torch.device) -> np.ndarray:
    """One window: ``(C, *lead, *window)`` -> ``(*lead, *window)``."""
    if dims == 3:
        t = torch.from_numpy(np.ascontiguousarray(piece))[None].to(device)
        return generator(t)[0, 0].float().cpu().numpy()
    slices = np.ascontiguousarray(np.moveaxis(piece, 1, 0))  # (Z, C, Y, X): slices as the batch
    step = max(1, SLICE_BATCH_VOXELS // int(np.prod(slices.shape[-2:])))
    parts = [generator(torch.from_numpy(slices[i:i + step]).to(device))[:, 0].float().cpu().numpy()
             for i in range(0, len(slices), step)]
    return np.concatenate(parts)


def network_input(model: Model, frame: np.ndarray, intensity: Intensity | None) -> np.ndarray:
    """What the generator sees of a frame ``(Z, Y, X)``: its mask channels (paired) or its normalised
    intensities ``(1, Z, Y, X)`` (unpaired, by the input dataset's own ``intensity``)."""
    return mask_channels(frame) if model.config.paired else intensity.normalise(frame)[None]


def translate(model: Model, frame: np.ndarray, intensity: Intensity | None, tile: int | None = None) -> np.ndarray:
    """One frame (unpaired: its image; paired: its masks) -> float32 ``(Z, Y, X)`` on the real scale."""
    c = model.config
    y = infer(model.generator, network_input(model, frame, intensity), c.dims, c.down_factor, model.halo,
              tile, model.device)
    return model.intensities["real"].restore(y)


# --------------------------------------------------------------------------
# the output folder

def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _prepare_output(out: Path, replace: bool, log: Log) -> None:
    """Refuse a folder holding anything but an earlier ``apply`` output; ``replace`` removes that one."""
    found = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not found:
        return
    if not (out / RECORD).is_file():
        raise UserError(f"{out}: the output folder is not empty ({len(found)} entries, e.g. {sorted(found)[0].name}) "
                        f"and holds no {RECORD}; choose an empty or new folder")
    if not replace:
        raise UserError(f"{out}: holds an earlier output of realism.py apply ({RECORD}); pass {REPLACE_FLAG} to "
                        "remove it first, or choose another output folder")
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    log(f"note: {out}: removed the earlier output ({len(found)} entries), as {REPLACE_FLAG} asks")


def _layout(path: Path) -> tuple[str, list[Path]]:
    """``("ctc", sequence folders)``, ``("frames", [folder])`` or ``("stack", [file])``."""
    if path.is_dir():
        sequences = ctc_sequences(path)
        if sequences:
            return "ctc", sequences
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES]
        if len(files) == 1 and len(tiff_info(files[0]).shape) == 4:
            return "stack", files
        return "frames", [path]
    return "stack", [path]


def _copy(src: Path, dst: Path) -> None:
    """Byte for byte (a file or a folder tree)."""
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _write_stack(path: Path, frames: Iterator[np.ndarray], n: int, source: Path) -> None:
    """A 4-D ``(T, Z, Y, X)`` stack, frame by frame: OME-TIFF for ``.ome.tif`` names (uint16), else ImageJ."""
    vox = voxel_size_zyx(source)
    first = next(frames)
    stream = itertools.chain([first], frames)
    if path.name.lower().endswith((".ome.tif", ".ome.tiff")) and first.dtype == np.uint16 and vox:
        write_ome_tiff(path, stream, vox, time_increment_s(source) or 1.0, path.name, n_frames=n)
        return
    meta: dict[str, Any] = {"axes": "TZYX"}
    kwargs: dict[str, Any] = {}
    if vox:
        meta.update(spacing=vox[0], unit="um")
        kwargs["resolution"] = (1.0 / vox[2], 1.0 / vox[1])
    pages = (plane for frame in stream for plane in frame)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, pages, shape=(n, *first.shape), dtype=first.dtype, imagej=True, metadata=meta,
                         photometric="minisblack", **kwargs)


def _picture(model: Model, before: np.ndarray, after: np.ndarray, path: Path, label: str) -> None:
    """One z slice of an input frame, of its translation and of a real image (real scale for the last two)."""
    z = before.shape[0] // 2
    real = model.intensities["real"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), dpi=90)
    lo, hi = np.percentile(before[z], (0.5, 99.9)) if not model.config.paired else (0, 1)  # masks: cells white
    panels = ((before[z], lo, hi, f"input ({'masks' if model.config.paired else 'synthetic'}): {label}, z {z}"),
              (after[z], real.low, real.high, f"after realism (model step {model.step})"),
              (model.real_example, real.low, real.high, "a real image (training data)"))
    for ax, (image, vmin, vmax, title) in zip(axes, panels):
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)


def _window_voxels(images: ImageSet, config: RealismConfig, tile: int) -> int:
    """Voxels of the largest network call: one window (3-D), or a batch of slice windows (2-D)."""
    f = config.down_factor
    largest = [max(frame_shape(ref)[a] for ref in images.frames) for a in range(3)]
    padded = [math.ceil(n / f) * f for n in largest]
    if config.dims == 3:
        return math.prod(min(tile, n) for n in padded)
    plane = math.prod(min(tile, n) for n in padded[1:])
    return plane * min(largest[0], max(1, SLICE_BATCH_VOXELS // plane))


@dataclass
class _Job:
    """What ``apply`` translates, checked: the input's layout and files, the input intensity scale
    (unpaired models) and the window edge."""

    source: Path
    kind: str
    parts: list[Path]
    images: ImageSet
    intensity: Intensity | None
    tile: int


def _check(model: Model, run_dir: Path, source: Path, out: Path, tile: int | None, ignore_memory: bool,
           log: Log) -> _Job:
    """Every refusal of ``apply`` before anything is written, in one line each."""
    c = model.config
    if not source.exists():
        raise UserError(f"{source}: input not found (expected a CTC dataset, a folder of 3-D TIFF frames or a 4-D "
                        "TIFF stack)")
    if _inside(out, source) or _inside(source, out) or _inside(out, run_dir) or _inside(run_dir, out):
        raise UserError(f"--out {out}: must lie outside the input {source} and the model {run_dir} (and hold "
                        "neither)")
    tile = check_tile(DEFAULT_TILE[c.dims] if tile is None else tile, model.halo, c.down_factor)
    kind, parts = _layout(source)
    images = collect_images(source, None, "input images")
    if c.paired and not all(m is not None for m in images.masks):
        raise UserError(f"{source}: the paired model {run_dir} translates masks, but {images.masks.count(None)} of "
                        f"{len(images.frames)} frames have none (expected a CTC dataset with NN_GT/SEG or TRA, or "
                        "an OME-TIFF with its _labels.ome.tif)")
    intensity = None if c.paired else measure_intensity(images.frames, c.percentiles, "input images")
    check_memory(BYTES_PER_VOXEL_CHANNEL * _window_voxels(images, c, tile) * c.channels[0], model.device,
                 f"realism apply into {out}", "use a smaller --tile", ignore_memory, log)
    return _Job(source, kind, parts, images, intensity, tile)


def _translated(model: Model, job: _Job, shown: int, seen: dict[str, np.ndarray],
                progress: bool) -> Iterator[tuple[int, np.ndarray]]:
    """``(t, frame on the real recordings' file scale)`` for every input frame, in order; frame ``shown``'s
    input and translation are kept in ``seen`` (``before``, ``after``) for the picture."""
    paired, images = model.config.paired, job.images
    with tqdm(total=len(images.frames), unit="frame", disable=not progress, dynamic_ncols=True,
              desc="realism apply") as bar:
        for t in range(len(images.frames)):
            image, masks = read_pair(images, t) if paired else (read_frame(images.frames[t]), None)
            values = translate(model, masks if paired else image, job.intensity, job.tile)
            if t == shown:
                seen["before"], seen["after"] = (masks if paired else image), values
            yield t, model.intensities["real"].to_file(values)
            bar.update(1)


def _write_images(job: _Job, frames: Iterator[tuple[int, np.ndarray]], staging: Path) -> None:
    """The translated frames in the input's layout under ``staging`` (a stack keeps its labels file)."""
    frame_refs = job.images.frames
    if job.kind == "stack":
        src = job.parts[0]
        _write_stack(staging / src.name, (v for _, v in frames), len(frame_refs), src)
        if src.name.lower().endswith((".ome.tif", ".ome.tiff")) and labels_path(src).is_file():
            _copy(labels_path(src), staging / labels_path(src).name)
        return
    for t, values in frames:
        ref = frame_refs[t]
        rel = Path(ref.path.parent.name, ref.path.name) if job.kind == "ctc" else Path(ref.path.name)
        write_tiff(staging / rel, values, voxel_size_zyx(ref.path))


def apply(run_dir: str | Path, source: str | Path, out: str | Path, tile: int | None = None,
          device: str | None = None, replace: bool = False, progress: bool = True, log: Log = print,
          ignore_memory: bool = False) -> Path:
    """Translate the dataset ``source`` with the model in ``run_dir`` into ``out``; returns ``out``."""
    run_dir, source, out = Path(run_dir), Path(source), Path(out)
    model = load_model(run_dir, device)
    job = _check(model, run_dir, source, out, tile, ignore_memory, log)
    n = len(job.images.frames)
    out = ensure_writable_dir(out, "output")
    with hold_lock(out, "the output folder", log):
        _prepare_output(out, replace, log)
        clean_stale_temporaries(out, log)
        staging = temp_name(out / "dataset")
        staging.mkdir()
        t0 = time.time()
        try:
            shown, seen = n // 2, {}
            _write_images(job, _translated(model, job, shown, seen, progress), staging)
            copied, left = _copy_ground_truth(job.kind, job.parts, source, staging)
            if left:
                log(f"note: {source}: left out {', '.join(left)} (they hold images that were not translated)")
            record = {"format": FORMAT, "version": __version__, "model": str(run_dir.resolve()),
                      "model_step": model.step, "config": model.config.as_dict(), "input": str(source.resolve()),
                      "layout": job.kind, "frames": n, "tile": job.tile, "halo": model.halo,
                      "receptive_radius": model.radius,
                      "input_intensity": job.intensity.as_dict() if job.intensity else None,
                      "real_intensity": model.intensities["real"].as_dict(), "copied_unchanged": copied,
                      "seconds": round(time.time() - t0, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _picture(model, seen["before"], seen["after"], staging / PICTURE, job.images.frames[shown].label)
            (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n")
            for entry in sorted(staging.iterdir(), key=lambda p: p.name == RECORD):  # the record last
                entry.replace(out / entry.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log(f"realism: {n} frame(s) of {source} → {out} ({time.time() - t0:.1f} s)")
    return out


def _copy_ground_truth(kind: str, parts: list[Path], source: Path, staging: Path) -> tuple[list[str], list[str]]:
    """Copy the ground truth next to the translated images, byte for byte; (copied, left out) names."""
    if kind != "ctc":
        return [], []
    names = {p.name for p in parts}
    if len(parts) == 1 and parts[0] == source:  # one sequence folder: its own _GT/_ST siblings
        candidates = [source.with_name(source.name + s) for s in ("_GT", "_ST")]
        chosen = [p for p in candidates if p.exists()]
        left: list[str] = []
    else:
        entries = sorted(p for p in source.iterdir() if not p.name.startswith(".") and p.name not in names)
        ground = lambda p: ((p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)  # noqa: E731
                            or (p.is_dir() and p.name.endswith(("_GT", "_ST"))))
        chosen = [p for p in entries if ground(p)]
        left = [p.name + ("/" if p.is_dir() else "") for p in entries if not ground(p)]
    for p in chosen:
        _copy(p, staging / p.name)
    return [p.name for p in chosen], left


__all__ = ["RECORD", "PICTURE", "DEFAULT_TILE", "Model", "load_model", "windows", "check_tile", "infer",
           "network_input", "translate", "apply"]
