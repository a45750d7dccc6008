"""``scbranch.tl.impute``: complete cells measured on part of the model's genes (a panel, or masked genes)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .. import _anndata
from .. import _logging as logg
from ..model import BranchedDiffusion
from ..model._device import on_device
from ..model._device import resolve as resolve_device
from ..model._impute import impute_latent, measurement, ridge
from ..model._types import type_probabilities


def _infer_types(model, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most likely type and its probability, by the noise-conditioned classifier at t ≈ 0."""
    if model.classifier is None:
        msg = "impute needs groupby= (the cells' types) or a model with its type classifier to infer them"
        raise ValueError(msg)
    p = type_probabilities(model, z).numpy()
    known = model.config["classifier"]["types"]
    return np.asarray(known)[p.argmax(1)], p.max(1)


def impute(
    adata_panel: ad.AnnData,
    model: BranchedDiffusion,
    *,
    groupby: str | None = None,
    n_samples: int = 8,
    n_steps: int = 100,
    guidance: float = 1.0,
    random_state: int = 0,
    progress: bool | None = None,
    device: str = "auto",
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Complete cells measured on a subset of the model's genes, by posterior sampling with the branched
    diffusion model as the prior (see :mod:`scbranch.model._impute`).

    Parameters
    ----------
    adata_panel
        Cells × measured genes (any subset of the model's genes, matched by name; others are ignored), holding
        log-normalized values on the model's scale, i.e. normalized over the whole transcriptome as the
        training cells were (``adata[:, panel]`` of such data). Not modified.
    model
        A model fitted with ``representation="pca"``.
    groupby
        ``adata_panel.obs`` column with each cell's type (of the model's types). ``None``: inferred by the
        model's type classifier from the measured genes, reported with its probability.
    n_samples, n_steps
        Posterior draws averaged per cell; reverse-diffusion steps (Euler–Maruyama).
    guidance
        Scale of the measurement's likelihood gradient (1: the posterior; 0: ignore the measurements).
    random_state, progress, key_added
        Seed; progress bar; key of what is written.
    device
        Where the networks run: ``"auto"`` (a CUDA GPU when torch finds one, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"mps"``; see :func:`~scbranch.tl.generate`.

    Returns
    -------
    A new AnnData with the model's genes: ``.X`` (dense) the measured values where measured and the imputed
    log-normalized expression elsewhere; ``.var[f"{key_added}_measured"]``; ``.obs``: the panel's annotations,
    ``[groupby or model.groupby]`` (the type used) and, if inferred, ``[f"{key_added}_type_probability"]``;
    ``.obsm[f"X_{key_added}"]`` (posterior-mean model-space cells); ``.uns[key_added]["impute"]`` (n_measured,
    noise_var, n_samples, n_steps, guidance, random_state, types_inferred).
    """
    adata_panel, model = _anndata.adata_first(adata_panel, model, "impute")
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    n_samples = _anndata.check_count(n_samples, what="n_samples")
    n_steps = _anndata.check_count(n_steps, what="n_steps")
    resolve_device(device)  # a missing GPU is an error before any work
    if not hasattr(model.representation, "components_"):
        msg = f"impute needs a model with representation='pca' (this one: {model.representation.kind!r})"
        raise ValueError(msg)
    X, names = _anndata.get_matrix(adata_panel, layer=model.config["layer"], use_raw=model.config["use_raw"])
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
    A, mu, s2 = measurement(model, measured, x_obs)
    if groupby is not None:
        types, prob = _anndata.check_obs_column(adata_panel, groupby, what="groupby"), None
        unknown = sorted(set(types) - set(model.types))
        if unknown:
            msg = (f"types in adata_panel.obs[{groupby!r}] that the model does not know: {unknown}; "
                   f"it knows {model.types}")
            raise ValueError(msg)
    else:
        with on_device(model, device):
            types, prob = _infer_types(model, ridge(A, mu, x_obs, s2=s2).astype(np.float32))
    start = logg.info(f"imputing {len(model.var_names) - len(measured)} genes of {adata_panel.n_obs} cells from "
                      f"{len(measured)} measured")
    with on_device(model, device):
        z = impute_latent(model, x_obs, (A, mu, s2), types, n_samples=n_samples, n_steps=n_steps,
                          guidance=guidance, random_state=random_state, progress=progress)
    full = model.representation.inverse_transform(z)
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
