"""SIREN auto-decoder for generative modelling of living 3D+time cell shapes.

A network ``f(code, x, y, z, t) -> SDF`` with a learned latent-code table and
learned per-sequence rotations, after Wiesner et al., "Implicit neural
representations for generative modeling of living cell shapes" (MICCAI 2022).

Arrays of SDF sequences are ``(T, X, Y, Z)`` float32, negative inside the cell;
voxel centres span [-1, 1] on every axis and frames span [-1, 1] in time.
"""

__version__ = "0.1.0"
