"""Tests of the Kantorovich mean and Wasserstein barycenter of SourceEstimates."""

import mne
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import coo_array, hstack, vstack
from scipy.stats import wasserstein_distance

from mne_wasserstein import compute_ground_metric
from mne_wasserstein.averaging import kantorovich_mean, wasserstein_barycenter
from mne_wasserstein.inverse import aligned_order
from mne_wasserstein.ot import (
    VirtualPointKernel,
    kantorovich_barycenter,
    unbalanced_sinkhorn,
)
from mne_wasserstein.solvers import ConvergenceWarning


def _grid_stcs(data, tstep=0.001):
    """Estimates on a 1-D "source space": n points in the left hemisphere."""
    data = np.atleast_2d(data)
    n = data.shape[1]
    vertices = [np.arange(n), np.array([], int)]
    return [
        mne.SourceEstimate(d.reshape(n, -1), vertices, tmin=0.0, tstep=tstep)
        for d in data
    ]


def _line(n, p=1):
    x = np.arange(n, dtype=float)
    return np.abs(x[:, None] - x[None]) ** p


def _median_offdiag(M):
    return np.median(M[~np.eye(len(M), dtype=bool)])


@pytest.mark.parametrize("mass", [None, 0.5])
def test_two_diracs_midpoint(mass):
    """p=2: the mean of Diracs at i and j is concentrated at (i + j) / 2."""
    n, i, j = 41, 10, 30
    data = np.zeros((2, n))
    data[0, i] = data[1, j] = 1.0
    stc = kantorovich_mean(_grid_stcs(data), ground_metric=_line(n), p=2, mass=mass)
    a = stc.data[:, 0]
    x = np.arange(n)
    assert stc.data.shape == (n, 1)
    assert np.argmax(a) == (i + j) // 2
    # 1e-10: the mass is renormalised exactly after every step
    assert abs(a.sum() - (1.0 if mass is None else mass)) < 1e-10 * a.sum()
    # symmetric problem: the centre of mass is the midpoint (0.05: the error
    # left by the iterations, see below)
    assert abs((a * x).sum() / a.sum() - (i + j) / 2) < 0.05
    # the entropic blur: with epsilon = median(M^2) / 100 the mean is
    # proportional to exp(-(k - 20)^2 / epsilon) at k (cost (k - 20)^2 +
    # const per unit mass; a smaller mass only adds the cost delta of
    # creating the rest for each input)
    eps = _median_offdiag(_line(n, 2)) / 100
    expected = np.exp(-((x - 20.0) ** 2) / eps)
    expected *= a.sum() / expected.sum()
    # 5 %: log(a) converges linearly at the rate 1 - step * eps / max(M^2)
    # (step * eps / max(M^2) = 3.6e-3 here), so stopping at a relative change
    # of 1e-4 (the default tol) leaves an error of about 1e-4 / 3.6e-3 = 3 %
    assert np.abs(a - expected).max() < 0.05 * a.max()


def test_two_diracs_unequal_masses():
    """Masses 1 and 2 (p=2): the common unit mass goes to the middle, the
    excess half unit stays on the heavier input (cost 2 delta / 2 for the
    excess either way, and then no transport for the heavier one)."""
    n, i, j = 41, 10, 30
    data = np.zeros((2, n))
    data[0, i], data[1, j] = 1.0, 2.0
    a = kantorovich_mean(_grid_stcs(data), ground_metric=_line(n), p=2).data[:, 0]
    # 3 %: the error left at the default tolerance (see above)
    assert abs(a[17:24].sum() - 1.0) < 0.03
    assert abs(a[28:33].sum() - 0.5) < 0.03


def test_two_diracs_p1_spreads_between():
    """p=1: every point between i and j costs the same: the entropic mean is
    uniform on [i, j] (the earth mover's mean of two Diracs is not unique)."""
    n, i, j = 41, 10, 30
    data = np.zeros((2, n))
    data[0, i] = data[1, j] = 1.0
    a = kantorovich_mean(_grid_stcs(data), ground_metric=_line(n)).data[:, 0]
    # 1e-3: exp(-1 / epsilon) with epsilon = 0.14: one point outside costs 2
    # more per unit mass than inside
    assert a[i : j + 1].sum() > (1 - 1e-3) * a.sum()
    inside = a[i : j + 1]
    # uniform inside up to the tolerance (relative change 1e-6 per step)
    assert inside.max() / inside.min() < 1 + 1e-3


