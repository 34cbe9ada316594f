"""Binary voxel masks -> normalised signed distance functions (SDFs).

This is the mask -> SDF step of the original MATLAB preparation script
(``voxvol_to_sdf.m``, docs/method.md §6)::

    sdf = min(bwdist(mask), clamp) - bwdist(~mask);
    sdf = sdf / max(abs(sdf(:)));

It is shared by the demo-data generator (:mod:`autodecoder.demo.phantoms`) and the
port of ``voxvol_to_sdf.m``, which also uses :func:`select_components` (the
script's "keep the largest connected component" step, MATLAB-compatible).

Conventions
-----------
* Arrays are indexed ``(X, Y, Z)`` for one frame and ``(T, X, Y, Z)`` for a
  sequence (frames first), as everywhere in this package.
* Distances are Euclidean, in voxels (isotropic unit spacing).
* The SDF is negative inside the cell and positive outside. Before
  normalisation an inside voxel with a face-neighbour outside the cell has
  the value -1 and an outside voxel with a face-neighbour inside has +1; no
  voxel is 0, so ``sdf <= 0`` is exactly the mask.

``scipy`` versus MATLAB
-----------------------
MATLAB's ``bwdist(BW)`` gives, for every voxel, the distance to the nearest
NON-zero voxel of ``BW``. ``scipy.ndimage.distance_transform_edt(a)`` gives,
for every non-zero voxel of ``a``, the distance to the nearest ZERO voxel
(and 0 on zero voxels). Hence::

    bwdist(mask)  == distance_transform_edt(~mask)   # outside: distance to the cell
    bwdist(~mask) == distance_transform_edt(mask)    # inside: distance to the background

``bwdist`` returns single precision, so both distance maps are rounded to
float32 before the clamp, the subtraction and the division, which are done in
float32 as in MATLAB.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt, generate_binary_structure, label

__all__ = ["mask_to_sdf", "sdf_sequence", "select_components", "CONNECTIVITY"]

#: 3D neighbourhoods by MATLAB's names: 6 (faces), 18 (faces and edges), 26 (also corners).
CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def _check_clamp(clamp: float | None) -> None:
    if clamp is not None and not (np.isfinite(clamp) and clamp > 0):
        raise ValueError(f"clamp must be a positive finite number of voxels or None, got {clamp!r}")


def mask_to_sdf(mask: np.ndarray, clamp: float | None = 32.0, normalise: bool = True) -> np.ndarray:
    """Signed Euclidean distance function of a 3D binary mask.

    Parameters
    ----------
    mask:
        3D array of shape ``(X, Y, Z)``; truthy voxels are inside the cell.
        It must contain at least one inside and one outside voxel.
    clamp:
        Outer distances (voxels outside the cell) are capped at this many
        voxels (MATLAB ``min(bwdist(mask), clamp)``; 32 in the original
        256^3 data). Inner distances are never clamped. ``None``: no clamp.
    normalise:
        If true, divide by the largest absolute value, so values lie in
        [-1, 1] and 1.0 is the clamp distance unless the cell is thicker
        (deeper inside than ``clamp``) or the volume too small to reach it.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(X, Y, Z)``: (distance of each outside voxel
        to the nearest inside voxel, clamped) minus (distance of each inside
        voxel to the nearest outside voxel), in voxels (or divided by the
        largest absolute value when ``normalise``). Negative inside.

    Raises
    ------
    ValueError
        If ``mask`` is not 3D, is empty (no inside voxel) or fills the whole
        volume (no outside voxel), or if ``clamp`` is not positive.
    """
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D (X, Y, Z) array, got an array of shape {m.shape}")
    _check_clamp(clamp)
    m = m.astype(bool, copy=False)
    if not m.any():
        raise ValueError("mask is empty (no voxel inside the cell): its SDF is undefined")
    if m.all():
        raise ValueError("mask fills the whole volume (no voxel outside the cell): its SDF is undefined")

    # scipy measures the distance to the nearest ZERO voxel (see module docstring).
    outside = distance_transform_edt(~m).astype(np.float32)  # == bwdist(mask)
    inside = distance_transform_edt(m).astype(np.float32)  # == bwdist(~mask)
    if clamp is not None:
        outside = np.minimum(outside, np.float32(clamp))
    sdf = outside - inside
    if normalise:
        sdf = sdf / np.abs(sdf).max()
    return sdf.astype(np.float32, copy=False)


def sdf_sequence(masks: np.ndarray, clamp: float | None = 32.0, normalise: bool = True) -> np.ndarray:
    """Apply :func:`mask_to_sdf` to every frame of a mask sequence.

    Parameters
    ----------
    masks:
        4D array of shape ``(T, X, Y, Z)`` (frames first); truthy = inside.
    clamp, normalise:
        As in :func:`mask_to_sdf`; each frame is normalised on its own.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(T, X, Y, Z)``.

    Raises
    ------
    ValueError
        If ``masks`` is not 4D, has no frame, or any frame is empty or full
        (the message names the frame).
    """
    m = np.asarray(masks)
    if m.ndim != 4:
        raise ValueError(f"masks must be a 4D (T, X, Y, Z) array, got an array of shape {m.shape}")
    if m.shape[0] == 0:
        raise ValueError("masks has no frame (T == 0)")
    _check_clamp(clamp)
    out = np.empty(m.shape, dtype=np.float32)
    for t in range(m.shape[0]):
        try:
            out[t] = mask_to_sdf(m[t], clamp=clamp, normalise=normalise)
        except ValueError as err:
            raise ValueError(f"frame {t}: {err}") from None
    return out


def select_components(mask: np.ndarray, connectivity: int = 26, keep: str = "largest") -> np.ndarray:
    """Keep the largest connected component of a 3D mask (or every component).

    This is ``voxvol_to_sdf.m``'s clean-up step::

        cc = bwconncomp(mask);                 % 26-connectivity in 3D
        [~, i] = max(cellfun(@numel, cc.PixelIdxList));
        mask = false(size(mask)); mask(cc.PixelIdxList{i}) = true;

    Parameters
    ----------
    mask:
        3D array ``(X, Y, Z)``; truthy voxels are foreground.
    connectivity:
        6, 18 or 26 (MATLAB's default for 3D, and this function's): two voxels
        sharing only a corner belong to one component with 26, not with 6.
        ``scipy.ndimage.label``'s own default is 6: the structure is always
        passed explicitly here.
    keep:
        ``"largest"``: only the component with the most voxels. When several
        are equally large, the one MATLAB's ``max`` returns: the first found
        by ``bwconncomp``, which scans voxels in column-major (Fortran) order,
        i.e. the one whose first voxel in that order comes first (scipy numbers
        components in row-major order, so this is computed explicitly).
        ``"all"``: every component (a dividing cell keeps both daughters).

    Returns
    -------
    numpy.ndarray
        bool array of the shape of ``mask``. An empty mask stays empty.
    """
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D (X, Y, Z) array, got an array of shape {m.shape}")
    if connectivity not in CONNECTIVITY:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    if keep not in ("largest", "all"):
        raise ValueError(f"keep must be 'largest' or 'all', got {keep!r}")
    m = m.astype(bool, copy=False)
    if keep == "all":
        return m.copy()
    labels, n = label(m, structure=generate_binary_structure(3, CONNECTIVITY[connectivity]))
    if n <= 1:
        return m.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    best = np.flatnonzero(sizes == sizes.max())
    if len(best) > 1:  # MATLAB's tie-break: first component in column-major scan order
        flat_f = labels.ravel(order="F")
        first = np.array([np.argmax(flat_f == b) for b in best])
        best = best[[int(np.argmin(first))]]
    return labels == best[0]
