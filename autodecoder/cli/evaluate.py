"""``python evaluate.py reconstruction|compare|images …``: the command line of :mod:`autodecoder.evaluation`."""

from __future__ import annotations

import argparse
from typing import Sequence

from autodecoder.cli import base
from autodecoder.evaluation.compare import compare
from autodecoder.evaluation.descriptors import SURFACES
from autodecoder.evaluation.image_compare import NORMALISATIONS, compare_images
from autodecoder.evaluation.pool import default_workers
from autodecoder.evaluation.reconstruction import reconstruction
from autodecoder.evaluation.statistics import GENERATED, REAL
from autodecoder.experiment.errors import UserError

EXAMPLES = ("python evaluate.py reconstruction -x experiments/demo -e latest",
            "python evaluate.py compare data/demo experiments/demo/OUT_randomgen --out evaluation",
            "python evaluate.py images real_ctc/ synthetic/ --out evaluation/images")


def _reconstruction_options(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate.py reconstruction``."""
    base.add_experiment(p)
    base.add_epoch(p)
    p.add_argument("--dims", type=int, nargs="+", metavar="N",
                   help="decode at this grid (N or X Y Z) and resample to the training grid "
                        "(default: decode on the training grid)")
    p.add_argument("--threshold", type=float, default=0.0, help="inside is sdf <= THRESHOLD (default 0)")
    base.add_device(p)
    p.add_argument("--out", help="output folder (default: <experiment>/evaluation)")
    base.add_progress(p)


def _compare_options(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate.py compare``."""
    p.add_argument("paths", nargs="*", metavar="REAL GENERATED",
                   help="a file or folder of real cells and one of generated cells (more with --real/--generated)")
    p.add_argument("--real", nargs="+", default=[], metavar="PATH", help="(more) real files or folders")
    p.add_argument("--generated", nargs="+", default=[], metavar="PATH", help="(more) generated files or folders")
    p.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    p.add_argument("--threshold", type=float, default=0.0, help="inside is sdf <= THRESHOLD in SDF files (default 0)")
    p.add_argument("--workers", type=int, help=f"worker processes (default: {default_workers()}; "
                   "small inputs run in this process)")
    p.add_argument("--surface", choices=SURFACES, default="mask",
                   help="surface area from the smoothed mask (default; the same for both sets) or from the SDF")
    p.add_argument("--min-component-voxels", type=int, default=1,
                   help="components smaller than this are not counted (default 1)")
    p.add_argument("--names", nargs=2, default=[REAL, GENERATED], metavar=("REAL", "GENERATED"),
                   help="names of the two sets in the report (default: real generated)")
    base.add_progress(p)


def _images_options(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate.py images``."""
    p.add_argument("real", metavar="REAL", help="real images: a folder of 3-D TIFF/OME-TIFF frames, a 4-D stack "
                   "(T, Z, Y, X), or a CTC dataset or sequence folder (masks from its _GT folder)")
    p.add_argument("synthetic", metavar="SYNTHETIC", help="synthetic images, in any of the same forms")
    p.add_argument("--real-masks", metavar="DIR", help="masks of the real images: a folder of 3-D mask TIFFs or a "
                   "4-D stack (default: found with the images, else none)")
    p.add_argument("--synthetic-masks", metavar="DIR", help="masks of the synthetic images (as --real-masks)")
    p.add_argument("--out", default="evaluation/images", help="output folder (default: evaluation/images)")
    p.add_argument("--normalise", choices=NORMALISATIONS, default="none",
                   help="intensities for the Wasserstein scores and histograms: as recorded (default) or each "
                        "frame divided by its 99.9th percentile (different cameras or bit depths)")
    p.add_argument("--names", nargs=2, default=["real", "synthetic"], metavar=("REAL", "SYNTHETIC"),
                   help="names of the two sides in the report (default: real synthetic)")
    base.add_progress(p)


def build_parser() -> base.Parser:
    """``evaluate.py`` with its three modes."""
    p = base.parser("evaluate.py", "How close are learned and generated cells to real ones?", EXAMPLES)
    sub = base.subcommands(p)
    _reconstruction_options(sub.add_parser(
        "reconstruction", help="Dice, Jaccard and surface distances of the reconstructed training sequences, "
        "frame by frame"))
    _compare_options(sub.add_parser(
        "compare", help="shape descriptors of two sets of cells, KS tests, plots and a report"))
    _images_options(sub.add_parser(
        "images", help="realism of synthetic microscopy images: per-region Wasserstein scores, edge curves, "
        "SNR/CR, histograms and spectra against real images, with a report"))
    return p


def _compare(args: argparse.Namespace) -> None:
    """Check the two sets of paths of ``compare`` and run it."""
    if len(args.paths) not in (0, 2):
        raise UserError(f"evaluate.py compare: expected REAL GENERATED (two paths), got {len(args.paths)} "
                        "(use --real and --generated for more)")
    real = args.paths[:1] + args.real
    generated = args.paths[1:] + args.generated
    if not real or not generated:
        raise UserError("evaluate.py compare: give REAL GENERATED, or --real … --generated … (see --help)")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected an integer >= 1")
    compare(real, generated, out_dir=args.out, threshold=args.threshold, workers=args.workers,
            surface=args.surface, min_component_voxels=args.min_component_voxels, names=tuple(args.names),
            progress=not args.no_progress)


def command(args: argparse.Namespace) -> int:
    """Run the chosen mode."""
    if args.mode == "reconstruction":
        reconstruction(args.experiment, epoch=args.epoch, out_dir=args.out, dims=args.dims,
                       threshold=args.threshold, device=args.device, progress=not args.no_progress)
    elif args.mode == "images":
        compare_images(args.real, args.synthetic, real_masks=args.real_masks, synthetic_masks=args.synthetic_masks,
                       out_dir=args.out, normalise=args.normalise, names=tuple(args.names),
                       progress=not args.no_progress)
    else:
        _compare(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python evaluate.py …``; returns the exit status."""
    return base.run(build_parser(), command, argv)
