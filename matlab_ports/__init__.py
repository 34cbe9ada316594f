"""Python ports of the original MATLAB scripts (SPEC §6).

* :mod:`matlab_ports.voxvol_to_sdf` — voxel masks (CytoPacq or any mask TIFFs) → training SDFs.
* :mod:`matlab_ports.quick_preview` — MIP PNG per frame of SDF files.
* :mod:`matlab_ports.sdf_to_tif` — ``convert_sdf_to_tif_volume_*.m``: binary TIFF volumes + MIP PNGs.
* :mod:`matlab_ports.render_sdf` — ``render_sdf_*.m``: an isosurface picture per frame.

Each module is also a script (``python matlab_ports/<name>.py --help``) that
runs from the repository root without installation. Where MATLAB and Python
differ by default the ports follow MATLAB; :mod:`matlab_ports.matlab_compat`
holds those helpers and ``matlab_ports/README.md`` lists every difference.
"""
