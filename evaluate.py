#!/usr/bin/env python
"""Evaluate shapes: ``python evaluate.py reconstruction -x experiments/<name> [-e N]`` or
``python evaluate.py compare REAL GENERATED [--out evaluation]`` or ``python evaluate.py images REAL SYNTHETIC``."""
import sys

from autodecoder.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
