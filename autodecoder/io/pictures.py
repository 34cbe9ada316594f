"""Pictures people look at: the loss curve, maximum-intensity projections of shapes, and the one
way every figure of the project is written (:func:`save_figure`, atomically).

Matplotlib draws with the file-only backend ``Agg``: every picture goes to a file and no screen
is needed (training runs on servers without a display). :data:`plt` is pyplot with that backend;
the evaluation's figures use it from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from autodecoder.experiment.guards import atomic_path

__all__ = ["plt", "save_figure", "plot_loss", "mip", "save_image", "tile", "contact_sheet"]

# pyplot picks its backend at the first figure, so choosing it after the import is enough.
matplotlib.use("Agg")


def save_figure(fig: "matplotlib.figure.Figure", path: Path) -> Path:
    """Write ``fig`` as a PNG (atomically: a temporary name, then a rename) and close it."""
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def plot_loss(history: Sequence[Sequence[float]], path: Path, title: str = "") -> None:
    """Write the loss curve: ``history`` rows are ``(epoch, sdf_loss, code_loss, ...)``."""
    h = np.asarray(history, dtype=float).reshape(-1, max(3, len(history[0]) if len(history) else 3))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if len(h):
        ax.plot(h[:, 0], h[:, 1], label="SDF loss (L1)")
        if np.any(h[:, 2] > 0):
            ax.plot(h[:, 0], h[:, 2], label="code loss")
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def mip(mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """Maximum projection of a 3-D mask ``(X, Y, Z)`` along ``axis`` → uint8 image (0 or 255)."""
    return (np.asarray(mask).max(axis=axis) > 0).astype(np.uint8) * 255


def save_image(image: np.ndarray, path: Path) -> None:
    """Write a 2-D uint8 image as PNG, rows first (atomically)."""
    with atomic_path(Path(path)) as tmp:
        plt.imsave(tmp, image, cmap="gray", vmin=0, vmax=255, format="png")


def tile(images: Sequence[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Same-sized 2-D uint8 images in a grid (row by row) with 2-pixel grey gaps → one uint8 image."""
    n = len(images)
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = images[0].shape
    sheet = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2), 96, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        sheet[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + c * (w + 2): 2 + c * (w + 2) + w] = im
    return sheet


def contact_sheet(images: Sequence[np.ndarray], path: Path, columns: int | None = None) -> None:
    """Tile same-sized 2-D uint8 images in a grid with 2-pixel grey gaps (:func:`tile`), and write a PNG."""
    save_image(tile(images, columns), path)
