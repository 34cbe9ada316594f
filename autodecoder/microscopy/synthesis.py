"""A synthesis, end to end: cells → scene → frames → lineage → datasets on disk (``synthesize.py``).

For each sequence: the cells' bounding spheres are placed in the field and move
(:mod:`autodecoder.microscopy.scene`), every frame is rendered stage by stage
(:class:`autodecoder.microscopy.frames.FrameRenderer`), the cell labels go through the lineage
tracker (:class:`autodecoder.microscopy.lineage.LineageTracker`), and the decided frames are written
as the Cell Tracking Challenge layout, OME-TIFF (and OME-Zarr), 2-D projections and, on request,
the interim stages. Memory holds a few frames, whatever the number of frames. The dataset is built in
a staging folder and moved into place when complete, so an interrupted run leaves nothing half
written; ``synthesis.json`` records every parameter, the seed, the cells and the photon budget.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tifffile
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy import camera as cam
from autodecoder.microscopy import optics, scene
from autodecoder.microscopy.cells import Cell
from autodecoder.microscopy.config import SynthesisConfig, field_um, voxel_size_zyx
from autodecoder.microscopy.ctc import CTCWriter, write_tiff
from autodecoder.microscopy.frames import FrameRenderer, FrameStages
from autodecoder.microscopy.lineage import LineageTracker
from autodecoder.microscopy.ome import labels_path, write_ome_tiff, write_ome_zarr
from autodecoder.microscopy.projections import write_projection_frame

RECORD = "synthesis.json"
#: Where the shards of a ``--shard I/N`` synthesis leave their records until the last one merges them.
SHARD_RECORDS = ".synthesis-shards"
#: Purposes of the random streams of a sequence (part of each stream's key, with the seed and the sequence).
SCENE, BRIGHTNESS, TEXTURE, NOISE, LIGHT = 1, 2, 3, 4, 5
#: What a dataset puts in its folder (besides the sequences' CTC folders): removed by ``--replace``.
OWN_ENTRIES = ("ome", "projections", "interim", RECORD, SHARD_RECORDS)


def rng(seed: int, sequence: int, purpose: int, *more: int) -> np.random.Generator:
    """The random stream of one purpose of one sequence (draws never depend on the order of others)."""
    return np.random.default_rng(np.random.SeedSequence([seed, sequence, purpose, *more]))


@dataclass
class SequencePlan:
    """The cells of one sequence and where they are: bounding radii (µm), motion, brightness, texture seeds."""

    cells: list[Cell]
    radii_um: np.ndarray
    motion: scene.Motion
    brightness: np.ndarray
    texture_seeds: list[int]
    record: dict[str, Any] = field(default_factory=dict)


def plan_sequence(cells: list[Cell], config: SynthesisConfig, seed: int, k: int) -> SequencePlan:
    """Bound the cells, place them, move them, and draw their brightness and texture seeds."""
    half = config.field.cube_size_um / 2
    radii = np.array([c.bound(config.cells.threshold) * half for c in cells])
    s = config.scene
    settings = scene.SceneSettings(s.layout, s.min_gap_um, s.max_tries, s.margin_um, tuple(s.drift_um_per_frame),
                                   s.step_um, s.keep_apart, s.may_leave, s.offset_frames)
    r = rng(seed, k, SCENE)
    extent = field_um(config)
    centres = scene.place(radii, extent, settings, r)
    motion = scene.simulate(centres, radii, config.field.frames, extent, settings, r)
    cv = config.phantom.brightness_cv
    sigma = np.sqrt(np.log1p(cv * cv))
    brightness = rng(seed, k, BRIGHTNESS).lognormal(-sigma * sigma / 2, sigma, len(cells))  # mean 1
    tex = [int(v) for v in rng(seed, k, TEXTURE).integers(0, 2**31, len(cells))]
    record = {"cells": [{**c.info(), "radius_um": float(rad), "start_um_zyx": [float(v) for v in c0],
                         "time_offset_frames": int(off), "brightness": float(b)}
                        for c, rad, c0, off, b in zip(cells, radii, centres, motion.offsets, brightness)]}
    return SequencePlan(cells, radii, motion, brightness, tex, record)


def _frames(plan: SequencePlan, renderer: FrameRenderer, config: SynthesisConfig, seed: int,
            k: int) -> Iterator[tuple[int, FrameStages]]:
    """Render the frames of one sequence: ``(frame, stages)`` in order."""
    life = config.cells.life_frames or config.field.frames
    o = config.optics
    light = (optics.uneven_illumination(config.field.shape_zyx[1:], o.illumination_strength,
                                        int(rng(seed, k, LIGHT).integers(2**31)))
             if o.illumination_strength > 0 else None)
    for f in range(config.field.frames):
        times = np.array([scene.cell_time(f, int(off), life) for off in plan.motion.offsets])
        owner, boxes = renderer.owners(plan.cells, plan.motion.centres[f], plan.radii_um, plan.motion.present[f],
                                       times)
        cells_out = owner[renderer.ovs // 2::renderer.ovs].astype(np.uint32)
        fine = renderer.phantom(owner, plan.cells, boxes, plan.brightness, plan.texture_seeds)
        binned, blurred = renderer.optics(fine, cells_out, f, light)
        yield f, FrameStages(cells_out, binned, blurred)


def _budget(first: FrameStages, renderer: FrameRenderer, record: dict) -> tuple[float, cam.CameraSettings]:
    """Photons per unit of the blurred image and the camera, from the targets (CTC SNR, CR) on the first frame."""
    c = renderer.config.camera
    settings = renderer.camera_settings()
    top = float(first.blurred.max())
    if top <= 0:
        raise UserError("the first frame holds no cell in the field of view; place the cells inside it")
    fg = first.cells > 0
    if c.target_snr is not None and c.target_cr is not None and fg.any() and not fg.all():
        peak, background = cam.solve_photon_budget(first.blurred, fg, c.target_snr, c.target_cr, settings)
    else:
        peak, background = c.peak_photons, c.background_photons
    settings = cam.CameraSettings(settings.quantum_efficiency, settings.gain_adu_per_e, settings.offset_adu,
                                  settings.read_noise_e, settings.em_gain, settings.bit_depth, float(background))
    record.update(peak_photons=float(peak), background_photons=float(background))
    return float(peak) / top, settings


def _images(plan: SequencePlan, renderer: FrameRenderer, config: SynthesisConfig, seed: int, k: int,
            bar: tqdm) -> Iterator[tuple[FrameStages, np.ndarray]]:
    """Decided frames of one sequence in order: (stages with the image, track labels); the tracker's
    rows are in ``plan.record["tracks"]`` at the end."""
    c = config.cells
    tracker = LineageTracker(voxel_size_zyx(config), c.min_frames, c.min_volume_um3)
    scale = settings = None
    for f, stages in _frames(plan, renderer, config, seed, k):
        if scale is None:
            scale, settings = _budget(stages, renderer, plan.record)
        stages.image = renderer.expose(stages.blurred, scale, settings, rng(seed, k, NOISE, f))
        if f == 0 and (stages.cells > 0).any() and not (stages.cells > 0).all():
            snr, cr = cam.snr_cr(stages.image, stages.cells > 0)
            plan.record.update(measured_snr_first_frame=snr, measured_cr_first_frame=cr)
        bar.update(1)
        for done in tracker.push(stages.cells, stages):
            yield done.payload, done.labels
    rest = tracker.finish()  # the table is complete now: consumers may stop pulling after the last frame
    plan.record["tracks"] = [list(map(int, row)) for row in tracker.rows()]
    for done in rest:
        yield done.payload, done.labels


class DatasetWriter:
    """Writes the decided frames of one sequence into the staging folder, in the layouts asked for."""

    def __init__(self, root: Path, config: SynthesisConfig, k: int) -> None:
        self.root, self.config, self.k = root, config, k
        self.name = f"{k:02d}"
        self.vox = voxel_size_zyx(config)
        self.ctc = CTCWriter(root, k, config.field.frames, self.vox) if config.output.ctc else None
        self.labels: deque = deque()

    def frame(self, t: int, stages: FrameStages, tracks: np.ndarray) -> None:
        if self.ctc is not None:
            self.ctc.write_frame(t, stages.image, tracks)
        if self.config.output.projections:
            write_projection_frame(self.root / "projections" / self.name, t, stages.image, tracks,
                                   self.config.field.frames)
        if self.config.output.save_interim:
            for stage, array in (("labels", tracks), ("phantom", stages.phantom), ("blurred", stages.blurred),
                                 ("noisy", stages.image)):
                _write_stage(self.root / "interim" / self.name / stage / f"t{t:03d}.tif", array, self.vox)

    def ome_path(self) -> Path:
        return self.root / "ome" / f"sequence_{self.name}.ome.tif"


def _write_stage(path: Path, array: np.ndarray, vox: tuple[float, float, float]) -> None:
    """One interim stage of one frame: float32 or uint16 ImageJ TIFF calibrated in µm."""
    if array.dtype == np.uint16:
        write_tiff(path, array, vox)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(array, np.float32), imagej=True, resolution=(1 / vox[2], 1 / vox[1]),
                     metadata={"spacing": vox[0], "unit": "um", "axes": "ZYX"}, photometric="minisblack")


def write_sequence(plan: SequencePlan, renderer: FrameRenderer, config: SynthesisConfig, seed: int, k: int,
                   root: Path, bar: tqdm) -> None:
    """Render and write sequence ``k`` (1-based) of the dataset into ``root``."""
    writer = DatasetWriter(root, config, k)
    frames = _images(plan, renderer, config, seed, k, bar)

    def images() -> Iterator[np.ndarray]:
        for t, (stages, tracks) in enumerate(frames):
            writer.frame(t, stages, tracks)
            writer.labels.append(tracks)
            yield stages.image

    if config.output.ome_tiff or config.output.ome_zarr:
        (root / "ome").mkdir(parents=True, exist_ok=True)
        write_ome_tiff(writer.ome_path(), images(), writer.vox, config.field.frame_interval_s,
                       f"sequence {writer.name}", uuid_seed=seed * 100 + k,
                       labels=_popping(writer.labels), n_frames=config.field.frames)
    else:
        for _ in images():
            pass
    if writer.ctc is not None:
        writer.ctc.write_tracks(plan.record["tracks"])
    if config.output.ome_zarr:
        _zarr_from_tiff(writer.ome_path(), config, writer.vox)
        if not config.output.ome_tiff:
            for p in (writer.ome_path(), labels_path(writer.ome_path())):
                p.unlink()


def _popping(queue: deque) -> Iterator[np.ndarray]:
    """The frames ``images()`` queues, one per pull (the OME-TIFF writer pulls an image, then its labels)."""
    while True:
        yield queue.popleft()


def _zarr_from_tiff(path: Path, config: SynthesisConfig, vox: tuple[float, float, float]) -> None:
    """The OME-Zarr copy of a sequence's OME-TIFF (read frame by frame from the file)."""
    images, labels = tifffile.memmap(path, mode="r"), tifffile.memmap(labels_path(path), mode="r")
    write_ome_zarr(path.with_name(path.name.replace(".ome.tif", ".ome.zarr")), iter(images), iter(labels), vox,
                   config.field.frame_interval_s, path.stem, n_frames=len(images))
