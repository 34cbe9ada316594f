#!/usr/bin/env python
"""Decode SDF grids: ``python test.py -x experiments/<name> -t TYPE [-e N|latest]``.

TYPE: reconstruct, generate, generate_filo (the original's), sample, fit, interpolate (``--help``).
"""
import sys

from autodecoder.cli.test import main

if __name__ == "__main__":
    sys.exit(main())