def _kantorovich_values(A, B, M, delta, eps):
    """F(a) for each column of A: the mean entropic Kantorovich distance to the
    columns of B, without the constant eps * sum(K) (one virtual point)."""
    kern = VirtualPointKernel(M, delta, eps)
    n, S = B.shape
    k = A.shape[1]
    diff = B.sum(0)[None] - A.sum(0)[:, None]  # (k, S)
    A_ext = np.r_[np.repeat(A, S, axis=1), np.maximum(diff, 0).reshape(1, -1)]
    B_ext = np.r_[np.tile(B, k), np.maximum(-diff, 0).reshape(1, -1)]
    res = unbalanced_sinkhorn(
        A_ext, B_ext, kern, epsilon=eps, gamma=np.inf, tol=1e-10, max_iter=10**5
    )
    return res.value.reshape(k, S).mean(1) - eps * kern.total()


@pytest.fixture(scope="module")
def template_metric(cohort_meg):
    """The template's ground metric (ico4) and its default epsilon and delta."""
    cohort = cohort_meg
    gm = compute_ground_metric(cohort.src_ref, subjects_dir=cohort.subjects_dir)
    off = np.concatenate([b[~np.eye(len(b), dtype=bool)] for b in gm.blocks])
    eps, delta = np.median(off) / 100, np.quantile(off, 0.9)
    return cohort, gm, float(eps), float(delta), float(max(off.max(), delta))


def _patch(gm, centre, radius):
    """Sources of the left hemisphere within radius (mm) of centre: a patch on
    which the mean of sources near the centre is the same as on the cortex."""
    D = gm.blocks[0].astype(float)
    patch = np.flatnonzero(D[centre] < radius)
    return patch, D[np.ix_(patch, patch)], np.flatnonzero(patch == centre)[0]


@pytest.mark.parametrize("kind", ["sparse", "smooth"])
def test_objective_decreases(template_metric, kind):
    _, gm, eps, delta, scale = template_metric
    _, D, centre = _patch(gm, 1000, 40)
    rng = np.random.default_rng(0)
    n, S = len(D), 6
    if kind == "sparse":
        B = rng.random((n, S)) * (rng.random((n, S)) < 0.1)
    else:
        ring = np.flatnonzero((D[centre] > 5) & (D[centre] < 15))
        B = np.exp(-0.5 * (D[:, rng.choice(ring, S)] / 8.0) ** 2)
    B /= B.sum(0).mean()
    iterates = []
    res = kantorovich_barycenter(
        B[:, :, None],
        VirtualPointKernel(D, delta, eps),
        step=4.0,
        cost_scale=scale,
        max_iter=20,
        tol=1e-6,
        callback=lambda k, a: iterates.append(a[:, 0].copy()),
    )
    assert len(iterates) == res.n_iter == 20
    values = _kantorovich_values(np.array(iterates).T, B, D, delta, eps)
    # the objective at every iterate, from one Sinkhorn solve converged to
    # 1e-10, never increases (1e-9 relative: the accuracy of that solve)
    assert np.all(np.diff(values) <= 1e-9 * np.abs(values[1:]))
    assert values[-1] < values[0] - 1e-3 * abs(values[0])


