#!/usr/bin/env python
"""The learned realism step: ``python realism.py train|apply …`` (``--help``; docs/realism.md)."""
import sys

from autodecoder.cli.realism import main

if __name__ == "__main__":
    sys.exit(main())
