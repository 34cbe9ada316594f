#!/usr/bin/env python
"""Train an experiment: ``python train.py -x experiments/<name> [--continue latest|N] [--device cpu|cuda] [--seed S]``."""
import sys

from autodecoder.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
