"""The training set: SDF sequence files turned into per-frame point samples (docs/method.md §1–§2).

A training item is one frame: its sampled points, its time and its sequence
id (the row of the code table). Items are ordered sequence by sequence, frame
by frame.

How samples are held (``layout``):

* ``"compact"`` (default): flat grid indices (int32) with their SDF values
  (float32, or float16 with ``value_dtype="float16"``); coordinates follow
  from the indices when a batch is made (:func:`autodecoder.geometry.index_to_points`).
  8 bytes per sample (6 with float16).
* ``"original"``: float32 rows ``(x, y, z, sdf)`` per sample, as the original
  holds them (16 bytes per sample): the plain path's memory baseline.

Both layouts draw the very same samples from the same seed.

Which samples (see :mod:`autodecoder.sampling`): a fixed draw per frame
(default); with ``on_the_fly`` (the original's ``OnTheFlySampling``) a
full-size pool per frame and a fresh draw from it every epoch; with ``fresh``
(this project's ``FreshSampling``) a bounded per-frame pool of distinct near
and far points (``pool_factor`` times what one draw needs) and a fresh draw
from it every epoch, so no whole grid is ever held.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import frame_times
from autodecoder.experiment.keys import default
from autodecoder.model.points import index_to_points
from autodecoder.io.discovery import list_sequence_files
from autodecoder.io.sequences import SequenceFile
from autodecoder.training import sampling

LAYOUTS = ("compact", "original")
VALUE_DTYPES = {"float32": np.float32, "float16": np.float16}


class Batch:
    """Frames of one optimisation step (B frames, n points each).

    Attributes:
        points: float32 (B, n, 3), coordinates in [-1, 1] (computed from ``index`` on first use when
            the batch was made from grid indices).
        sdf: float32 (B, n), target SDF values.
        times: float32 (B,), frame times in [-1, 1].
        seq_ids: int64 (B,), rows of the code table.
        index: int32 (B, n) flat grid indices of the points, or None.
        grid_shape: the grid the indices refer to, or None.
    """

    def __init__(self, points: torch.Tensor | None, sdf: torch.Tensor, times: torch.Tensor, seq_ids: torch.Tensor,
                 index: torch.Tensor | None = None, grid_shape: tuple[int, int, int] | None = None) -> None:
        if points is None and index is None:
            raise ValueError("a batch needs points or grid indices")
        self._points = points
        self.sdf = sdf
        self.times = times
        self.seq_ids = seq_ids
        self.index = index
        self.grid_shape = grid_shape

    @property
    def points(self) -> torch.Tensor:
        if self._points is None:
            self._points = index_to_points(self.index.long(), self.grid_shape)
        return self._points

    def to(self, device: torch.device) -> "Batch":
        mv = (lambda t: None if t is None else t.to(device))
        return Batch(mv(self._points), self.sdf.to(device), self.times.to(device), self.seq_ids.to(device),
                     mv(self.index), self.grid_shape)


def data_extent(folder: str | Path, use_hdf5: bool) -> tuple[tuple[int, int, int], int]:
    """(grid, total frame count) of the training files of ``folder``, from their headers (nothing is read)."""
    frames, grid = 0, (0, 0, 0)
    for path in list_sequence_files(folder, use_hdf5):
        with SequenceFile(path) as f:
            frames += f.n_frames
            grid = max(grid, f.grid_shape, key=lambda g: int(np.prod(g)))
    return grid, frames


#: No SDF in grid units (nor a normalised one) exceeds the diameter of the [-1, 1]³ cube: beyond it the
#: values are in voxels or garbage (e.g. 1e30), and the frame cannot train.
SDF_LIMIT = 2 * 3 ** 0.5
#: Beyond ±(1 + this) a frame is not normalised as the original's data are (divided by their largest |value|).
NORMALISED_MARGIN = 0.01


def check_frame(frame: np.ndarray, where: str) -> tuple[bool, float]:
    """(whether the frame has a cell, i.e. a voxel with sdf <= 0; its largest |value|). Refuses a frame
    whose values exceed :data:`SDF_LIMIT` (it cannot train); the caller warns about empty frames and
    values beyond ±1 (they can train)."""
    top = float(np.abs(frame).max())
    if top > SDF_LIMIT:
        raise UserError(f"{where}: SDF values reach {top:.4g}, far outside [-1, 1]: not a normalised SDF (each "
                        "frame must be divided by its largest absolute value, as the data preparation does)")
    return bool((frame <= 0).any()), top


def _warn_frames(path: Path, empty: list[int], top: float) -> None:
    if empty:
        warnings.warn(f"{path}: frame(s) {', '.join(map(str, empty))} have no voxel inside the cell (no sdf <= 0): "
                      "they train as empty space", stacklevel=3)
    if top > 1 + NORMALISED_MARGIN:
        warnings.warn(f"{path}: SDF values reach {top:.3g}, beyond [-1, 1]: the original's data are normalised per "
                      "frame (the near band 0.3 and the filopodial threshold 0.035 assume it)", stacklevel=3)


class TrainingSet:
    """All frames of the sequence files ``files`` (file ``s`` is row ``s`` of the code table), sampled
    as the original samples them.

    Args:
        files: ``.h5``/``.mat`` SDF sequences on one grid.
        fraction: ``TrainSampleFraction``.
        on_the_fly: ``OnTheFlySampling``: keep a full-size pool per frame and draw a fresh fraction
            from it every epoch.
        seed: seeds every draw (see :mod:`autodecoder.training.sampling`).
        progress: show a progress bar while loading.
        layout: ``"compact"`` (grid indices + values) or ``"original"`` (float32 x, y, z, sdf rows).
        fresh: ``FreshSampling``: a bounded pool per frame, a fresh draw every epoch.
        pool_factor: ``SamplePoolFactor``, the size of that pool in draws (default: the specs' default).
        value_dtype: ``"float32"`` or ``"float16"`` (``SampleValueDtype``; compact layout only).
    """

    def __init__(self, files: list[Path], fraction: float, on_the_fly: bool, seed: int, progress: bool = True, *,
                 layout: str = "compact", fresh: bool = False, pool_factor: float | None = None,
                 value_dtype: str = "float32") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        if value_dtype not in VALUE_DTYPES:
            raise ValueError(f"value_dtype must be one of {tuple(VALUE_DTYPES)}")
        if fresh and on_the_fly:
            raise UserError("\"FreshSampling\" and \"OnTheFlySampling\" are two ways of drawing fresh samples "
                            "every epoch; choose one")
        self.files = [Path(f) for f in files]
        self.on_the_fly, self.fresh = on_the_fly, fresh
        self.layout = "compact" if fresh else layout
        self.value_dtype = value_dtype if self.layout == "compact" else "float32"
        self.seed, self.fraction = int(seed), fraction
        self.pool_factor = float(default("SamplePoolFactor") if pool_factor is None else pool_factor)
        self.grid_shape: tuple[int, int, int] | None = None
        self.frames_per_sequence: list[int] = []
        rows: dict[str, list] = {k: [] for k in ("seq", "frame", "time", "index", "values", "near", "far", "once")}
        for s, path in enumerate(tqdm(self.files, desc="loading data", unit="file", disable=not progress)):
            with SequenceFile(path) as f:
                self._check_grid(f)
                self.frames_per_sequence.append(f.n_frames)
                empty, top = [], 0.0
                for t, (frame, time) in enumerate(zip(f.frames(), frame_times(f.n_frames))):
                    has_cell, frame_top = check_frame(frame, f"{path}: frame {t}")
                    empty += [] if has_cell else [t]
                    top = max(top, frame_top)
                    self._sample_frame(frame, s, t, f"{path}: frame {t}", rows)
                    rows["seq"].append(s)
                    rows["frame"].append(t)
                    rows["time"].append(time)
                _warn_frames(path, empty, top)
        self._store(rows)

    @classmethod
    def from_folder(cls, folder: str | Path, use_hdf5: bool, num_sequences: int, fraction: float,
                    on_the_fly: bool, seed: int, progress: bool = True, **kw) -> "TrainingSet":
        """The training files of ``folder`` (``.h5`` with ``use_hdf5``, else ``.mat``; string order), which
        must be ``num_sequences`` (one code per file)."""
        files = list_sequence_files(folder, use_hdf5)
        if len(files) != num_sequences:
            raise UserError(f"{folder}: holds {len(files)} data files but \"NumSequences\" is "
                            f"{num_sequences}; they must match (one latent code per file)")
        return cls(files, fraction, on_the_fly, seed, progress, **kw)

    @classmethod
    def from_specs(cls, folder: Path, specs: dict, seed: int, progress: bool = True) -> "TrainingSet":
        """The training set as ``specs.json`` describes it (``FastPath``: samples as grid indices; the plain
        path holds the original's float32 x, y, z, sdf rows)."""
        return cls.from_folder(folder, specs["UseHDF5"], specs["NumSequences"], specs["TrainSampleFraction"],
                               specs["OnTheFlySampling"], seed, progress,
                               layout="compact" if specs["FastPath"] else "original", fresh=specs["FreshSampling"],
                               pool_factor=specs["SamplePoolFactor"], value_dtype=specs["SampleValueDtype"])

    def _check_grid(self, f: SequenceFile) -> None:
        if self.grid_shape is None:
            self.grid_shape = f.grid_shape
            self.n_points = sampling.sample_count(int(np.prod(self.grid_shape)), self.fraction)
            if self.n_points < 1:
                raise UserError(f"\"TrainSampleFraction\" {self.fraction} draws no point from a "
                                f"{self.grid_shape} grid ({f.path.name})")
        elif f.grid_shape != self.grid_shape:
            raise UserError(f"{f.path}: frames of size {f.grid_shape} but {self.files[0].name} has "
                            f"{self.grid_shape}; all files of a data folder must share one grid size")

    def _sample_frame(self, frame: np.ndarray, s: int, t: int, where: str, rows: dict[str, list]) -> None:
        """Draw the samples (or the pool) of frame ``t`` of sequence ``s`` into ``rows``."""
        flat = frame.reshape(-1)
        if self.fresh:
            near, far, once = sampling.fresh_pool(frame, self.n_points, self.pool_factor,
                                                  sampling.rng_for(self.seed, sampling.DRAW_FRESH_POOL, s, t), where)
            idx = np.concatenate([near, far])
            rows["near"].append(len(near))
            rows["far"].append(len(far))
            rows["once"].append(once)
        elif self.on_the_fly:  # the original's full-size pool, drawn once
            idx = sampling.draw(frame, flat.size, sampling.rng_for(self.seed, sampling.DRAW_POOL, s, t), where)
        else:
            idx = sampling.draw(frame, self.n_points, sampling.rng_for(self.seed, sampling.DRAW_FIXED, s, t), where)
        if self.layout == "original":
            pts = index_to_points(torch.from_numpy(idx), self.grid_shape).numpy()
            rows["index"].append(np.concatenate([pts, flat[idx, None]], axis=1))  # (n, 4) float32
        else:
            rows["index"].append(idx.astype(np.int32))
            rows["values"].append(flat[idx].astype(VALUE_DTYPES[self.value_dtype]))

    def _store(self, rows: dict[str, list]) -> None:
        self.seq_ids = torch.tensor(rows["seq"], dtype=torch.int64)
        self.frame_ids = torch.tensor(rows["frame"], dtype=torch.int64)
        self.times = torch.from_numpy(np.asarray(rows["time"], dtype=np.float32))
        self.samples = self.index = self.values = None
        if self.layout == "original":
            self.samples = torch.from_numpy(np.stack(rows["index"]))  # (F, n, 4) or pool (F, N, 4), float32
        elif self.fresh:
            counts = np.asarray(rows["near"], dtype=np.int64) + np.asarray(rows["far"], dtype=np.int64)
            self.pool_start = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
            self.pool_near = torch.tensor(rows["near"], dtype=torch.int64)
            self.pool_far = torch.tensor(rows["far"], dtype=torch.int64)
            self.pool_all_near = torch.tensor(rows["once"], dtype=torch.bool)
            self.index = torch.from_numpy(np.concatenate(rows["index"]))  # flat pools (sum of pool sizes,)
            self.values = torch.from_numpy(np.concatenate(rows["values"]))
        else:
            self.index = torch.from_numpy(np.stack(rows["index"]))  # (F, n) or pool (F, N)
            self.values = torch.from_numpy(np.stack(rows["values"]))  # same shape

    def __len__(self) -> int:
        return len(self.seq_ids)

    def nbytes(self) -> int:
        """Bytes held by the samples (or pools)."""
        return sum(t.numel() * t.element_size() for t in (self.samples, self.index, self.values) if t is not None)

    def _pool_values(self, i: int) -> np.ndarray:
        if self.layout == "original":
            return self.samples[i, :, 3].numpy()
        return self.values[i].numpy()

    def _picks(self, items: list[int], epoch: int) -> list[torch.Tensor]:
        """Positions in each item's pool of this epoch's draw (fresh or on-the-fly sampling)."""
        picks = []
        for i in items:
            s, t = int(self.seq_ids[i]), int(self.frame_ids[i])
            if self.fresh:
                rng = sampling.rng_for(self.seed, sampling.DRAW_FRESH, epoch, s, t)
                pick = sampling.draw_from_pool(int(self.pool_near[i]), int(self.pool_far[i]),
                                               bool(self.pool_all_near[i]), self.n_points, rng)
                picks.append(torch.from_numpy(pick) + int(self.pool_start[i]))
            else:
                rng = sampling.rng_for(self.seed, sampling.DRAW_EPOCH, epoch, s, t)
                picks.append(torch.from_numpy(sampling.draw(self._pool_values(i), self.n_points, rng,
                                                            f"{self.files[s]}: frame {t}")))
        return picks

    def batch(self, items: torch.Tensor, epoch: int) -> Batch:
        """The samples of frames ``items`` (indices into this set) for ``epoch`` (1-based).

        With the compact layout the batch carries the grid indices; its ``points`` are computed from
        them when first used.
        """
        items = torch.as_tensor(items, dtype=torch.int64)
        times, seq = self.times[items], self.seq_ids[items]
        if self.fresh or self.on_the_fly:
            picks = self._picks(items.tolist(), epoch)
            if self.layout == "original":
                rows = torch.stack([self.samples[i][p] for i, p in zip(items.tolist(), picks)])
                return Batch(rows[..., :3], rows[..., 3], times, seq)
            if self.fresh:
                index, values = torch.stack([self.index[p] for p in picks]), torch.stack([self.values[p] for p in picks])
            else:
                index = torch.stack([self.index[i][p] for i, p in zip(items.tolist(), picks)])
                values = torch.stack([self.values[i][p] for i, p in zip(items.tolist(), picks)])
        elif self.layout == "original":
            rows = self.samples[items]
            return Batch(rows[..., :3], rows[..., 3], times, seq)
        else:
            index, values = self.index[items], self.values[items]
        return Batch(None, values.float(), times, seq, index=index, grid_shape=self.grid_shape)
