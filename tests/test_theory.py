"""The GAN theory in numbers: V(D, G), the optimal discriminator, C(G) = -log 4 + 2 JS, the
divergences (exact, histogram estimates against closed forms) and the kernel density estimate."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinygan.backend import to_device
from tinygan.theory import (
    HISTOGRAM_EPS,
    LOG_4,
    gaussian_kde,
    gaussian_kl,
    histogram_js,
    histogram_kl,
    js_divergence,
    kl_divergence,
    optimal_discriminator,
    silverman_bandwidth,
    value_function,
    virtual_training_criterion,
)

LOG_2 = math.log(2.0)


def normal_pdf(x, mean=0.0, std=1.0):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))


def test_gaussian_kl_closed_form():
    assert gaussian_kl(0.3, 1.7, 0.3, 1.7) == 0.0
    # equal variances: KL = (mu_p - mu_q)^2 / (2 sigma^2)
    assert gaussian_kl(0.0, 1.0, 1.0, 1.0) == pytest.approx(0.5)
    assert gaussian_kl(0.0, 2.0, 3.0, 2.0) == pytest.approx(9.0 / 8.0)
    # equal means: log(s_q/s_p) + s_p^2 / (2 s_q^2) - 1/2, and KL is not symmetric
    assert gaussian_kl(0.0, 1.0, 0.0, 2.0) == pytest.approx(math.log(2.0) + 1.0 / 8.0 - 0.5)
    assert gaussian_kl(0.0, 2.0, 0.0, 1.0) == pytest.approx(-math.log(2.0) + 2.0 - 0.5)
    with pytest.raises(ValueError):
        gaussian_kl(0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "p, q", [((0.0, 1.0), (0.5, 1.2)), ((0.0, 1.0), (0.0, 1.5)), ((1.0, 0.8), (0.0, 1.0))]
)
def test_histogram_kl_approaches_the_analytic_kl(rng, p, q):
    """200,000 samples a side, 100 bins on p's range: within 0.02 nats of the closed form.

    (Observed errors are below 0.011; the estimate sits a little low because binning can only lose
    information and because q's tails outside p's range are not counted.)
    """
    n = 200_000
    estimate = histogram_kl(rng.normal(*p, size=n), rng.normal(*q, size=n))
    assert estimate == pytest.approx(gaussian_kl(*p, *q), abs=0.02)


def test_histogram_kl_is_the_tutorials_formula(rng):
    p_samples, q_samples = rng.normal(size=1000), rng.normal(0.3, 1.4, size=700)
    hist_p, edges = np.histogram(p_samples, bins=100)
    hist_q, _ = np.histogram(q_samples, bins=edges)
    hist_p = hist_p / (np.sum(hist_p) + 1e-8)
    hist_q = hist_q / (np.sum(hist_q) + 1e-8)
    tutorial = np.sum(hist_p * (np.log(hist_p + 1e-8) - np.log(hist_q + 1e-8)))
    assert HISTOGRAM_EPS == 1e-8
    assert histogram_kl(p_samples, q_samples) == pytest.approx(tutorial, rel=1e-12)


def test_histogram_kl_ignores_non_finite_samples_and_takes_any_shape(rng):
    p_samples, q_samples = rng.normal(size=(500, 1)), rng.normal(size=(400, 1))
    clean = histogram_kl(p_samples, q_samples)
    q_dirty = np.concatenate([q_samples, [[np.nan], [np.inf], [-np.inf]]])
    assert histogram_kl(p_samples.ravel(), q_dirty) == clean


def test_histogram_kl_on_the_device(device, rng):
    p_samples, q_samples = rng.normal(size=(500, 1)), rng.normal(1.0, 1.0, size=(500, 1))
    on_device = histogram_kl(to_device(p_samples, device), to_device(q_samples, device))
    assert on_device == histogram_kl(p_samples, q_samples)


def test_kl_divergence_by_hand():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.75, 0.0])
    exact = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert kl_divergence(p, q) == pytest.approx(exact, rel=1e-12)
    assert kl_divergence(p, q, HISTOGRAM_EPS) == pytest.approx(exact, rel=1e-6)
    # an empty q bin where p has mass: infinite exactly, p log(p / eps) (large but finite) smoothed
    disjoint = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert kl_divergence(*disjoint) == math.inf
    assert kl_divergence(*disjoint, HISTOGRAM_EPS) == pytest.approx(math.log(1.0 / 1e-8), rel=1e-6)


def test_identical_samples_have_zero_divergence(rng):
    samples = rng.normal(size=3000)
    assert histogram_kl(samples, samples.copy()) == 0.0
    assert histogram_js(samples, samples.copy()) == 0.0


def test_js_of_disjoint_supports_is_log_2(rng):
    left, right = rng.uniform(-3.0, -1.0, size=2000), rng.uniform(1.0, 2.0, size=500)
    assert histogram_js(left, right) == pytest.approx(LOG_2, abs=1e-6)
    disjoint = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert js_divergence(*disjoint) == pytest.approx(LOG_2, abs=1e-12)
    assert js_divergence(*disjoint, HISTOGRAM_EPS) == pytest.approx(LOG_2, abs=1e-6)


def test_js_of_two_gaussians_is_between_the_bounds_and_symmetric(rng):
    a, b = rng.normal(size=5000), rng.normal(1.0, 0.5, size=3000)
    js = histogram_js(a, b)
    assert 0.05 < js < LOG_2
    assert histogram_js(b, a) == pytest.approx(js, abs=1e-12)


samples_strategy = arrays(
    np.float64,
    st.integers(1, 60),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None)
@given(samples_strategy, samples_strategy, st.integers(1, 30))
def test_js_is_symmetric_and_bounded(a, b, bins):
    js = histogram_js(a, b, bins=bins)
    assert -1e-9 <= js <= LOG_2 + 1e-9
    assert histogram_js(b, a, bins=bins) == pytest.approx(js, abs=1e-12)


def test_explicit_range_and_empty_input(rng):
    samples = rng.normal(size=100)
    # everything outside the bins: both histograms are all zero, so there is nothing to diverge
    assert histogram_kl(samples, samples, range=(50.0, 60.0)) == 0.0
    with pytest.raises(ValueError, match="range"):
        histogram_kl(np.array([np.nan]), samples)


def test_value_function_of_a_coin_is_minus_log_4():
    logits = np.zeros((7, 1))
    assert value_function(logits, np.zeros((3, 1))) == pytest.approx(-math.log(4.0), abs=1e-12)
    real, fake = np.array([[2.0], [-1.0]]), np.array([[0.5]])
    d_real, d_fake = 1.0 / (1.0 + np.exp(-real)), 1.0 / (1.0 + np.exp(-fake))
    expected = np.mean(np.log(d_real)) + np.mean(np.log(1.0 - d_fake))
    assert value_function(real, fake) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("labels", [(1.0, 0.0), (0.9, 0.1)])
def test_optimal_discriminator_maximises_the_pointwise_objective(labels):
    """D* beats every other y in (0, 1) at each x, for the plain and the smoothed targets."""
    t_real, t_fake = labels
    a = np.array([0.3, 1.0, 0.05, 2.0])  # p_data(x) at four points
    b = np.array([0.7, 1.0, 1.5, 0.01])  # p_g(x)
    d_star = optimal_discriminator(a, b, t_real, t_fake)
    y = np.linspace(1e-4, 1 - 1e-4, 20001)[:, np.newaxis]
    objective = a * (t_real * np.log(y) + (1 - t_real) * np.log1p(-y)) + b * (
        t_fake * np.log(y) + (1 - t_fake) * np.log1p(-y)
    )
    np.testing.assert_allclose(d_star, y[np.argmax(objective, axis=0), 0], atol=1e-4)
    np.testing.assert_allclose(d_star, t_fake + (t_real - t_fake) * a / (a + b))


def test_optimal_discriminator_is_undefined_off_both_supports():
    d_star = optimal_discriminator(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0]))
    assert np.isnan(d_star[0])
    np.testing.assert_array_equal(d_star[1:], [0.5, 0.0])


def test_value_at_the_optimal_discriminator_is_minus_log_4_plus_twice_js():
    """The paper's C(G) = -log 4 + 2 JS, by quadrature for p_data = N(0, 1), p_g = N(1, 1)."""
    x = np.linspace(-12.0, 13.0, 200_001)
    dx = x[1] - x[0]
    p, q = normal_pdf(x), normal_pdf(x, 1.0)
    d_star = optimal_discriminator(p, q)
    value = np.sum(p * np.log(d_star) + q * np.log1p(-d_star)) * dx
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(p * np.log(p / m) + q * np.log(q / m)) * dx
    assert value == pytest.approx(-math.log(4.0) + 2.0 * js, abs=1e-9)
    assert 0.0 < js < LOG_2
    # the library's own route: grid cells' probabilities p dx, q dx into C(G) and JS
    assert virtual_training_criterion(p * dx, q * dx) == pytest.approx(value, abs=1e-12)
    assert js_divergence(p * dx, q * dx) == pytest.approx(js, abs=1e-12)


