"""From cells to microscopy: synthetic 3D+t fluorescence images with exact ground truth.

Stages, each a module: scene (cells placed and moved in a field of view) → ground truth
(instance labels, lineage) → phantom (texture, compartments) → optics (PSF, depth effects)
→ camera (bleaching, photon and read noise, gain, bit depth) → formats (Cell Tracking
Challenge, OME-TIFF, OME-Zarr, 2D projections).
"""
