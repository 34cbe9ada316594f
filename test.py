#!/usr/bin/env python
"""Decode SDF grids: ``python test.py -x experiments/<name> -t reconstruct|generate|generate_filo [-e N|latest]``."""
import sys

from autodecoder.cli import test_main

if __name__ == "__main__":
    sys.exit(test_main())
