"""Time building a synthetic cohort; check the synthetic anatomies.

Run by hand (never in CI)::

    python benchmarks/bench_cohort.py --n-subjects 4 --repeat 3
    python benchmarks/bench_cohort.py --meshes-only --n-subjects 32 \\
        --anatomy template 0 individual exaggerated warp
    python benchmarks/bench_cohort.py --stages --n-subjects 1 --spacing ico3 \\
        --modality eeg

The first prints the median of ``--repeat`` builds of a cohort (anatomy and
forwards) from an empty cache and from the cache. The second writes only the
anatomy of ``--n-subjects`` subjects per anatomy level (no forwards) and
prints, per level, the time per subject and the validity checks of the white
surfaces: the number of subjects whose surfaces intersect (beyond the
template's own crossings) and the smallest distance to the inner skull. The
third builds one cohort from an empty cache in one process (``n_jobs=1``)
and prints the time of each stage (template, anatomy, source spaces, BEM,
forward), summed over the subjects: where the cold cost of the test suite's
cohort fixtures goes.
"""

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import mne
import numpy as np

import mne_wasserstein.datasets._cohort as cohort_module
from mne_wasserstein.datasets import make_cohort, make_template
from mne_wasserstein.datasets._cohort import (
    _both_hemispheres,
    _check_anatomy,
    _new_intersections,
    _subject_name,
    _template_defects,
    _write_subject,
)
from mne_wasserstein.datasets._mesh import _star_radius
from mne_wasserstein.datasets._template import _template_bem_surfaces


def _level(text):
    try:
        return float(text)
    except ValueError:
        return text


def _time_cohorts(args):
    kwargs = dict(
        spacing=args.spacing,
        modality=args.modality,
        anatomy=args.anatomy[0],
        random_state=0,
        n_jobs=args.n_jobs,
        verbose=False,
    )
    empty, cached = [], []
    for _ in range(args.repeat):
        folder = tempfile.mkdtemp(prefix="mw-bench-")
        try:
            t0 = time.perf_counter()
            make_cohort(args.n_subjects, subjects_dir=folder, **kwargs)
            empty.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            make_cohort(args.n_subjects, subjects_dir=folder, **kwargs)
            cached.append(time.perf_counter() - t0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"make_cohort({args.n_subjects}, spacing={args.spacing!r}, "
        f"modality={args.modality!r}, anatomy={args.anatomy[0]!r}, "
        f"n_jobs={args.n_jobs}), {args.repeat} runs"
    )
    print(f"{'case':<14}{'median (s)':>12}{'min (s)':>10}{'max (s)':>10}")
    for name, times in (("empty cache", empty), ("from cache", cached)):
        print(
            f"{name:<14}{np.median(times):>12.2f}{min(times):>10.2f}{max(times):>10.2f}"
        )


# stage name -> the names in mne_wasserstein.datasets._cohort that it times
STAGES = {
    "template": ("make_template",),
    "anatomy": ("_write_subject",),
    "source spaces": ("setup_source_space", "morph_source_spaces"),
    "BEM": ("make_bem_model", "make_bem_solution"),
    "forward": ("make_forward_solution",),
}


@contextlib.contextmanager
def _timed_stages(totals):
    """Add the time spent in each stage's functions to ``totals[stage]``."""
    saved = {}

    def timed(stage, func):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - t0

        return wrapper

    for stage, names in STAGES.items():
        for name in names:
            saved[name] = getattr(cohort_module, name)
            setattr(cohort_module, name, timed(stage, saved[name]))
    try:
        yield totals
    finally:
        for name, func in saved.items():
            setattr(cohort_module, name, func)


def _time_stages(args):
    folder = tempfile.mkdtemp(prefix="mw-stages-")
    totals = {}
    try:
        with _timed_stages(totals):
            t0 = time.perf_counter()
            make_cohort(
                args.n_subjects,
                subjects_dir=folder,
                spacing=args.spacing,
                modality=args.modality,
                anatomy=args.anatomy[0],
                random_state=args.seed,
                n_jobs=1,
                verbose=False,
            )
            total = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"make_cohort({args.n_subjects}, spacing={args.spacing!r}, "
        f"modality={args.modality!r}, anatomy={args.anatomy[0]!r}, n_jobs=1) "
        "from an empty cache"
    )
    print(f"{'stage':<16}{'time (s)':>10}{'share':>8}")
    for stage in STAGES:
        seconds = totals.get(stage, 0.0)
        print(f"{stage:<16}{seconds:>10.1f}{seconds / total:>8.0%}")
    rest = total - sum(totals.values())
    print(f"{'other':<16}{rest:>10.1f}{rest / total:>8.0%}")
    print(f"{'total':<16}{total:>10.1f}")


def _check_meshes(args):
    bem_rr, bem_tris = _template_bem_surfaces()
    skull = bem_rr["inner_skull"]
    center = skull.mean(axis=0)
    print(
        f"anatomy of {args.n_subjects} subjects per level (seed {args.seed}), "
        "white surfaces of both hemispheres"
    )
    print(
        f"{'anatomy':<14}{'s/subject':>10}{'intersecting':>14}"
        f"{'min skull gap (mm)':>20}  subjects intersecting"
    )
    folder = Path(tempfile.mkdtemp(prefix="mw-meshes-"))
    try:
        subjects_dir = make_template(folder, verbose=False)
        for anatomy in args.anatomy:
            level = _check_anatomy(anatomy)
            times, bad, gaps = [], [], []
            for index in range(args.n_subjects):
                subject = _subject_name(args.seed, level, index)
                t0 = time.perf_counter()
                _write_subject(subjects_dir, subject, args.seed, index, level)
                times.append(time.perf_counter() - t0)
                subject_dir = subjects_dir / subject
                meta = json.loads((subject_dir / "mne_wasserstein.json").read_text())
                hemis = {
                    h: mne.read_surface(subject_dir / "surf" / f"{h}.white")
                    for h in ("lh", "rh")
                }
                rr, tris = _both_hemispheres(hemis)
                rr = rr / meta["scale"]
                if len(_new_intersections(rr, tris, _template_defects())):
                    bad.append(index)
                radius = _star_radius(center, skull, bem_tris, rr)
                gaps.append(np.min(radius - np.linalg.norm(rr - center, axis=1)))
            print(
                f"{anatomy!s:<14}{np.median(times):>10.1f}{len(bad):>14d}"
                f"{min(gaps):>20.2f}  {bad}",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=4)
    parser.add_argument("--spacing", default="ico4")
    parser.add_argument("--modality", default="meg")
    parser.add_argument(
        "--anatomy",
        nargs="+",
        type=_level,
        default=["individual"],
        help="anatomy level(s); cohorts are timed at the first",
    )
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--meshes-only",
        action="store_true",
        help="write and check the anatomies only (no forwards)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="time the stages of one build from an empty cache (n_jobs=1)",
    )
    args = parser.parse_args()
    if args.meshes_only:
        _check_meshes(args)
    elif args.stages:
        _time_stages(args)
    else:
        _time_cohorts(args)


if __name__ == "__main__":
    main()
