#!/usr/bin/env python
"""Synthetic microscopy: ``python synthesize.py -x experiments/<name> [-e N|latest] --out DIR`` (``--help``)."""
import sys

from autodecoder.cli.synthesize import main

if __name__ == "__main__":
    sys.exit(main())
