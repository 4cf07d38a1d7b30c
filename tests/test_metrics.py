import numpy as np
import pytest

from mne_wasserstein import GroundMetric
from mne_wasserstein.metrics import emd_per_source, localization_error, mse, pr_auc

# sources on a line at known positions (mm): the geodesic distance is
# |x_i - x_j|, and the EMD between histograms on a line has the closed form
# sum_k |F_a(k) - F_b(k)| (x_{k+1} - x_k), with F the cumulative sums
POS = np.cumsum(np.r_[0.0, np.random.default_rng(0).uniform(1, 5, 39)])
LINE = np.abs(POS[:, None] - POS[None, :])


def _line_emd(a, b):
    a, b = a / a.sum(), b / b.sum()
    return np.sum(np.abs(np.cumsum(a) - np.cumsum(b))[:-1] * np.diff(POS))


def _sparse(rng, n_subjects, p, k):
    x = np.zeros((n_subjects, p))
    for s in range(n_subjects):
        x[s, rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    return x


def _two_hemis():
    """A GroundMetric with two 'hemispheres': the line and a shifted copy."""
    blocks = [LINE.astype(np.float32), LINE[:25, :25].astype(np.float32)]
    vertices = [np.arange(40) * 3, np.arange(25) * 2]
    return GroundMetric(blocks, vertices, ["lh", "rh"])


def test_pr_auc_perfect_and_chance():
    rng = np.random.default_rng(1)
    true = _sparse(rng, 3, 50, 5)
    assert np.all(pr_auc(true, true) == 1.0)
    # only the order of |est| matters: any est largest on the support
    est = 1e-3 * rng.standard_normal(true.shape) + 10 * true
    np.testing.assert_array_equal(pr_auc(true, est), 1.0)
    # all-zero estimate: one threshold, precision = 5 / 50 at recall 1
    np.testing.assert_allclose(pr_auc(true, np.zeros_like(true)), 0.1, rtol=1e-15)


def test_pr_auc_closed_form():
    # scores ranked: positive, negative, positive, negative ... (2 positives)
    true = np.array([1.0, 0, 1, 0])
    est = np.array([4.0, 3, 2, 1])
    # precision 1 at recall 1/2, 2/3 at recall 1
    assert pr_auc(true, est) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, rel=1e-15)


def test_pr_auc_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    true = _sparse(rng, 6, 80, 7)
    # sparse estimates (ties at zero) and rounded values (ties elsewhere)
    est = np.round(_sparse(rng, 6, 80, 30) + 0.3 * true, 1)
    expected = [
        metrics.average_precision_score(t != 0, np.abs(e))
        for t, e in zip(true, est, strict=True)
    ]
    # the same arithmetic in another order: a few ulps
    np.testing.assert_allclose(pr_auc(true, est), expected, rtol=1e-12)


def test_pr_auc_invariances():
    rng = np.random.default_rng(3)
    true, est = _sparse(rng, 4, 60, 5), _sparse(rng, 4, 60, 20)
    base = pr_auc(true, est)
    signs = rng.choice([-1.0, 1.0], est.shape)
    # sign flips and scalings keep |est| in the same order: bit-identical
    np.testing.assert_array_equal(pr_auc(true, signs * est), base)
    np.testing.assert_array_equal(pr_auc(true, -1e-9 * est), base)
    np.testing.assert_array_equal(pr_auc(3.0 * np.abs(true), est), base)
    # batch over subjects is the loop over subjects
    np.testing.assert_array_equal(
        base, [pr_auc(t, e) for t, e in zip(true, est, strict=True)]
    )


def test_emd_diracs():
    for i, j in [(0, 0), (3, 17), (39, 2)]:
        true, est = np.zeros(40), np.zeros(40)
        true[i], est[j] = 2e-8, -5.0
        # a Dirac moves as a whole: the LP is exact to its 1e-10 tolerance
        assert emd_per_source(true, est, LINE) == pytest.approx(LINE[i, j], abs=1e-8)


def test_emd_line_closed_form():
    rng = np.random.default_rng(4)
    true, est = _sparse(rng, 5, 40, 5), _sparse(rng, 5, 40, 12)
    expected = [
        _line_emd(np.abs(t), np.abs(e)) / 5 for t, e in zip(true, est, strict=True)
    ]
    # LP feasibility 1e-10 times costs up to 120 mm
    np.testing.assert_allclose(emd_per_source(true, est, LINE), expected, atol=1e-7)


def test_emd_per_source_divides_by_true_sources():
    # two true sources, each estimated at a known distance: (d1 + d2) / 2 / 2
    true, est = np.zeros(40), np.zeros(40)
    true[[5, 30]] = [1.0, -1.0]
    est[[8, 26]] = [3.0, 3.0]
    expected = (0.5 * LINE[5, 8] + 0.5 * LINE[30, 26]) / 2
    assert emd_per_source(true, est, LINE) == pytest.approx(expected, abs=1e-8)


def test_emd_perfect_and_invariances():
    rng = np.random.default_rng(5)
    true, est = _sparse(rng, 4, 40, 5), _sparse(rng, 4, 40, 9)
    # |est| proportional to |true|: nothing to move (LP tolerance)
    np.testing.assert_allclose(
        emd_per_source(true, -7.0 * np.abs(true), LINE), 0, atol=1e-8
    )
    base = emd_per_source(true, est, LINE)
    signs = rng.choice([-1.0, 1.0], est.shape)
    # the same normalised histograms up to rounding: LP tolerance
    np.testing.assert_allclose(emd_per_source(true, signs * est, LINE), base, atol=1e-8)
    np.testing.assert_allclose(emd_per_source(true, 1e-9 * est, LINE), base, atol=1e-8)
    np.testing.assert_allclose(emd_per_source(-2 * true, est, LINE), base, atol=1e-8)
    assert np.all(np.isnan(emd_per_source(true, np.zeros_like(est), LINE)))


