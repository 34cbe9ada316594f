"""Inside-cell texture and compartments of the fluorescence phantom.

Conventions: points are float arrays ``(N, 3)`` in µm, ordered ``(z, y, x)``; masks are
bool ``(Z, Y, X)`` with ``voxel_size_zyx = (vz, vy, vx)`` in µm.

The texture is fractal Brownian motion (fBm) of OpenSimplex2 gradient noise from
``pyfastnoiselite``. It is a function of coordinates in the cell's own frame
(:func:`cell_coordinates`): when the cell translates and rotates, the caller maps the
voxel centres back into that frame and the texture stays attached to the cell.
"""

from __future__ import annotations

import numpy as np
from pyfastnoiselite.pyfastnoiselite import FastNoiseLite, FractalType, NoiseType
from scipy.ndimage import distance_transform_edt


def cell_coordinates(points_world_um: np.ndarray, centre_um: np.ndarray,
                     rotation: np.ndarray | None = None) -> np.ndarray:
    """Map world points ``(N, 3)`` µm into a cell's frame: ``Rᵀ (p − centre)``.

    ``rotation`` is the 3×3 matrix taking cell-frame vectors to world vectors (identity if
    None), ``centre_um`` the cell's reference point in world µm; both in (z, y, x) order.
    """
    p = np.asarray(points_world_um, dtype=np.float64) - np.asarray(centre_um, dtype=np.float64)
    return p if rotation is None else p @ np.asarray(rotation, dtype=np.float64)


def fbm(points_um: np.ndarray, seed: int = 0, scale_um: float = 2.0, octaves: int = 4,
        lacunarity: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """Band-limited fractal noise float32 ``(N,)`` in [0, 1] at points ``(N, 3)`` µm.

    Args:
        points_um: coordinates in the cell's own frame (see :func:`cell_coordinates`).
        seed: noise seed (one per cell gives each cell its own pattern).
        scale_um: wavelength of the coarsest octave; finer octaves are ``lacunarity``
            times finer and ``gain`` times weaker.
        octaves: number of octaves (the finest scale is scale_um / lacunarity^(octaves−1)).

    Values are ``(n + 1) / 2`` of the normalised fBm ``n`` ∈ [−1, 1] (mean ≈ 0.5).
    """
    pts = np.asarray(points_um, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    if scale_um <= 0 or octaves < 1:
        raise ValueError("scale_um must be positive and octaves >= 1")
    noise = FastNoiseLite(seed=int(seed))
    noise.noise_type = NoiseType.NoiseType_OpenSimplex2
    noise.fractal_type = FractalType.FractalType_FBm
    noise.fractal_octaves = int(octaves)
    noise.fractal_lacunarity = float(lacunarity)
    noise.fractal_gain = float(gain)
    # The library scales coordinates by the frequency itself, so the coordinates stay in µm.
    noise.frequency = 1.0 / float(scale_um)
    values = noise.gen_from_coords(np.ascontiguousarray(pts.T, dtype=np.float32))
    return np.clip((np.asarray(values, dtype=np.float32) + 1.0) * 0.5, 0.0, 1.0)


def depth_map(mask_zyx: np.ndarray, voxel_size_zyx: tuple[float, float, float]) -> np.ndarray:
    """Depth below the cell surface in µm, float32 ``(Z, Y, X)`` (0 outside the mask).

    The Euclidean distance transform (``sampling=voxel_size_zyx``) gives the distance from
    each inside voxel centre to the nearest outside voxel centre. The surface lies between
    the two, so half the smallest voxel size is subtracted: exact for the outermost layer
    along the finest axis; deeper voxels are underestimated by at most that half voxel.
    The array border does not count as outside (a cell cut by the field of view is
    assumed to continue beyond it); pad the mask with False to close it there.
    """
    mask = np.asarray(mask_zyx, dtype=bool)
    dist = distance_transform_edt(mask, sampling=tuple(float(v) for v in voxel_size_zyx))
    depth = np.maximum(dist - 0.5 * min(voxel_size_zyx), 0.0)
    return np.where(mask, depth, 0.0).astype(np.float32)


def compartments(mask_zyx: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                 membrane_um: float = 0.5, nucleus_depth_um: float | None = 2.0) -> dict[str, np.ndarray]:
    """Split a cell mask into bool ``(Z, Y, X)`` compartments by depth below its surface.

    Returns ``{"membrane", "cytoplasm", "nucleus"}``: the membrane is the shell within
    ``membrane_um`` of the surface, the nucleus everything deeper than
    ``nucleus_depth_um`` (none if None), the cytoplasm the rest. They are disjoint and
    their union is the mask. Depth comes from :func:`depth_map` (a Euclidean distance
    transform in µm), so it is exact for the voxelised mask, not an SDF approximation.
    """
    if nucleus_depth_um is not None and nucleus_depth_um < membrane_um:
        raise ValueError("nucleus_depth_um must be at least membrane_um")
    mask = np.asarray(mask_zyx, dtype=bool)
    depth = depth_map(mask, voxel_size_zyx)
    membrane = mask & (depth < membrane_um)
    nucleus = mask & (depth > nucleus_depth_um) if nucleus_depth_um is not None else np.zeros_like(mask)
    return {"membrane": membrane, "cytoplasm": mask & ~membrane & ~nucleus, "nucleus": nucleus}
