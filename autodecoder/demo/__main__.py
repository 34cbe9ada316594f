"""``python -m autodecoder.demo``."""

import sys

from autodecoder.demo.run import main

sys.exit(main())