def test_emd_pot():
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(6)
    rr = rng.uniform(0, 80, (300, 3))
    M = np.linalg.norm(rr[:, None] - rr[None], axis=-1)
    true, est = _sparse(rng, 3, 300, 5), _sparse(rng, 3, 300, 60)
    expected = []
    for t, e in zip(true, est, strict=True):
        a, b = np.abs(t) / np.abs(t).sum(), np.abs(e) / np.abs(e).sum()
        expected.append(ot.emd2(a, b, M) / 5)
    # two exact solvers (network simplex, HiGHS): agree to their tolerances
    np.testing.assert_allclose(emd_per_source(true, est, M), expected, atol=1e-7)


def test_emd_ground_metric_blocks():
    gm = _two_hemis()
    dense = gm.to_dense()
    true, est = np.zeros(65), np.zeros(65)
    true[[3, 50]] = [1.0, 1.0]  # half the mass in each block
    est[[10, 12, 44, 60]] = [0.5, -1.5, 1.0, 1.0]
    # each block moves its half independently; in each, a Dirac (local
    # index 3 in lh, 10 in rh) spreads onto the estimated sources
    expected = (
        0.125 * LINE[3, 10]
        + 0.375 * LINE[3, 12]
        + 0.25 * LINE[10, 4]
        + 0.25 * LINE[10, 20]
    ) / 2
    assert emd_per_source(true, est, gm) == pytest.approx(expected, abs=1e-6)
    # the same through the dense matrix with np.inf between blocks; the
    # float32 blocks are exact to 1e-6 relative
    assert emd_per_source(true, est, dense) == pytest.approx(expected, abs=1e-6)
    # the rh block is addressed after the lh one: a Dirac in each
    a, b = np.zeros(65), np.zeros(65)
    a[40 + 2], b[40 + 20] = 1.0, 1.0
    assert emd_per_source(a, b, gm) == pytest.approx(LINE[2, 20], rel=1e-6)
    # different mass fractions per block: mass must cross, impossible
    est[60] = 5.0
    assert emd_per_source(true, est, gm) == np.inf
    assert emd_per_source(true, est, dense) == np.inf
    batch = emd_per_source(np.stack([true, a]), np.stack([est, b]), gm)
    assert batch.shape == (2,) and batch[0] == np.inf


def test_localization_error():
    true, est = np.zeros(40), np.zeros(40)
    true[[5, 30]] = [1.0, -1.0]
    est[[6, 8, 39]] = [1.0, 1.0, 1e-12]
    expected = (LINE[5, 6] + LINE[30, 39]) / 2
    assert localization_error(true, est, LINE) == pytest.approx(expected, rel=1e-15)
    # supports only: signs and scales do not matter
    assert localization_error(true, -3 * est, LINE) == pytest.approx(expected)
    assert localization_error(true, true, LINE) == 0
    assert np.isnan(localization_error(true, np.zeros(40), LINE))
    gm = _two_hemis()
    a, b = np.zeros(65), np.zeros(65)
    a[[1, 41]], b[[4, 60]] = 1.0, 1.0
    # nearest estimate of each true source within its own block
    expected = (LINE[1, 4] + LINE[1, 20]) / 2
    assert localization_error(a, b, gm) == pytest.approx(expected, rel=1e-6)


def test_mse():
    true = np.array([[1.0, 0, -2, 0], [0, 0, 0, 0]])
    est = np.array([[0.0, 1, -2, 0], [0, 2, 0, 0]])
    np.testing.assert_array_equal(mse(true, est), [0.5, 1.0])
    assert mse(true[0], est[0]) == 0.5
    # quadratic in a common scale, not sign-invariant
    assert mse(3 * true[0], 3 * est[0]) == pytest.approx(9 * 0.5, rel=1e-15)
    assert mse(true[0], -est[0]) == pytest.approx((1 + 1 + 16) / 4, rel=1e-15)


@pytest.mark.parametrize(
    "true, est, match",
    [
        (np.ones(3), np.ones(4), "same shape"),
        (np.ones((2, 2, 2)), np.ones((2, 2, 2)), "must have shape"),
        (np.ones(0), np.ones(0), "must have shape"),
        (np.array([1.0, np.nan]), np.ones(2), "NaN"),
        (np.ones(2), np.array([1.0, np.inf]), "NaN or infinite"),
        (np.zeros((2, 3)), np.ones((2, 3)), r"no source .* \[0, 1\]"),
    ],
)
def test_bad_inputs(true, est, match):
    for func in (pr_auc, lambda t, e: emd_per_source(t, e, np.ones((3, 3)))):
        with pytest.raises(ValueError, match=match):
            func(true, est)


def test_bad_types_and_metrics():
    with pytest.raises(TypeError, match="real array"):
        pr_auc(np.ones(3, complex), np.ones(3))
    with pytest.raises(TypeError, match="real array"):
        mse(np.ones(3), np.array(["a", "b", "c"]))
    true = np.array([1.0, 0, 0])
    with pytest.raises(TypeError, match="ground_metric"):
        emd_per_source(true, true, "geodesic")
    with pytest.raises(ValueError, match="square"):
        emd_per_source(true, true, np.ones((3, 4)))
    with pytest.raises(ValueError, match="has 4 sources"):
        localization_error(true, true, np.ones((4, 4)))
    with pytest.raises(ValueError, match="has 65 sources"):
        emd_per_source(true, true, _two_hemis())
    with pytest.raises(ValueError, match="non-negative"):
        emd_per_source(true, true, -np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        localization_error(true, true, np.full((3, 3), np.nan))
