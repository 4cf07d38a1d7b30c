"""Command line: ``python -m mne_wasserstein demo`` (or ``mne-wasserstein demo``)."""

import argparse
import sys

from . import __version__

# the demo's choices, here so that the command line checks them without
# importing MNE (bad options fail at once)
SPACINGS = ("ico3", "ico4", "oct5", "oct6")
# the irMxNE oracle's grid of mixed_norm alphas (MNE's scale: % of alpha_max)
ORACLE_ALPHAS = (10.0, 20.0, 30.0, 40.0, 55.0)
REPORT_NAME = "mne_wasserstein_demo.html"


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _float_in(low, high, *, extra=()):
    """Parse a float in the open interval (low, high), or one of ``extra``."""

    def parse(text):
        if text in extra:
            return text
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low < value < high:
            raise argparse.ArgumentTypeError(f"must be in ({low}, {high}), got {value}")
        return value

    return parse


def _parser():
    parser = argparse.ArgumentParser(
        prog="mne-wasserstein",
        description="Multi-subject M/EEG source imaging with optimal transport.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="simulate a synthetic group study, solve it with MWE_0.5 and MNE's "
        "irMxNE, and write an HTML report",
        description="Simulate a left-hemisphere group response on a synthetic "
        "MEG cohort (offline), solve it subject by subject with MNE's irMxNE "
        "and jointly with MWE_0.5, print the localisation errors and write an "
        f"HTML report ({REPORT_NAME}).",
    )
    demo.add_argument(
        "--n-subjects",
        type=_int_at_least(2),
        default=3,
        metavar="N",
        help="number of subjects (>= 2)",
    )
    demo.add_argument(
        "--spacing", choices=SPACINGS, default="ico4", help="source spacing"
    )
    demo.add_argument(
        "--irmxne-alpha",
        type=_float_in(0, 100, extra=("sure",)),
        default="sure",
        metavar="ALPHA",
        help="irMxNE's alpha on MNE's scale (percent of its alpha_max, in "
        "(0, 100)), or 'sure' for MNE's data-driven choice (Stein's unbiased "
        f"risk estimate); the oracle over {ORACLE_ALPHAS} is reported too",
    )
    demo.add_argument(
        "--mwe-alpha",
        type=_float_in(0, 1),
        default=0.05,
        metavar="ALPHA",
        help="MWE's regularisation, relative to its alpha_max, in (0, 1)",
    )
    demo.add_argument(
        "--beta",
        type=_float_in(0, float("inf")),
        default=0.03,
        help="MWE's transport weight (> 0)",
    )
    demo.add_argument(
        "--out",
        default=".",
        metavar="PATH",
        help=f"folder of the report ({REPORT_NAME}), or the report's .html path",
    )
    demo.add_argument(
        "--subjects-dir",
        default=None,
        metavar="PATH",
        help="folder of the template and subjects (None: <data folder>/subjects)",
    )
    demo.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="seed of the cohort and the simulation",
    )
    demo.add_argument(
        "--n-jobs",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="parallel jobs (None: 1)",
    )
    return parser


def main(argv=None):
    """Run the command line interface."""
    args = _parser().parse_args(argv)

    from ._demo import run_demo

    path, summary = run_demo(
        args.n_subjects,
        spacing=args.spacing,
        irmxne_alpha=args.irmxne_alpha,
        mwe_alpha=args.mwe_alpha,
        beta=args.beta,
        out=args.out,
        subjects_dir=args.subjects_dir,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        verbose=True,
    )
    print(summary)
    print(f"Report written to {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
