"""Counts given their coordinates: negative-binomial draws conditioned on projecting back onto the cell's PCs.

A real cell's PCA coordinates ``z`` are a projection of its own counts, sampling noise included. Decoding ``z``
by an unconstrained draw around the decoder's mean adds that noise a second time along the very axes the cell
was placed on, and the decoded cells blur: on held-out zeisel cells (seed 0) decode(encode(real cells)) matched
the real cells' per-PC means and variances (within 0.1 sd and 5 %), yet sat at per-type MMD 0.0218 against the
real training cells' 0.0136 — the mixture of states within a type was smeared by the second dose of noise.

The counts we want are ``p(x | z) ∝ NB(x; μ(z), θ) · [project(x) = z]``: the decoder's likelihood restricted to
the count vectors that land on ``z``. :func:`sample_given_projection` samples a relaxed version of it,
``NB(x; μ, θ) · exp(−‖project(x) − z‖² / 2τ²)``, by Metropolis-within-Gibbs: each gene's count is proposed
afresh from its own negative binomial (so the likelihood cancels from the acceptance ratio) and kept with
probability ``min(1, exp(−Δ‖r‖² / 2τ²))``, ``r`` the cell's residual in model space. Genes are visited in random
blocks; a block's proposals are judged against the same residual (each moves ``z`` by ~0.03 of a PC's sd, so
their interaction is second order). The projection is linear in log-normalized expression, ``l @ W − b``, so
each proposal costs one dot product with its gene's loadings.

Measured on held-out zeisel cells (seed 0), decode(encode(real training cells)), per-type MMD / kNN AUC: best of
8 unconstrained draws (the previous rule) 0.0218 / 0.580; τ = 0.3: 0.0231 / 0.583; τ = 0.1: 0.0169 / 0.552;
τ = 0.03 with 3 sweeps 0.0141 / 0.553, with 6 sweeps 0.0135 / 0.554 (τ = 0.01: the same); the real training
cells 0.0136. Gene level improved with it (expressing-fraction MAE 0.056 → 0.050).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TAU = 0.03  # tolerance of the projection, in units of the average PC's sd (the model space's common scale)
SWEEPS = 4  # passes over the genes after the first draw: 3 → 0.0141, 6 → 0.0135 on zeisel (above)
GENE_BLOCK = 128  # genes proposed together (against one residual)


def negative_binomial(mu: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma–Poisson draws with means ``mu`` and inverse dispersions ``theta`` (float64)."""
    return rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float64)


def sample_given_projection(
    mu: np.ndarray,
    theta: np.ndarray,
    z: np.ndarray,
    loadings: np.ndarray,
    offset: np.ndarray,
    factors: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    *,
    tau: float = TAU,
    sweeps: int = SWEEPS,
    block: int = GENE_BLOCK,
) -> np.ndarray:
    """Counts (cells × genes, float32) near ``NB(mu, theta)`` whose projection lies within ~``tau`` of ``z``.

    ``loadings`` (genes × d) and ``offset`` (d) define the projection of log-normalized cells, ``l @ loadings −
    offset``; ``factors(counts)`` gives each cell's normalization multiplier ``s`` (``l = log1p(counts · s)``),
    recomputed after each sweep (a library's total moves little within one). ``sweeps=0``: the plain draw.
    """
    x = negative_binomial(mu, theta, rng)
    w2 = (loadings**2).sum(1)
    moved = np.flatnonzero(w2 > 0)  # genes outside the model space (zero loadings) keep their first draw
    for _ in range(sweeps):
        s = np.asarray(factors(x), np.float64)[:, None]
        lx = np.log1p(x * s)
        r = z - (lx @ loadings - offset)
        order = rng.permutation(moved)
        for lo in range(0, len(order), block):
            g = order[lo : lo + block]
            prop = negative_binomial(mu[:, g], theta[:, g], rng)
            dl = np.log1p(prop * s) - lx[:, g]
            # change of ‖r‖² if gene g alone moved: −2 dl (r · W_g) + dl² ‖W_g‖²
            delta = dl * (dl * w2[g] - 2.0 * (r @ loadings[g].T))
            keep = np.log(rng.random(dl.shape)) < -delta / (2.0 * tau**2)
            dl *= keep
            x[:, g] = np.where(keep, prop, x[:, g])
            lx[:, g] += dl
            r -= dl @ loadings[g]
    return x.astype(np.float32)
