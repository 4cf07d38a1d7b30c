"""Shared parameter documentation (``docdict``) and ``fill_doc``.

No dependency on MNE-Python, so that every layer of the package can use it.
"""

# ``%(verbose)s`` is filled by mne.utils.verbose itself (MNE's wording)
docdict = {}
docdict["subjects_dir"] = """\
subjects_dir : path-like | None
    The FreeSurfer ``SUBJECTS_DIR`` to write into and read from. If ``None``,
    ``<data folder>/subjects`` is used, where the data folder is given by the
    ``MNE_WASSERSTEIN_DATA`` environment variable or MNE config key (default
    ``~/mne_data/mne_wasserstein``)."""
docdict["epsilon"] = """\
epsilon : float
    Entropic regularisation of optimal transport (> 0), in the unit of the
    ground metric (mm). Smaller values give sharper transport plans and need
    more Sinkhorn iterations (log-domain ones below about
    ``max(ground_metric) / 700``)."""
docdict["gamma"] = """\
gamma : float
    Marginal relaxation of unbalanced optimal transport (> 0), in the unit
    of the ground metric (mm): the weight of the KL penalties on the
    marginals in Eq. 9 of Janati et al. (NeuroImage 2020). Large values approach
    balanced transport."""
docdict["backend"] = """\
backend : None | "numpy" | "cupy"
    The array library of the optimal-transport computations. ``None``: cupy
    if the inputs are cupy arrays, else numpy. cupy needs the ``gpu`` extra
    and a CUDA device."""
docdict["random_state"] = """\
random_state : None | int | RandomState | Generator
    Seed or random number generator, for reproducible results."""
docdict["n_jobs"] = """\
n_jobs : int | None
    The number of jobs to run in parallel (through :mod:`joblib`). ``None``
    means 1 unless in a :func:`joblib.parallel_config` context."""
docdict["solver_X"] = """\
X : array, shape (n_subjects, n_sensors, n_sources) | list of array
    The designs (whitened gain matrices): one (n_sensors_s, n_sources) array
    per subject; the number of sensors may differ between subjects."""
docdict["solver_Y"] = """\
Y : array, shape (n_subjects, n_sensors[, n_times]) | list of array
    The measurements. Time samples are fitted one after the other, each
    warm-started from the previous one."""
docdict["solver_tol"] = """\
tol : float
    Stop when the duality gap is below ``tol`` times the objective at zero
    (``sum_s ||y_s||^2 / (2 n_s)``)."""
docdict["warm_start"] = """\
warm_start : bool
    If True, ``fit`` starts from the previous solution (same shapes)."""

# averaging of SourceEstimates (mne_wasserstein.averaging)
docdict["average_stcs"] = """\
stcs : list of SourceEstimate
    The estimates to average (surface source spaces, the same times). Estimates
    of other subjects or on other vertices than the reference source space are
    morphed to it first (see ``subjects_dir``)."""
docdict["average_reference"] = """\
ground_metric : GroundMetric | array, shape (n_sources, n_sources) | None
    The ground metric (mm) between the sources of the reference source space,
    e.g. from :func:`mne_wasserstein.compute_ground_metric` (whose subject and
    vertices are then the reference). An array (``np.inf`` between
    hemispheres) has the rows of the reference's data (left then right
    hemisphere). ``None``: computed from ``src``.
src : SourceSpaces | None
    The reference source space (e.g. ``cohort.src_ref``). Needed when
    ``ground_metric`` is ``None``; otherwise optional (the reference is then
    ``ground_metric``'s, or the first estimate's).
subjects_dir : path-like | None
    The FreeSurfer subjects folder, needed to morph estimates that are not on
    the reference source space (by :func:`mne.compute_source_morph` with its
    automatic smoothing, through the ``sphere.reg`` registrations; morph them
    yourself for other options) and to compute the ground metric."""


def fill_doc(func):
    """Fill ``%(name)s`` placeholders of a docstring from :data:`docdict`.

    Multi-line entries are indented like the docstring they go into; other
    placeholders (e.g. ``%(verbose)s``, which :func:`mne.utils.verbose` fills)
    are left as they are, so that ``@verbose`` can be applied on top.

    Parameters
    ----------
    func : callable
        The function, method or class whose docstring has placeholders.

    Returns
    -------
    func : callable
        The same object, with its docstring filled in.
    """
    doc = func.__doc__
    if doc:
        lines = doc.expandtabs().splitlines()[1:]
        indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
        pad = "\n" + " " * (min(indents) if indents else 0)
        func.__doc__ = doc % _KeepMissing(
            {key: v.replace("\n", pad) for key, v in docdict.items()}
        )
    return func


class _KeepMissing(dict):
    def __missing__(self, key):
        return f"%({key})s"
