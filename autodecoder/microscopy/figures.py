"""Pictures of a synthetic dataset: one frame (image, ground truth, lineage) and the stages of a frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from matplotlib import colors

from autodecoder.io.pictures import plt, save_figure
from autodecoder.microscopy.projections import max_intensity_projection, project_labels


def _label_colours(n: int) -> colors.ListedColormap:
    """Black for the background, then distinct colours for labels 1 … n."""
    rng = np.random.default_rng(3)
    table = np.vstack([[0, 0, 0, 1], np.c_[0.3 + 0.7 * rng.random((max(n, 1), 3)), np.ones(max(n, 1))]])
    return colors.ListedColormap(table)


def _lineage(ax, rows: list[list[int]], frame: int, n_frames: int) -> None:
    """Tracks as bars over the frames, parent links as dashed lines; the frame shown as a vertical line."""
    cmap = _label_colours(max((r[0] for r in rows), default=1))
    ypos = {r[0]: i for i, r in enumerate(sorted(rows, key=lambda r: (r[1], r[0])))}
    for label, begin, end, parent in rows:
        ax.plot([begin, end], [ypos[label]] * 2, lw=6, color=cmap(label), solid_capstyle="butt")
        if parent:
            ax.plot([begin - 1, begin], [ypos[parent], ypos[label]], "k--", lw=1)
    ax.axvline(frame, color="0.5", lw=1)
    ax.set_yticks(list(ypos.values()), [f"track {k}" for k in ypos])
    ax.set_xlim(-0.5, n_frames - 0.5)
    ax.set_xlabel("frame")
    ax.set_title("lineage (man_track.txt)")


def dataset_figure(root: str | Path, path: str | Path, sequence: int = 1, frame: int | None = None) -> Path:
    """One frame of sequence ``sequence`` of a CTC dataset in ``root``: the image's maximum projection,
    the projected track labels, and the lineage of the whole sequence; written to ``path`` (PNG)."""
    root, name = Path(root), f"{sequence:02d}"
    frames = sorted((root / name).glob("t*.tif"))
    frame = len(frames) // 2 if frame is None else frame
    image = tifffile.imread(frames[frame])
    labels = tifffile.imread(sorted((root / f"{name}_GT" / "TRA").glob("man_track*.tif"))[frame])
    rows = [list(map(int, line.split())) for line in (root / f"{name}_GT/TRA/man_track.txt").read_text().splitlines()]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), dpi=90, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].imshow(max_intensity_projection(image), cmap="gray")
    axes[0].set_title(f"image, frame {frame} (maximum projection)")
    axes[1].imshow(project_labels(labels, image), cmap=_label_colours(int(labels.max())), interpolation="nearest",
                   vmin=0, vmax=max(int(labels.max()), 1))
    axes[1].set_title("track labels (projection)")
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    _lineage(axes[2], rows, frame, len(frames))
    fig.tight_layout()
    return save_figure(fig, Path(path))


def stages_figure(interim: str | Path, path: str | Path, frame: int = 0) -> Path:
    """The interim stages of one frame (``--save-interim``): ground truth, phantom, optics, camera;
    maximum projections (top) and the middle slice (bottom)."""
    interim = Path(interim)
    stages = {s: tifffile.imread(interim / s / f"t{frame:03d}.tif")
              for s in ("labels", "phantom", "blurred", "noisy")}
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4), dpi=70)
    for col, (stage, volume) in enumerate(stages.items()):
        label = stage == "labels"
        cmap = _label_colours(int(volume.max())) if label else "gray"
        views = (project_labels(volume) if label else volume.max(axis=0), volume[volume.shape[0] // 2])
        for row, view in enumerate(views):
            axes[row, col].imshow(view, cmap=cmap, interpolation="nearest")
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[0, col].set_title(f"{stage}: maximum projection")
        axes[1, col].set_title(f"{stage}: middle slice")
    fig.tight_layout()
    return save_figure(fig, Path(path))
