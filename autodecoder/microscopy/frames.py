"""One frame of a synthesis, stage by stage: ground truth → phantom → optics → camera.

The field of view is sampled on a *fine* grid, ``oversample_z`` times finer in z than the output
(odd, so that the middle fine plane of every output voxel is its centre). Each present cell is
evaluated on the fine voxels of its bounding box (:meth:`autodecoder.microscopy.cells.Cell.sdf_box`)
in its own model coordinates ``u = (p - centre) / (cube_size / 2)``, image ``(x, y, z)`` being the
model's ``(X, Y, Z)``. A voxel belongs to the cell it lies deepest inside (the smallest SDF among
the cells with ``sdf <= threshold``), so cells never overlap, and cells of a packed cluster touch.

* Ground truth: the cell-label image on the output grid is the owner of the middle fine plane of
  each output voxel, i.e. exactly ``sdf <= threshold`` at the output voxel centres.
* Phantom: inside each cell, compartments (membrane shell, cytoplasm, nucleus) from a Euclidean
  distance transform of its fine mask in µm, times band-limited texture attached to the cell's own
  frame, times the cell's brightness.
* Optics: convolution with the PSF sampled on the fine grid, then the mean over each output voxel's
  fine planes (:func:`autodecoder.microscopy.optics.render`); optional depth attenuation and uneven
  illumination.
* Camera: bleaching ``exp(−t/τ)``, photons and background, shot and read noise, gain and offset,
  clipping to the bit depth (:func:`autodecoder.microscopy.camera.expose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autodecoder.microscopy import camera as cam
from autodecoder.microscopy import optics
from autodecoder.microscopy.cells import Cell
from autodecoder.microscopy.config import SynthesisConfig, voxel_size_zyx
from autodecoder.microscopy.texture import compartments, fbm


@dataclass
class FrameStages:
    """What one frame went through; the last stage is the image.

    Attributes:
        cells: uint32 (Z, Y, X) cell labels (cell index + 1; 0 background) on the output grid.
        phantom: float32 (Z, Y, X) emitter density binned to the output grid (before the optics).
        blurred: float32 (Z, Y, X) after the optics (and depth, illumination, bleaching).
        image: uint16 (Z, Y, X) the camera's image, in ADU.
    """

    cells: np.ndarray
    phantom: np.ndarray
    blurred: np.ndarray
    image: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))


class FrameRenderer:
    """Renders frames of one field of view with fixed settings (the PSF is computed once)."""

    def __init__(self, config: SynthesisConfig) -> None:
        self.config = config
        self.ovs = config.optics.oversample_z
        self.vox = voxel_size_zyx(config)
        self.fine_vox = (self.vox[0] / self.ovs, self.vox[1], self.vox[2])
        z, y, x = config.field.shape_zyx
        self.fine_shape = (z * self.ovs, y, x)
        # voxel centres in µm along the fine z, y and x axes of the field
        self.centres = [(np.arange(n) + 0.5) * v for n, v in zip(self.fine_shape, self.fine_vox)]
        self.half_cube = config.field.cube_size_um / 2
        o = config.optics
        self.psf = None
        if o.psf:
            settings = optics.PSFSettings(o.modality, o.model, o.na, o.emission_um, o.excitation_um, o.ni, o.ns,
                                          0.0, o.pinhole_au)
            self.psf = optics.psf(settings, self.fine_vox)

    def _box(self, centre_um: np.ndarray, radius_um: float) -> tuple[tuple[slice, ...], list[np.ndarray]] | None:
        """The fine voxels within ``radius_um`` of ``centre_um`` (z, y, x) along each axis, inside the model's
        cube (the shape is not defined beyond it), and their model coordinates per image axis (z, y, x);
        None when the box misses the field."""
        radius_um = min(float(radius_um), self.half_cube)
        slices, coords = [], []
        for axis, c in enumerate(np.asarray(centre_um, float)):
            pos = self.centres[axis]
            lo, hi = np.searchsorted(pos, c - radius_um), np.searchsorted(pos, c + radius_um, side="right")
            if hi <= lo:
                return None
            slices.append(slice(int(lo), int(hi)))
            coords.append(((pos[lo:hi] - c) / self.half_cube).astype(np.float32))
        return tuple(slices), coords

    def owners(self, cells: list[Cell], centres: np.ndarray, radii_um: np.ndarray, present: np.ndarray,
               times: np.ndarray) -> tuple[np.ndarray, list]:
        """uint16 fine owner image (cell index + 1) and, per cell, its (box, model coordinates) or None."""
        thr = self.config.cells.threshold
        best = np.full(self.fine_shape, np.inf, np.float32)
        owner = np.zeros(self.fine_shape, np.uint16)
        boxes: list = []
        for i, cell in enumerate(cells):
            box = self._box(centres[i], radii_um[i]) if present[i] else None
            boxes.append(box)
            if box is None:
                continue
            slices, (cz, cy, cx) = box
            sdf = cell.sdf_box((cx, cy, cz), float(times[i]), (thr,)).transpose(2, 1, 0)  # (X,Y,Z) → (z,y,x)
            region, won = best[slices], owner[slices]
            mine = (sdf <= thr) & (sdf < region)
            region[mine], won[mine] = sdf[mine], i + 1
        return owner, boxes

    def phantom(self, owner: np.ndarray, cells: list[Cell], boxes: list, brightness: np.ndarray,
                seeds: list[int]) -> np.ndarray:
        """float32 fine emitter density: compartments × texture × brightness inside each cell."""
        p = self.config.phantom
        density = np.zeros(self.fine_shape, np.float32)
        for i, (cell, box) in enumerate(zip(cells, boxes)):
            if box is None:
                continue
            slices, (cz, cy, cx) = box
            mask = owner[slices] == i + 1
            if not mask.any():
                continue
            parts = compartments(mask, self.fine_vox, p.membrane_um, p.nucleus_depth_um)
            weight = (p.membrane_weight * parts["membrane"] + p.cytoplasm_weight * parts["cytoplasm"]
                      + p.nucleus_weight * parts["nucleus"]).astype(np.float32)
            if p.texture:
                iz, iy, ix = np.nonzero(mask)
                model_xyz = np.stack([cx[ix], cy[iy], cz[iz]], axis=1)  # image (x, y, z) = model (X, Y, Z)
                points_um = cell.canonical(model_xyz) * self.half_cube
                tex = fbm(points_um, seeds[i], p.texture_scale_um, p.texture_octaves)
                weight[mask] *= (1 - p.texture_contrast) + p.texture_contrast * tex
            density[slices] += weight * mask * np.float32(brightness[i])
        return density

    def optics(self, fine: np.ndarray, cells_out: np.ndarray, frame: int, illumination: np.ndarray | None) -> tuple:
        """(phantom binned to the output grid, image after optics, depth, illumination and bleaching)."""
        z = self.config.field.shape_zyx[0]
        binned = fine.reshape(z, self.ovs, *fine.shape[1:]).mean(axis=1, dtype=np.float32)
        blurred = optics.render(fine, self.psf, self.ovs) if self.psf is not None else binned.copy()
        o, c = self.config.optics, self.config.camera
        if o.depth_attenuation:
            blurred = optics.apply_depth_attenuation(blurred, cells_out > 0, o.attenuation_z0, o.attenuation_f)
        if illumination is not None:
            blurred = blurred * illumination[None]
        if c.bleaching_tau_frames is not None:
            blurred = blurred * np.float32(cam.photobleach(frame, c.bleaching_tau_frames))
        return binned, blurred.astype(np.float32)

    def camera_settings(self) -> cam.CameraSettings:
        c = self.config.camera
        return cam.CameraSettings(c.quantum_efficiency, c.gain_adu_per_e, c.offset_adu, c.read_noise_e, c.em_gain,
                                  c.bit_depth, c.background_photons)

    def expose(self, blurred: np.ndarray, scale: float, settings: cam.CameraSettings,
               rng: np.random.Generator) -> np.ndarray:
        """uint16 image of ``scale · blurred`` photons (plus the background), noisy or its expectation."""
        photons = np.asarray(blurred, np.float64) * scale
        if self.config.camera.noise:
            return cam.expose(photons, settings, rng)
        adu = (photons + settings.background_photons) * settings.adu_per_photon + settings.offset_adu
        return np.clip(np.rint(adu), 0, settings.max_adu).astype(np.uint16)
