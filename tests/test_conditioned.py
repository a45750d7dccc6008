"""Counts given their coordinates (representation/_conditioned.py): draws land on the coordinates they decode."""

import numpy as np

from scbranch.representation._conditioned import negative_binomial, sample_given_projection


def _problem(n=60, genes=1000, d=5, seed=0):
    """Cells of two states over ``genes`` genes, projected on ``d`` orthonormal directions scaled, as the model
    space is, to unit variance on average."""
    rng = np.random.default_rng(seed)
    state = rng.gamma(0.5, 4.0, size=(2, genes))
    mu = state[rng.integers(2, size=n)] * rng.uniform(0.5, 1.5, size=(n, 1))
    theta = np.full((n, genes), 5.0)
    def factors(x):
        return 1e4 / np.maximum(x.sum(1), 1)
    # target coordinates: the projection of another draw from the same means (a real cell's own coordinates)
    x0 = negative_binomial(mu, theta, rng)
    q = np.linalg.qr(rng.normal(size=(genes, d)))[0]
    scores = np.log1p(x0 * factors(x0)[:, None]) @ q
    loadings, offset = q / np.sqrt(scores.var(0).mean()), np.zeros(d)
    z = np.log1p(x0 * factors(x0)[:, None]) @ loadings - offset
    return mu, theta, z, loadings, offset, factors


def _miss(x, z, loadings, offset, factors):
    return np.sqrt((((np.log1p(x * factors(x)[:, None]) @ loadings - offset) - z) ** 2).sum(1)).mean()


def test_conditioned_counts_land_on_their_coordinates():
    mu, theta, z, loadings, offset, factors = _problem()
    plain = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(1), sweeps=0)
    given = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(1))
    assert given.dtype == np.float32 and given.shape == mu.shape
    assert np.all(given >= 0) and np.array_equal(given, np.round(given))
    far, near = _miss(plain, z, loadings, offset, factors), _miss(given, z, loadings, offset, factors)
    assert near < 0.35 * far, (near, far)
    # the genes still follow their negative binomials: per-gene means within 15 % of mu's (over cells)
    ratio = given.mean(0).sum() / mu.mean(0).sum()
    assert 0.85 < ratio < 1.15


def test_conditioned_counts_reproducible_and_plain_draw_at_zero_sweeps():
    mu, theta, z, loadings, offset, factors = _problem(n=20, genes=100)
    a = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(3))
    b = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    plain = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(3), sweeps=0)
    np.testing.assert_array_equal(plain, negative_binomial(mu, theta, np.random.default_rng(3)).astype(np.float32))


def test_tighter_tolerance_lands_nearer():
    mu, theta, z, loadings, offset, factors = _problem(n=40, seed=2)
    def miss(tau):
        x = sample_given_projection(mu, theta, z, loadings, offset, factors, np.random.default_rng(0), tau=tau)
        return _miss(x, z, loadings, offset, factors)
    loose, tight = miss(1.0), miss(0.03)
    assert tight < 0.5 * loose, (tight, loose)
