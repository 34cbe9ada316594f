"""Command lines of the Python ports of the original MATLAB scripts (docs/method.md §6).

* ``voxvol_to_sdf.py`` — voxel masks (CytoPacq or any mask TIFFs) → training SDFs
  (:mod:`autodecoder.io.prepare`).
* ``quick_preview.py`` — MIP PNG per frame of SDF files (:mod:`autodecoder.io.tif_volumes`).
* ``sdf_to_tif.py`` — ``convert_sdf_to_tif_volume_*.m``: binary TIFF volumes + MIP PNGs
  (:mod:`autodecoder.io.tif_volumes`).
* ``render_sdf.py`` — ``render_sdf_*.m``: an isosurface picture per frame (:mod:`autodecoder.io.renders`).

Each script is a thin command line (built with :mod:`autodecoder.cli.base`) over the package; run
it from anywhere once the project is installed (``bash setup.sh``). Where MATLAB and Python differ
by default the ports follow MATLAB; :mod:`autodecoder.io.matlab_compat` holds those helpers and
``matlab_ports/README.md`` lists every difference.
"""
