"""Completing cells measured on part of the model's genes: posterior sampling with the diffusion model as prior.

In the PCA model space the measured genes are a linear view of a cell: ``x_obs = μ_o + z A + ε`` with
``A = diag(scale) · components[:, measured]`` and gene noise ε ~ N(0, s²) (s² from the residuals of a ridge fit
of the cells themselves). The reverse process runs down the cell's type's branches with its score corrected by
the gradient of that likelihood, in the ΠGDM form (Song et al. 2023): with x̂0 = (z_t − σ ε̂)/α (Tweedie) and
p(x_obs | z_t) ≈ N(μ_o + x̂0 A, s² I + r² AᵀA), r² = σ²/α², the gradient is

    ∇ log p ≈ (1/α) · r⁻² · M⁻¹ A (x_obs − μ_o − x̂0 A)ᵀ,   M = s² r⁻² I + A Aᵀ   (d × d),

so each step costs one d × d solve whatever the number of genes. At high noise the correction vanishes (the
prior rules); at t → 0 it becomes the least-squares pull toward the measurements. The mean over a few posterior
draws is the imputed cell; the unmeasured genes are its PCA reconstruction.
"""

from __future__ import annotations

import numpy as np
import torch

from ..sampling import get_sampler, get_times, sample_tree


def measurement(model, measured: np.ndarray, x_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``A`` (d, g_o), the measured genes' means, and the noise variance s² from a ridge fit of ``x_obs``."""
    rep = model.representation
    A = (rep.scale_[:, None] * rep.components_[:, measured]).astype(np.float64)
    mu = rep.mean_[measured].astype(np.float64)
    d, g = A.shape
    z_ls = ridge(A, mu, x_obs, s2=None)
    resid = x_obs - mu - z_ls @ A
    s2 = float((resid**2).sum() / max(resid.size - len(x_obs) * min(d, g - 1), 1))
    return A, mu, max(s2, 1e-6)


def ridge(A: np.ndarray, mu: np.ndarray, x_obs: np.ndarray, *, s2: float | None) -> np.ndarray:
    """Posterior mean of z under a unit Gaussian prior (``s2``), or a lightly regularized least-squares fit."""
    lam = 1e-3 * np.trace(A @ A.T) / len(A) if s2 is None else s2
    return np.linalg.solve(A @ A.T + lam * np.eye(len(A)), A @ (x_obs - mu).T).T


def guided_eps(module, sde, A: torch.Tensor, mu: torch.Tensor, x_obs: torch.Tensor, s2: float, guidance: float):
    """The module's noise prediction with the measurement's likelihood gradient folded in (same signature)."""
    AAt = A @ A.T
    eye = torch.eye(len(A))

    def eps_fn(x, t, **extra):
        eps = module(x, t, **extra)
        a, s = sde.alpha_sigma(t.reshape(-1)[0])
        a, s = torch.as_tensor(a), torch.as_tensor(s)
        r2 = (s / a) ** 2  # scalar, or per component with component-wise schedules
        x0 = (x - s * eps) / a
        u = x_obs[: len(x)] - mu - x0 @ A  # rows are the cells, in order (one type per walk)
        inv_r2 = 1.0 / r2.clamp_min(1e-8)
        M = s2 * torch.diag(inv_r2 * torch.ones(len(A))) + AAt if r2.dim() else s2 * inv_r2 * eye + AAt
        g = torch.linalg.solve(M, (u @ A.T).T).T * inv_r2 / a
        return eps - guidance * s * g  # ε = −σ · score: a score correction g enters as −σ g

    return eps_fn


@torch.no_grad()
def impute_latent(model, x_obs: np.ndarray, view: tuple[np.ndarray, np.ndarray, float], types: np.ndarray, *,
                  n_samples: int = 8, n_steps: int = 100, guidance: float = 1.0, random_state: int = 0,
                  progress: bool = False) -> np.ndarray:
    """Posterior-mean model-space cells (n, d) given log-normalized values ``x_obs`` (n, g_o), their linear
    view ``(A, μ_o, s²)`` from :func:`measurement`, and each cell's type."""
    A_np, mu_np, s2 = view
    A, mu = torch.as_tensor(A_np, dtype=torch.float32), torch.as_tensor(mu_np, dtype=torch.float32)
    paths, bounds, heads = model.walk_layout()
    sde, sampler = model.module.sde, get_sampler("euler_maruyama")
    ts = get_times(n_steps, sde=sde)
    gen = torch.Generator().manual_seed(int(random_state))
    z = np.zeros((len(x_obs), model.representation.n_features), np.float32)
    for ty in dict.fromkeys(types):
        rows = np.flatnonzero(types == ty)
        obs = torch.as_tensor(np.repeat(x_obs[rows], n_samples, axis=0), dtype=torch.float32)
        eps_fn = guided_eps(model.module, sde, A, mu, obs, s2, guidance)
        cells, _ = sample_tree(eps_fn, sampler, {ty: paths[ty]}, bounds, {ty: len(obs)}, ts, sde=sde,
                               n_features=z.shape[1], heads=heads, generator=gen, progress=progress)
        z[rows] = cells[ty].numpy().reshape(len(rows), n_samples, -1).mean(1)
    return z
