"""``scbranch.tl.transfer``: cells mapped to another condition (donor, batch, …) through a shared noise level."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad

from .. import _anndata
from ..model import BranchedDiffusion


def transfer(
    adata: ad.AnnData,
    model: BranchedDiffusion,
    *,
    condition: Mapping[str, str],
    time: float = 0.5,
    sampler: str = "ddim",
    n_steps: int = 200,
    random_state: int = 0,
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Counterfactual cells: each cell of ``adata`` as it would look under ``condition`` (e.g. another donor).

    Like :func:`transmute`, across a covariate instead of a type: each cell is forward-noised to ``time`` and
    the reverse process runs down its own type's branches under the target covariates, so what the noise at
    ``time`` erased (the covariate's effect, if ``time`` is late enough) is regenerated for the new condition
    while the type and the coarse state are kept.

    Parameters
    ----------
    adata
        Cells with the model's genes and its ``groupby`` column (types known to the model). Not modified.
    model
        A model fitted with ``condition_keys``.
    condition
        ``{key: value}`` to map to; keys left out are marginalized.
    time
        Diffusion time the cells are noised to, in (0, 1]: later erases more of each cell (a stronger change,
        less of the cell kept).
    sampler, n_steps
        The reverse process below ``time``.
    random_state, key_added
        Seed; key of what is written.

    Returns
    -------
    A new AnnData, one cell per cell of ``adata`` (``obs_names`` with ``-transferred``): ``.X`` decoded as
    :func:`generate` does (``.layers["counts"]`` when the model decodes counts); ``.obs``: ``adata``'s
    annotations with each covariate of ``condition`` set to its target and the original in
    ``[f"{key}_original"]``; ``.obsm[f"X_{key_added}"]`` (model space); ``.uns[key_added]["transfer"]``
    (condition as JSON, time, sampler, n_steps, random_state).
    """
    adata, model = _anndata.adata_first(adata, model, "transfer")
    return model.transfer(adata, condition=condition, time=time, sampler=sampler, n_steps=n_steps,
                          random_state=random_state, key_added=key_added)