def probability_vectors(n: int, smallest: float) -> st.SearchStrategy:
    """Discrete distributions over n outcomes: zeros, and weights from ``smallest`` up to 1."""
    weights = arrays(np.float64, n, elements=st.floats(smallest, 1.0) | st.just(0.0))
    return weights.filter(lambda w: w.sum() > 1e-3).map(lambda w: w / w.sum())


def distribution_pairs(smallest: float = 1e-300) -> st.SearchStrategy:
    """Pairs of distributions over the same outcomes. The default ``smallest`` keeps every weight a
    normal float, so that JS's mixture m = (p + q) / 2 cannot underflow to 0 where p + q > 0."""
    return st.integers(1, 12).flatmap(
        lambda n: st.tuples(probability_vectors(n, smallest), probability_vectors(n, smallest))
    )


pairs_of_distributions = distribution_pairs()


@settings(max_examples=100, deadline=None)
@given(pairs_of_distributions)
def test_criterion_is_minus_log_4_plus_twice_js_for_any_distributions(pair):
    p, q = pair
    criterion = virtual_training_criterion(p, q)
    assert criterion == pytest.approx(-LOG_4 + 2.0 * js_divergence(p, q), abs=1e-12)
    assert -LOG_4 - 1e-12 <= criterion <= 1e-12
    assert virtual_training_criterion(p, p) == pytest.approx(-LOG_4, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(distribution_pairs(smallest=1e-6), st.integers(0, 2**32 - 1))
def test_optimal_discriminator_maximises_v_on_a_grid(pair, seed):
    """V(D) = sum p log D + q log(1 - D): D* beats every D on a grid of outputs, at every point.

    (Weights of at least 1e-6 keep D* away from rounding to exactly 0 or 1, where the log of D*
    itself, unlike the criterion's log-ratios, would be infinite.)
    """
    p, q = pair
    d_star = optimal_discriminator(p, q)
    y = np.linspace(1e-3, 1 - 1e-3, 999)[:, np.newaxis]  # candidate outputs x points
    with np.errstate(divide="ignore", invalid="ignore"):
        at_star = np.where(p > 0, p * np.log(d_star), 0.0) + np.where(
            q > 0, q * np.log1p(-d_star), 0.0
        )
    assert np.all(p * np.log(y) + q * np.log1p(-y) <= at_star + 1e-12)
    # summed over the points: a random discriminator never beats C(G)
    other = np.random.default_rng(seed).uniform(1e-6, 1 - 1e-6, size=p.shape)
    assert np.sum(p * np.log(other) + q * np.log1p(-other)) <= virtual_training_criterion(p, q)


@settings(max_examples=100, deadline=None)
@given(pairs_of_distributions)
def test_js_is_symmetric_bounded_and_zero_only_for_equal_distributions(pair):
    p, q = pair
    js = js_divergence(p, q)
    assert -1e-12 <= js <= LOG_2 + 1e-12
    assert js_divergence(q, p) == pytest.approx(js, abs=1e-12)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    if np.abs(p - q).max() > 1e-3:
        assert js > 0.0


@settings(max_examples=100, deadline=None)
@given(pairs_of_distributions)
def test_kl_is_non_negative_and_zero_for_equal_distributions(pair):
    p, q = pair
    assert kl_divergence(p, q) >= -1e-12  # may be infinite where q = 0 < p
    # With eps added to both sides the sum can dip below 0: log x >= 1 - 1/x bounds it below by
    # -eps * sum_{p>0} max(q - p, 0) / (p + eps); the float64 sum adds up to n * eps64 * sum|terms|.
    eps, ulp = HISTOGRAM_EPS, np.finfo(np.float64).eps
    terms = np.where(p > 0, p * (np.log(p + eps) - np.log(q + eps)), 0.0)
    below = eps * np.sum(np.where(p > 0, np.maximum(q - p, 0.0) / (p + eps), 0.0))
    assert kl_divergence(p, q, eps) >= -(below + len(p) * ulp * np.abs(terms).sum())
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_kde_recovers_a_normal_density(rng):
    samples = rng.normal(size=20_000)
    x = np.linspace(-3.0, 3.0, 61)
    np.testing.assert_allclose(gaussian_kde(samples, x), normal_pdf(x), atol=0.02)
    wide = np.linspace(-8.0, 8.0, 3201)
    assert np.sum(gaussian_kde(samples, wide)) * (wide[1] - wide[0]) == pytest.approx(1.0, abs=1e-3)
    assert gaussian_kde(samples, x.reshape(61, 1)).shape == (61, 1)


def test_kde_bandwidth(rng):
    n = 5000
    small, large = rng.normal(0.0, 1.0, size=n), rng.normal(0.0, 3.0, size=n)
    assert silverman_bandwidth(large) == pytest.approx(3.0 * silverman_bandwidth(small), rel=0.1)
    assert silverman_bandwidth(small) == pytest.approx(0.9 * n**-0.2, rel=0.1)
    with pytest.raises(ValueError, match="bandwidth"):
        gaussian_kde(np.full(10, 2.0), np.zeros(3))
    one_kernel = gaussian_kde(np.array([2.0, 2.0]), np.array([2.0]), bandwidth=0.5)
    assert one_kernel[0] == pytest.approx(normal_pdf(0.0, std=0.5))
