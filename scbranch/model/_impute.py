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

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .. import _anndata
from .. import _logging as logg
from ..sampling import get_sampler, get_times, sample_tree


def measurement(view: tuple[np.ndarray, np.ndarray], measured: np.ndarray,
                x_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``A`` (d, g_o), the measured genes' means, and the noise variance s² from a ridge fit of ``x_obs``, from the
    representation's linear view (see ``Representation.linear_view``)."""
    A = np.asarray(view[0][:, measured], dtype=np.float64)
    mu = np.asarray(view[1][measured], dtype=np.float64)
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


def _infer_types(model, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most likely type and its probability, by the noise-conditioned classifier at t ≈ 0."""
    if model.classifier is None:
        msg = "impute needs groupby= (the cells' types) or a model with its type classifier to infer them"
        raise ValueError(msg)
    p = model.classifier.probabilities(z).numpy()
    return np.asarray(model.classifier.types)[p.argmax(1)], p.max(1)


def impute(model, adata_panel: ad.AnnData, *, groupby: str | None, n_samples: int, n_steps: int, guidance: float,
           random_state: int, progress: bool | None, key_added: str) -> ad.AnnData:
    """Cells measured on part of the model's genes, completed (see :func:`scbranch.tl.impute`)."""
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    n_samples = _anndata.check_count(n_samples, what="n_samples")
    n_steps = _anndata.check_count(n_steps, what="n_steps")
    view = model.representation.linear_view()
    if view is None:  # the measurements are a linear view of a cell only in a linear model space
        msg = f"impute needs a model with representation='pca' (this one: {model.representation.kind!r})"
        raise ValueError(msg)
    X, names = _anndata.get_matrix(adata_panel, layer=model.state.layer, use_raw=model.state.use_raw)
    measured = model.var_names.get_indexer(names)
    keep = measured >= 0
    if keep.sum() < 2:
        msg = (f"adata_panel shares {int(keep.sum())} genes with the model (needs at least 2), e.g. the model's "
               f"{list(model.var_names[:5])}, the panel's {list(names[:5])}")
        raise ValueError(msg)
    X = X[:, np.flatnonzero(keep)]
    measured = measured[keep]
    if _anndata.check_expression(X, where="the panel") == "counts":  # normalized over the panel ≠ the model's scale
        msg = ("the panel holds counts; impute needs log-normalized values normalized over the whole transcriptome as "
               "the training cells were (e.g. adata[:, panel_genes] of such data)")
        raise ValueError(msg)
    x_obs = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    label_key = groupby or model.groupby
    A, mu, s2 = measurement(view, measured, x_obs)
    if groupby is not None:
        types, prob = _anndata.check_obs_column(adata_panel, groupby, what="groupby"), None
        unknown = sorted(set(types) - set(model.types))
        if unknown:
            msg = (f"types in adata_panel.obs[{groupby!r}] that the model does not know: {unknown}; "
                   f"it knows {model.types}")
            raise ValueError(msg)
    else:
        types, prob = _infer_types(model, ridge(A, mu, x_obs, s2=s2).astype(np.float32))
    start = logg.info(f"imputing {len(model.var_names) - len(measured)} genes of {adata_panel.n_obs} cells from "
                      f"{len(measured)} measured")
    z = impute_latent(model, x_obs, (A, mu, s2), types, n_samples=n_samples, n_steps=n_steps, guidance=guidance,
                      random_state=random_state, progress=progress)
    full = np.clip(z @ view[0] + view[1], 0.0, None)  # unmeasured genes: the cells' reconstruction
    full[:, measured] = x_obs
    obs = adata_panel.obs.copy()
    obs[label_key] = pd.Categorical(types, categories=[t for t in model.type_order if t in set(types)])
    if prob is not None:
        obs[f"{key_added}_type_probability"] = prob
    var = pd.DataFrame({f"{key_added}_measured": np.isin(np.arange(len(model.var_names)), measured)},
                       index=model.var_names)
    out = ad.AnnData(full.astype(np.float32), obs=obs, var=var)
    out.obsm[f"X_{key_added}"] = z
    out.uns[key_added] = {"impute": {"n_measured": len(measured), "noise_var": s2, "n_samples": n_samples,
                                     "n_steps": n_steps, "guidance": float(guidance), "random_state": random_state,
                                     "types_inferred": groupby is None}}
    logg.info("    finished", time=start, deep=f"noise variance of the measured genes {s2:.3g}")
    return out
