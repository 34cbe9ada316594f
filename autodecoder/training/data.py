"""The training set: a folder of SDF sequences turned into per-frame point samples (SPEC §1–§2).

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

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from autodecoder.training import sampling
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import frame_times
from autodecoder.model.points import index_to_points
from autodecoder.io.sequences import SequenceFile, list_sequence_files

LAYOUTS = ("compact", "original")
VALUE_DTYPES = {"float32": np.float32, "float16": np.float16}
#: Default of ``SamplePoolFactor``: the fresh-sampling pool holds this many draws' worth of points.
POOL_FACTOR = 5.0


class Batch:
    """Frames of one optimisation step (B frames, n points each).

    Attributes:
        points: float32 (B, n, 3), coordinates in [-1, 1] (computed from
            ``index`` on first use when the batch was made from grid indices).
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

    @points.setter
    def points(self, value: torch.Tensor) -> None:
        self._points = value

    def to(self, device: torch.device) -> "Batch":
        mv = (lambda t: None if t is None else t.to(device))
        return Batch(mv(self._points), self.sdf.to(device), self.times.to(device), self.seq_ids.to(device),
                     mv(self.index), self.grid_shape)


class TrainingSet:
    """All training frames of ``folder``, sampled as the original samples them.

    Args:
        folder: folder of ``.h5`` (``use_hdf5``) or ``.mat`` files, one per sequence.
        use_hdf5: which files to read.
        num_sequences: the ``NumSequences`` of the specs; must equal the number of files.
        fraction: ``TrainSampleFraction``.
        on_the_fly: ``OnTheFlySampling``: keep a full-size pool per frame and
            draw a fresh fraction from it every epoch.
        seed: seeds every draw (see :mod:`autodecoder.sampling`).
        progress: show a progress bar while loading.
        layout: ``"compact"`` (grid indices + values) or ``"original"`` (float32 x, y, z, sdf rows).
        fresh: ``FreshSampling``: a bounded pool per frame, a fresh draw every epoch.
        pool_factor: ``SamplePoolFactor``, the size of that pool in draws.
        value_dtype: ``"float32"`` or ``"float16"`` (``SampleValueDtype``; compact layout only).
    """

    def __init__(self, folder: str | Path, use_hdf5: bool, num_sequences: int, fraction: float,
                 on_the_fly: bool, seed: int, progress: bool = True, *, layout: str = "compact",
                 fresh: bool = False, pool_factor: float = POOL_FACTOR, value_dtype: str = "float32") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        if value_dtype not in VALUE_DTYPES:
            raise ValueError(f"value_dtype must be one of {tuple(VALUE_DTYPES)}")
        if fresh and on_the_fly:
            raise UserError("\"FreshSampling\" and \"OnTheFlySampling\" are two ways of drawing fresh samples "
                            "every epoch; choose one")
        self.folder = Path(folder)
        self.files = list_sequence_files(self.folder, use_hdf5)
        if len(self.files) != num_sequences:
            raise UserError(f"{self.folder}: holds {len(self.files)} data files but \"NumSequences\" is "
                            f"{num_sequences}; they must match (one latent code per file)")
        self.on_the_fly = on_the_fly
        self.fresh = fresh
        self.layout = "compact" if fresh else layout
        self.value_dtype = value_dtype if self.layout == "compact" else "float32"
        vdt = VALUE_DTYPES[self.value_dtype]
        self.seed = int(seed)
        self.fraction = fraction
        self.pool_factor = float(pool_factor)
        seq_ids, frame_ids, times, index, values = [], [], [], [], []
        near_counts, far_counts, all_once = [], [], []
        self.grid_shape: tuple[int, int, int] | None = None
        self.frames_per_sequence: list[int] = []
        first: Path | None = None
        for s, path in enumerate(tqdm(self.files, desc="loading data", unit="file", disable=not progress)):
            with SequenceFile(path) as f:
                if self.grid_shape is None:
                    self.grid_shape, first = f.grid_shape, path
                    n_vox = int(np.prod(self.grid_shape))
                    self.n_points = sampling.sample_count(n_vox, fraction)
                    if self.n_points < 1:
                        raise UserError(f"\"TrainSampleFraction\" {fraction} draws no point from a "
                                        f"{self.grid_shape} grid ({first.name})")
                elif f.grid_shape != self.grid_shape:
                    raise UserError(f"{path}: frames of size {f.grid_shape} but {first.name} has "
                                    f"{self.grid_shape}; all files of a data folder must share one grid size")
                self.frames_per_sequence.append(f.n_frames)
                for t, (frame, time) in enumerate(zip(f.frames(), frame_times(f.n_frames))):
                    where = f"{path}: frame {t}"
                    flat = frame.reshape(-1)
                    if fresh:
                        near, far, once = sampling.fresh_pool(
                            frame, self.n_points, self.pool_factor,
                            sampling.rng_for(self.seed, sampling.DRAW_FRESH_POOL, s, t), where)
                        idx = np.concatenate([near, far])
                        near_counts.append(len(near))
                        far_counts.append(len(far))
                        all_once.append(once)
                    elif on_the_fly:  # the original's full-size pool, drawn once
                        idx = sampling.draw(frame, n_vox, sampling.rng_for(self.seed, sampling.DRAW_POOL, s, t), where)
                    else:
                        idx = sampling.draw(frame, self.n_points,
                                            sampling.rng_for(self.seed, sampling.DRAW_FIXED, s, t), where)
                    if self.layout == "original":
                        pts = index_to_points(torch.from_numpy(idx), self.grid_shape).numpy()
                        index.append(np.concatenate([pts, flat[idx, None]], axis=1))  # (n, 4) float32
                    else:
                        index.append(idx.astype(np.int32))
                        values.append(flat[idx].astype(vdt))
                    seq_ids.append(s)
                    frame_ids.append(t)
                    times.append(time)
        self.seq_ids = torch.tensor(seq_ids, dtype=torch.int64)
        self.frame_ids = torch.tensor(frame_ids, dtype=torch.int64)
        self.times = torch.from_numpy(np.asarray(times, dtype=np.float32))
        self.samples: torch.Tensor | None = None
        self.index: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        if self.layout == "original":
            self.samples = torch.from_numpy(np.stack(index))  # (F, n, 4) or pool (F, N, 4), float32
        elif fresh:
            counts = np.asarray(near_counts, dtype=np.int64) + np.asarray(far_counts, dtype=np.int64)
            self.pool_start = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]))
            self.pool_near = torch.tensor(near_counts, dtype=torch.int64)
            self.pool_far = torch.tensor(far_counts, dtype=torch.int64)
            self.pool_all_near = torch.tensor(all_once, dtype=torch.bool)
            self.index = torch.from_numpy(np.concatenate(index))    # flat pools (sum of pool sizes,)
            self.values = torch.from_numpy(np.concatenate(values))
        else:
            self.index = torch.from_numpy(np.stack(index))    # (F, n) or pool (F, N)
            self.values = torch.from_numpy(np.stack(values))  # same shape

    def __len__(self) -> int:
        return len(self.seq_ids)

    def nbytes(self) -> int:
        """Bytes held by the samples (or pools)."""
        return sum(t.numel() * t.element_size() for t in (self.samples, self.index, self.values) if t is not None)

    def _pool_values(self, i: int) -> np.ndarray:
        if self.layout == "original":
            return self.samples[i, :, 3].numpy()
        return self.values[i].numpy()

    def batch(self, items: torch.Tensor, epoch: int) -> Batch:
        """The samples of frames ``items`` (indices into this set) for ``epoch`` (1-based).

        With the compact layout the batch carries the grid indices; its
        ``points`` are computed from them when first used.
        """
        items = torch.as_tensor(items, dtype=torch.int64)
        if self.fresh:
            idx_rows, val_rows = [], []
            for i in items.tolist():
                s, t = int(self.seq_ids[i]), int(self.frame_ids[i])
                start, nn, nf = int(self.pool_start[i]), int(self.pool_near[i]), int(self.pool_far[i])
                pick = sampling.draw_from_pool(nn, nf, bool(self.pool_all_near[i]), self.n_points,
                                               sampling.rng_for(self.seed, sampling.DRAW_FRESH, epoch, s, t))
                pick_t = torch.from_numpy(pick) + start
                idx_rows.append(self.index[pick_t])
                val_rows.append(self.values[pick_t])
            index, values = torch.stack(idx_rows), torch.stack(val_rows)
        elif self.on_the_fly:
            picks = []
            for i in items.tolist():
                s, t = int(self.seq_ids[i]), int(self.frame_ids[i])
                picks.append(torch.from_numpy(sampling.draw(
                    self._pool_values(i), self.n_points,
                    sampling.rng_for(self.seed, sampling.DRAW_EPOCH, epoch, s, t), f"{self.files[s]}: frame {t}")))
            if self.layout == "original":
                rows = torch.stack([self.samples[i][p] for i, p in zip(items.tolist(), picks)])
                return Batch(rows[..., :3], rows[..., 3], self.times[items], self.seq_ids[items])
            index = torch.stack([self.index[i][p] for i, p in zip(items.tolist(), picks)])
            values = torch.stack([self.values[i][p] for i, p in zip(items.tolist(), picks)])
        elif self.layout == "original":
            rows = self.samples[items]
            return Batch(rows[..., :3], rows[..., 3], self.times[items], self.seq_ids[items])
        else:
            index, values = self.index[items], self.values[items]
        return Batch(None, values.float(), self.times[items], self.seq_ids[items], index=index,
                     grid_shape=self.grid_shape)
