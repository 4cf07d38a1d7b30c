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
epsilon : float | None
    Entropic regularisation of optimal transport (> 0), in the unit of the
    ground metric (mm). Smaller values give sharper transport plans and need
    more Sinkhorn iterations (log-domain ones below about
    ``max(ground_metric) / 700``). ``None`` where the ground metric is a
    kernel operator, which carries its epsilon (a value given with one must
    equal it)."""
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
docdict["hrf_samples"] = """\
hrfs : array, shape (n_times, ...)
    HRFs sampled at ``times`` (one per column, e.g. ``RankOneGLM.hrfs_``)."""
docdict["hrf_sample_times"] = """\
times : array, shape (n_times,)
    The increasing sample times (s), e.g. ``RankOneGLM.hrf_times_``."""

docdict["mwe_params"] = """\
ground_metric : GroundMetric | array, shape (n_sources, n_sources) | KernelOperator
    The ground metric between sources (e.g. geodesic distances in mm from
    :func:`mne_wasserstein.compute_ground_metric`; ``np.inf`` between
    hemispheres), or a kernel operator of :mod:`mne_wasserstein.ot` (then
    ``gamma`` is required and ``epsilon`` defaults to the operator's).
alpha : float
    The l1 (or l0.5) regularisation relative to ``alpha_max`` (the smallest
    value giving all-zero sources, see
    :func:`~mne_wasserstein.solvers.mwe_alpha_max`), in (0, 1].
beta : float
    The weight of the transport term (>= 0), relative to ``alpha_max``: the
    penalty is ``beta alpha_max / gamma sum_s [W_u(x_s+ + tau, xbar+) +
    W_u(x_s- + tau, xbar-)]``, so that in the coordinate update of a source
    the transport term weighs ``beta alpha_max`` against the
    ``alpha alpha_max`` of the l1 term. ``beta = 0`` decouples the subjects
    (independent Lasso problems).
epsilon : float | None
    The entropic regularisation of OT, in the unit of the ground metric.
    ``None``: the source spacing (the median distance from a source to its
    nearest neighbour), so that the Gibbs kernel ``exp(-M / epsilon)`` blurs
    over about one neighbour. The paper's simulations used ``10 / p`` times
    the median distance (0.002 at p = 5124, 0.2 mm on the template): sharper,
    but its Sinkhorn iterations do not converge in 2000 log-domain
    iterations at that size (``benchmarks/bench_solvers.py``).
gamma : float | None
    The marginal relaxation of unbalanced OT, in the unit of the ground
    metric. ``None``: the median ground distance (``gamma = 1`` for the
    median-normalised metric of the paper).
q : 1 | 0.5
    The sparsity penalty: the l1 norm (q = 1) or the l0.5 quasi-norm by
    reweighting (q = 0.5, :func:`~mne_wasserstein.solvers.reweighted_mwe_solver`)."""
docdict["mwe_solver_params"] = """\
tau : float
    The mass floor of the transport term, relative to the amplitude unit
    (the largest rms measurement over the root mean square column of the
    designs): the transport inputs are ``x_s+ + tau`` and ``x_s- + tau``.
    It is what makes solutions exactly sparse (see Notes).
reweighting_steps : int
    With ``q = 0.5``, the maximum number of reweighted problems.
tol : float
    Stop the outer iterations when the objective is estimated to be within
    ``tol`` (relative) of its limit (see
    :func:`~mne_wasserstein.solvers.mwe_solver`), and the reweighting when
    the sources change by less than ``tol`` relative to their largest
    amplitude.
max_iter : int
    The maximum number of outer iterations of each (reweighted) problem.
warm_start : bool
    If True, ``fit`` starts from the previous solution (same shapes),
    Sinkhorn potentials included.
backend : None | "numpy" | "cupy"
    The array library of the optimal-transport computations. ``None``: cupy
    if the ground metric is a cupy array, else numpy.
n_jobs : int | None
    The number of threads of the coordinate descent over subjects.
verbose : bool | str | int | None
    Control verbosity of the logging output (MNE's ``verbose``). ``None``
    keeps MNE's current level."""
docdict["mwe_attributes"] = """\
coef_ : ndarray, shape (n_subjects, n_sources[, n_times])
    The sources of each subject, in the unit of ``Y / X``.
barycenter_ : ndarray, shape (n_sources[, n_times])
    The signed barycenter ``xbar+ - xbar-`` (without the floor ``tau``).
sigma_ : ndarray, shape (n_subjects[, n_times])
    The noise levels, in the unit of ``Y`` (ones without noise estimation).
n_iter_ : int | ndarray
    The number of outer iterations (per time sample), all reweighting rounds
    included.
objective_ : list of float | list of list
    The objective after each outer iteration (per time sample), in internal
    units.
alpha_max_ : float | ndarray
    ``alpha_max`` (per time sample), in internal units.
epsilon_ : float
    The entropic regularisation used.
gamma_ : float
    The marginal relaxation used."""
docdict["mwe_notes"] = """\
The objective (Janati et al. 2020, Eq. 13, with the mass floor ``tau``)
and its exact block coordinate descent are those of
:func:`~mne_wasserstein.solvers.mwe_solver`, on internal units: X and Y are
divided by their scales (the root mean square column of the designs, the
largest rms measurement), so that the same ``alpha``, ``beta`` and ``tau``
give the same solution, in the units of the data, when X or Y are
multiplied by any positive constant.

Solutions are exactly sparse: a source of a subject is zero when its
correlation with the residual (in the unit of ``sigma``) is at most
``alpha_max (alpha + beta (1 - m / tau))``, where ``m`` is the transport
marginal there; with ``tau = 0`` the transport term ``-m log x`` would keep
every source with ``m > 0`` away from zero. ``fit`` never modifies the
parameters."""

docdict["metrics_true"] = """\
true : array, shape (n_sources,) | (n_subjects, n_sources)
    The true sources (their non-zeros are the true support), one row per
    subject."""
docdict["metrics_est"] = """\
est : array, shape (n_sources,) | (n_subjects, n_sources)
    The estimated sources, same shape as ``true``."""
docdict["metrics_ground_metric"] = """\
ground_metric : array, shape (n_sources, n_sources) | GroundMetric
    The distances between sources (mm), the same for all subjects (a common
    source space): a dense matrix (``np.inf`` where transport is
    impossible) or a :class:`~mne_wasserstein.GroundMetric` (infinite
    between its blocks). Only the entries between the two supports are
    read."""

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

    Multi-line entries are indented like the docstring they go into.
    Placeholders that :data:`docdict` does not have are left in place, for
    :func:`mne.utils.verbose` (applied after it) to fill from MNE's.

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
        entries = _KeepUnknown({k: v.replace("\n", pad) for k, v in docdict.items()})
        func.__doc__ = doc % entries
    return func


class _KeepUnknown(dict):
    """Leave placeholders of other doc dictionaries (e.g. MNE's) in place."""

    def __missing__(self, key):
        return f"%({key})s"
