"""The training set: a folder of SDF sequences turned into per-frame point samples (SPEC §1–§2).

A training item is one frame: its sampled points, its time and its sequence
id (the row of the code table). Items are ordered sequence by sequence, frame
by frame. Samples are held as flat grid indices (int32) with their SDF values
(float32); coordinates follow from the indices when a batch is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import sampling
from .errors import UserError
from .geometry import frame_times, index_to_points
from .io import SequenceFile, list_sequence_files


@dataclass
class Batch:
    """Frames of one optimisation step (B frames, n points each).

    Attributes:
        points: float32 (B, n, 3), coordinates in [-1, 1].
        sdf: float32 (B, n), target SDF values.
        times: float32 (B,), frame times in [-1, 1].
        seq_ids: int64 (B,), rows of the code table.
    """

    points: torch.Tensor
    sdf: torch.Tensor
    times: torch.Tensor
    seq_ids: torch.Tensor

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.points.to(device), self.sdf.to(device), self.times.to(device), self.seq_ids.to(device))


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
    """

    def __init__(self, folder: str | Path, use_hdf5: bool, num_sequences: int, fraction: float,
                 on_the_fly: bool, seed: int, progress: bool = True) -> None:
        self.folder = Path(folder)
        self.files = list_sequence_files(self.folder, use_hdf5)
        if len(self.files) != num_sequences:
            raise UserError(f"{self.folder}: holds {len(self.files)} data files but \"NumSequences\" is "
                            f"{num_sequences}; they must match (one latent code per file)")
        self.on_the_fly = on_the_fly
        self.seed = int(seed)
        self.fraction = fraction
        seq_ids, frame_ids, times, index, values = [], [], [], [], []
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
                    if on_the_fly:  # the original's full-size pool, drawn once
                        idx = sampling.draw(frame, n_vox, sampling.rng_for(self.seed, sampling.DRAW_POOL, s, t), where)
                    else:
                        idx = sampling.draw(frame, self.n_points,
                                            sampling.rng_for(self.seed, sampling.DRAW_FIXED, s, t), where)
                    flat = frame.reshape(-1)
                    index.append(idx.astype(np.int32))
                    values.append(flat[idx])
                    seq_ids.append(s)
                    frame_ids.append(t)
                    times.append(time)
        self.seq_ids = torch.tensor(seq_ids, dtype=torch.int64)
        self.frame_ids = torch.tensor(frame_ids, dtype=torch.int64)
        self.times = torch.from_numpy(np.asarray(times, dtype=np.float32))
        self.index = torch.from_numpy(np.stack(index))    # (F, n) or pool (F, N)
        self.values = torch.from_numpy(np.stack(values))  # same shape, float32

    def __len__(self) -> int:
        return len(self.seq_ids)

    def batch(self, items: torch.Tensor, epoch: int) -> Batch:
        """The samples of frames ``items`` (indices into this set) for ``epoch`` (1-based)."""
        items = torch.as_tensor(items, dtype=torch.int64)
        if self.on_the_fly:
            idx_rows, val_rows = [], []
            for i in items.tolist():
                s, t = int(self.seq_ids[i]), int(self.frame_ids[i])
                pool_vals = self.values[i].numpy()
                pick = sampling.draw(pool_vals, self.n_points,
                                     sampling.rng_for(self.seed, sampling.DRAW_EPOCH, epoch, s, t),
                                     f"{self.files[s]}: frame {t}")
                pick_t = torch.from_numpy(pick)
                idx_rows.append(self.index[i][pick_t])
                val_rows.append(self.values[i][pick_t])
            index, values = torch.stack(idx_rows), torch.stack(val_rows)
        else:
            index, values = self.index[items], self.values[items]
        points = index_to_points(index.long(), self.grid_shape)
        return Batch(points, values, self.times[items], self.seq_ids[items])
