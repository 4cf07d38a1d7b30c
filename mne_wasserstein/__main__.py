"""Command line: ``python -m mne_wasserstein demo`` (or ``mne-wasserstein demo``)."""

import argparse
import sys


def main(argv=None):
    """Run the command line interface."""
    parser = argparse.ArgumentParser(
        prog="mne-wasserstein",
        description="Multi-subject M/EEG source imaging with optimal transport.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="simulate a synthetic group study, solve it with MWE_0.5 and irMxNE, "
        "and write an HTML report",
    )
    demo.add_argument("--n-subjects", type=int, default=3)
    demo.add_argument("--spacing", default="ico4")
    demo.add_argument(
        "--alpha", type=float, default=20.0, help="mixed_norm's alpha, in [0, 100)"
    )
    demo.add_argument("--mwe-alpha", type=float, default=0.05)
    demo.add_argument("--beta", type=float, default=0.03)
    demo.add_argument("--output", default=None, help="folder of the report")
    demo.add_argument("--subjects-dir", default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args(argv)

    from ._demo import run_demo

    path, summary = run_demo(
        args.n_subjects,
        spacing=args.spacing,
        alpha=args.alpha,
        mwe_alpha=args.mwe_alpha,
        beta=args.beta,
        output=args.output,
        subjects_dir=args.subjects_dir,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        verbose=True,
    )
    print(summary)
    print(f"Report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
