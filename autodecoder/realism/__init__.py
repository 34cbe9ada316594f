"""The learned realism step: make synthetic microscopy look like a user's real recordings.

``realism.py train`` learns an image-to-image network from the user's real recordings and the
project's synthetic images; ``realism.py apply`` translates whole synthetic datasets with it, tile by
tile, leaving every ground-truth file untouched (docs/realism.md).

Modules, one job each:

* :mod:`~autodecoder.realism.config` — every setting, its default and its check;
* :mod:`~autodecoder.realism.data` — datasets, intensity scales, mask channels, seeded patches;
* :mod:`~autodecoder.realism.networks` — MONAI generator and discriminator, receptive field;
* :mod:`~autodecoder.realism.train` — the training loop, checkpoints, resume;
* :mod:`~autodecoder.realism.apply` — tiled inference and the output datasets.

MONAI is the optional extra ``realism`` (``pip install -e '.[realism]'``).
"""