def _lp_kantorovich(B, M, delta, rho, a=None):
    """Problem P1 of the paper as one LP (scipy/HiGHS), or K(a, b_s) for fixed a.

    Definition 1 verbatim: one virtual point at distance delta of every point,
    a common total mass C >= every mass, the barycenter's virtual mass C - rho.
    Variables: a (n) then the plans P_s ((n + 1) x (n + 1), row-major).
    """
    n, S = B.shape
    C = max(rho, B.sum(0).max()) + 1.0
    m = n + 1
    M_hat = np.zeros((m, m))
    M_hat[:n, :n], M_hat[:n, n], M_hat[n, :n] = M, delta, delta
    rows_a = coo_array(np.kron(np.eye(m), np.ones(m)))  # P 1
    rows_b = coo_array(np.kron(np.ones(m), np.eye(m)))  # P^T 1
    blocks, rhs = [], []
    select_a = np.zeros((m, n))
    select_a[:n, :n] = np.eye(n)
    for s in range(S):
        left = [coo_array((m, m * m))] * S
        left[s] = rows_a
        blocks.append(hstack([coo_array(-select_a)] + left))
        rhs.append(np.r_[np.zeros(n), C - rho])
        left = [coo_array((m, m * m))] * S
        left[s] = rows_b
        blocks.append(hstack([coo_array((m, n))] + left))
        rhs.append(np.r_[B[:, s], C - B[:, s].sum()])
    blocks.append(hstack([coo_array(np.ones((1, n))), coo_array((1, S * m * m))]))
    rhs.append([rho])
    A_eq, b_eq = vstack(blocks).tocsr(), np.concatenate(rhs)
    cost = np.r_[np.zeros(n), np.tile(M_hat.ravel(), S) / S]
    bounds = [(0, None)] * (n + S * m * m)
    if a is not None:
        bounds[:n] = [(x, x) for x in a]
    res = linprog(cost, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    assert res.status == 0
    return res.fun, res.x[:n]


@pytest.mark.parametrize("p", [1, 2])
def test_matches_linear_program(p):
    """The unsmoothed objective at the mean is within the entropic bias of the
    LP optimum of Problem P1 (with Definition 1's single virtual point)."""
    rng = np.random.default_rng(10 + p)
    n, S = 12, 3
    M = _line(n, p)
    B = rng.random((n, S)) * (rng.random((n, S)) < 0.4)
    B[rng.integers(n, size=S), np.arange(S)] += 0.5  # no empty input
    B *= 0.9 / B.sum(0).max()  # masses <= 1 (the plans' entries too)
    rho = B.sum(0).mean()
    off = M[~np.eye(n, dtype=bool)]
    eps, delta = np.median(off) / 100, np.quantile(off, 0.9)
    assert 2 * delta >= off.max()  # no mass is destroyed and re-created
    stc = kantorovich_mean(_grid_stcs(B.T), ground_metric=M, tol=1e-6, max_iter=5000)
    # (the cost is passed as the metric: p=1 on M = |i - j|^p)
    a = stc.data[:, 0]
    lp_value, _ = _lp_kantorovich(B, M, delta, rho)
    value_at_a, _ = _lp_kantorovich(B, M, delta, rho, a=a)
    # V(a) - V* is at most the entropic bias: for plans of mass <= 1 on
    # N = (n + 1)^2 entries the entropy lies in [0, log N], so
    # OT(a) - eps log N <= OT_eps(a) <= OT(a) and, a minimising OT_eps,
    # V(a) <= V(a*) + eps log N = V* + 2 eps log(n + 1) (1e-9: LP accuracy;
    # the mean is converged to a relative change of 1e-6, far below the bias)
    bias = 2 * eps * np.log(n + 1)
    assert lp_value - 1e-9 <= value_at_a <= lp_value + bias
    assert bias < 0.2 * lp_value  # the bound is informative


def test_identical_inputs():
    """The mean of copies of one input is that input, up to the entropic blur."""
    n = 41
    x = np.arange(n)
    b = np.exp(-0.5 * ((x - 12) / 2.0) ** 2) + 0.5 * (np.abs(x - 30) <= 2)
    b[b < 1e-3] = 0
    a = kantorovich_mean(_grid_stcs([b] * 4), ground_metric=_line(n), step=8.0)
    a = a.data[:, 0]
    # 1e-10: the default mass is the mean mass
    assert abs(a.sum() - b.sum()) < 1e-10 * b.sum()
    # W1(a, b) <= 2 eps log(n + 1) per unit mass: OT(a, b) - eps log N <=
    # OT_eps(a, b) <= OT_eps(b, b) <= 0 (the diagonal plan), N = (n + 1)^2
    eps = _median_offdiag(_line(n)) / 100
    w1 = wasserstein_distance(x, x, a, b)
    assert w1 <= 2 * eps * np.log(n + 1)
    assert np.abs(a - b).max() < 0.05 * b.max()


def test_signed_and_batched(template_metric):
    """Signed data: positive and negative parts; time samples are independent."""
    cohort, gm, eps, delta, _ = template_metric
    patch, D, _ = _patch(gm, 2000, 30)
    rng = np.random.default_rng(3)
    n, S, T = len(D), 4, 3
    data = rng.standard_normal((S, n, T)) * (rng.random((S, n, T)) < 0.1)
    vertices = [cohort.src_ref[0]["vertno"][patch], np.array([], int)]
    kw = dict(ground_metric=D, epsilon=eps, delta=delta, tol=1e-6, max_iter=5000)

    def stcs_of(x):
        return [mne.SourceEstimate(d, vertices, 0, 0.001) for d in x]

    mean = kantorovich_mean(stcs_of(data), **kw).data
    pos = kantorovich_mean(stcs_of(np.maximum(data[:, :, :1], 0)), **kw).data
    neg = kantorovich_mean(stcs_of(np.maximum(-data[:, :, :1], 0)), **kw).data
    # 1e-3: runs stopped at a relative change of 1e-6 per step, the error
    # is at most about 1e-6 / (step eps / max(M)) = 1e-6 / 2e-4
    scale = np.abs(mean).max()
    assert np.abs(mean[:, :1] - (pos - neg)).max() < 1e-2 * scale
    last = kantorovich_mean(stcs_of(data[:, :, 2:]), **kw).data
    assert np.abs(mean[:, 2:] - last).max() < 1e-2 * scale
    # each part has the mean mass of the parts (1e-10: renormalised exactly)
    assert abs(pos.sum() / np.maximum(data[:, :, 0], 0).sum(1).mean() - 1) < 1e-10
    assert abs(neg.sum() / np.maximum(-data[:, :, 0], 0).sum(1).mean() - 1) < 1e-10
    # a total mass is split between the parts in the proportions of their
    # mean masses: the mean mass gives the default mean (1e-10: the same
    # iterations up to rounding)
    total = np.abs(data).sum(1).mean(0)
    mean2 = kantorovich_mean(stcs_of(data), mass=total, **kw).data
    assert np.abs(mean2 - mean).max() < 1e-10 * scale
    # an all-zero time sample stays zero
    data[:, :, 1] = 0
    assert np.all(kantorovich_mean(stcs_of(data), **kw).data[:, 1] == 0)


def _jittered_cohort(D, centre, n_subjects, n_draws, rng):
    """Per draw and subject, a focal source 5 to 15 mm away from the centre."""
    ring = np.flatnonzero((D[centre] > 5) & (D[centre] < 15))
    data = np.zeros((n_subjects, len(D), n_draws))
    for t in range(n_draws):
        picks = rng.choice(ring, n_subjects)
        np.add.at(data[:, :, t], (np.arange(n_subjects), picks), 1.0)
        data[:, :, t] *= rng.uniform(0.8, 1.2, (n_subjects, 1))
    return data


def _mass_near_peak(x, D, radius=10.0):
    return x[D[np.argmax(x)] <= radius].sum() / x.sum()


def test_sharper_than_euclidean_on_cohort(template_metric):
    """16 subjects with one focal source jittered by ~10 mm (8 draws): the
    Kantorovich mean keeps twice as much mass within 10 mm of its peak."""
    cohort, gm, eps, delta, _ = template_metric  # the defaults of the cortex
    # a patch of the left hemisphere around the centre (the mean stays
    # inside it): the same problem as on the whole cortex, but fast
    patch, D, centre = _patch(gm, 1000, 45)
    rng = np.random.default_rng(0)
    data = _jittered_cohort(D, centre, 16, 8, rng)
    vertices = [cohort.src_ref[0]["vertno"][patch], np.array([], int)]
    stcs = [mne.SourceEstimate(d, vertices, 0, 0.001) for d in data]
    km = kantorovich_mean(stcs, ground_metric=D, epsilon=eps, delta=delta).data
    euclid = data.mean(0)
    near_km = np.array([_mass_near_peak(x, D) for x in km.T])
    near_euclid = np.array([_mass_near_peak(x, D) for x in euclid.T])
    ratio = near_km / near_euclid
    print(
        "\nfraction of the mass within 10 mm of the peak, per draw:"
        f"\n  Kantorovich {np.round(near_km, 3)}"
        f"\n  Euclidean   {np.round(near_euclid, 3)}"
        f"\n  ratio       {np.round(ratio, 2)} (median {np.median(ratio):.2f})"
    )
    # each draw of 16 jittered locations is random: the Euclidean mean's peak
    # neighbourhood holds between a quarter and a half of its mass depending
    # on the draw, so the factor 2 is asserted on the median over 8 draws,
    # and every draw must be sharper
    assert min(ratio) > 1.0
    assert np.median(ratio) >= 2.0


def test_morph_to_reference(template_metric):
    """Estimates on the subjects' source spaces are morphed to the reference."""
    cohort, gm = template_metric[:2]
    n_ref = sum(s["nuse"] for s in cohort.src_ref)
    j = 700  # a template source of the left hemisphere
    stcs = []
    for s in range(cohort.n_subjects):
        src = cohort.forwards[s]["src"]
        order = aligned_order(
            cohort.src_ref,
            src,
            cohort.subject_ref,
            cohort.subjects[s],
            cohort.subjects_dir,
        )
        data = np.zeros((n_ref, 1))
        data[order[j]] = 1.0
        stcs.append(
            mne.SourceEstimate(
                data, [x["vertno"] for x in src], 0, 0.001, subject=cohort.subjects[s]
            )
        )
    with pytest.raises(ValueError, match="subjects_dir"):
        wasserstein_barycenter(stcs, ground_metric=gm)
    bary = wasserstein_barycenter(
        stcs, src=cohort.src_ref, subjects_dir=cohort.subjects_dir, epsilon=5.0
    )
    assert bary.subject == cohort.subject_ref
    assert all(
        np.array_equal(v, s["vertno"])
        for v, s in zip(bary.vertices, cohort.src_ref, strict=True)
    )
    # every subject's source is template source j: so is the barycenter's peak
    assert np.argmax(bary.data[:, 0]) == j


def test_wasserstein_barycenter_matches_engine():
    from mne_wasserstein.ot import unbalanced_barycenter

    rng = np.random.default_rng(5)
    n, S = 25, 3
    data = rng.standard_normal((S, n, 2)) * (rng.random((S, n, 2)) < 0.3)
    M = _line(n)
    stcs = [
        mne.SourceEstimate(d, [np.arange(n), np.array([], int)], 0, 1) for d in data
    ]
    bary = wasserstein_barycenter(stcs, ground_metric=M, epsilon=0.5, gamma=5.0)
    A = np.moveaxis(data, 0, 1)[:, :, 0]  # (n, S) at t = 0
    pos = unbalanced_barycenter(np.maximum(A, 0), M, epsilon=0.5, gamma=5.0)
    neg = unbalanced_barycenter(np.maximum(-A, 0), M, epsilon=0.5, gamma=5.0)
    ref = pos.barycenter - neg.barycenter
    # 1e-5: two solves stopped at tol 1e-6
    assert np.abs(bary.data[:, 0] - ref).max() < 1e-5 * np.abs(ref).max()


def test_convergence_warning():
    data = np.zeros((2, 21))
    data[0, 3] = data[1, 17] = 1.0
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        kantorovich_mean(_grid_stcs(data), ground_metric=_line(21), max_iter=2)


def test_bad_input():
    n = 10
    stcs = _grid_stcs(np.ones((2, n)))
    M = _line(n)
    with pytest.raises(ValueError, match="empty"):
        kantorovich_mean([], ground_metric=M)
    with pytest.raises(TypeError, match="list of SourceEstimate"):
        kantorovich_mean(stcs[0], ground_metric=M)
    with pytest.raises(TypeError, match="SourceEstimate"):
        kantorovich_mean([np.ones(n)], ground_metric=M)
    with pytest.raises(ValueError, match="mass"):
        kantorovich_mean(stcs, ground_metric=M, mass=-1.0)
    with pytest.raises(ValueError, match="mass"):
        kantorovich_mean(stcs, ground_metric=M, mass=[1.0, 2.0])
    with pytest.raises(ValueError, match="ground_metric or src"):
        kantorovich_mean(stcs)
    with pytest.raises(ValueError, match="rows"):
        kantorovich_mean(stcs, ground_metric=_line(n + 1))
    for name in ("p", "step", "tol", "epsilon", "delta"):
        with pytest.raises(ValueError, match=name):
            kantorovich_mean(stcs, ground_metric=M, **{name: 0})
    with pytest.raises(ValueError, match="max_iter"):
        kantorovich_mean(stcs, ground_metric=M, max_iter=0)
    # other times
    other = _grid_stcs(np.ones((1, n)), tstep=0.002)
    with pytest.raises(ValueError, match="other times"):
        kantorovich_mean(stcs + other, ground_metric=M)
    # other source spaces and no subjects_dir to morph them
    moved = mne.SourceEstimate(
        np.ones((n, 1)), [np.arange(1, n + 1), np.array([], int)], 0, 0.001
    )
    with pytest.raises(ValueError, match="subjects_dir"):
        kantorovich_mean(stcs + [moved], ground_metric=M)
    with pytest.raises(ValueError, match="subjects_dir"):
        wasserstein_barycenter(stcs + [moved], ground_metric=M)
    bad = _grid_stcs(np.full((1, n), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        kantorovich_mean(bad, ground_metric=M)
    with pytest.raises(TypeError, match="src"):
        kantorovich_mean(stcs, ground_metric=M, src="fsaverage")


def test_barycenter_converges_on_focal_inputs(template_metric):
    """Four focal maps 6 to 13 mm apart on the template (the tutorial's): the
    over-relaxed iterations used to cycle (criterion stuck at 0.65), they must
    now converge, to the barycenter of plain (relaxation 1) iterations."""
    from mne_wasserstein.ot import unbalanced_barycenter

    _, gm, eps, _, _ = template_metric
    D = gm.blocks[0].astype(np.float64)
    A = np.exp(-0.5 * (D[[351, 832, 831, 829]].T / 4.0) ** 2)
    A[A < 1e-3] = 0
    kw = dict(epsilon=eps, gamma=100 * eps, max_iter=3000)
    res = unbalanced_barycenter(A, D, **kw)
    assert res.state.converged
    ref = unbalanced_barycenter(A, D, relaxation=1.0, **kw)
    # 1e-5: two solves stopped at tol 1e-6
    assert np.abs(res.barycenter - ref.barycenter).max() < 1e-5 * ref.barycenter.max()


def test_hemispheres_separate():
    """Two blocks (hemispheres) with different mass splits per input: the mean
    has the mean block masses, and each block is the Kantorovich mean of that
    block alone (the problem separates); the fixed-step iterations used to
    cycle on the split when only the total mass was constrained."""
    n = 21
    line = _line(n)
    M = np.full((2 * n, 2 * n), np.inf)
    M[:n, :n] = M[n:, n:] = line
    rng = np.random.default_rng(4)
    data = np.zeros((4, 2 * n))
    for s in range(4):
        data[s, rng.integers(4, 8)] = rng.uniform(0.2, 1.0)
        data[s, n + rng.integers(12, 16)] = rng.uniform(0.2, 1.0)
    vertices = [np.arange(n), np.arange(n)]
    stcs = [mne.SourceEstimate(d[:, None], vertices, 0, 1) for d in data]
    kw = dict(epsilon=0.2, delta=15.0, tol=1e-7, max_iter=20_000)
    a = kantorovich_mean(stcs, ground_metric=M, **kw).data[:, 0]
    # 1e-10: renormalised exactly in each block after every step
    for block in (slice(0, n), slice(n, 2 * n)):
        assert abs(a[block].sum() - data[:, block].sum(1).mean()) < 1e-10
        alone = kantorovich_mean(_grid_stcs(data[:, block]), ground_metric=line, **kw)
        # 1e-4: runs stopped at a relative change of 1e-7 per step, the error
        # is at most about 1e-7 / (step eps / max(M, delta)) = 2e-6 relative
        assert np.abs(a[block] - alone.data[:, 0]).max() < 1e-4 * a.max()
