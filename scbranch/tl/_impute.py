"""``scbranch.tl.impute``: complete cells measured on part of the model's genes (a panel, or masked genes)."""

from __future__ import annotations

import anndata as ad

from .. import _anndata
from ..model import BranchedDiffusion


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
    return model.impute(adata_panel, groupby=groupby, n_samples=n_samples, n_steps=n_steps, guidance=guidance,
                        random_state=random_state, progress=progress, device=device, key_added=key_added)
