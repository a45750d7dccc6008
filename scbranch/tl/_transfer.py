"""``scbranch.tl.transfer``: cells mapped to another condition (donor, batch, …) through a shared noise level."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .. import _anndata
from .. import _logging as logg
from ..model import BranchedDiffusion
from ..model._conditions import condition_codes
from ..model._continual import transmute_path
from ..model._generate import decoded_adata
from ..sampling import get_sampler


def transfer(
    adata: ad.AnnData,
    model: BranchedDiffusion,
    *,
    condition: Mapping[str, str],
    time: float = 0.5,
    sampler: Literal["ddim", "heun", "euler_maruyama"] = "ddim",
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
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    n_steps = _anndata.check_count(n_steps, what="n_steps")
    if not condition:
        msg = "condition= must name at least one covariate, e.g. {'donor': 'D2'}"
        raise ValueError(msg)
    condition_codes(model, condition)  # unknown keys or values: a clear error before any work
    if not 0 < time <= 1:
        msg = f"time must be in (0, 1], got {time}"
        raise ValueError(msg)
    labels = _anndata.check_obs_column(adata, model.groupby, what="the model's groupby")
    unknown = sorted(set(labels) - set(model.types))
    if unknown:
        msg = f"types in adata.obs[{model.groupby!r}] that the model does not know: {unknown}"
        raise ValueError(msg)
    sample_fn = get_sampler(sampler)
    start = logg.info(f"transferring {adata.n_obs} cells to {dict(condition)}")
    z = model.get_latent(adata)
    z_out = np.zeros_like(z, dtype=np.float32)
    gen = torch.Generator().manual_seed(int(random_state))
    for ty in dict.fromkeys(labels):
        rows = np.flatnonzero(labels == ty)
        z_out[rows], _ = transmute_path(model, z[rows], ty, ty, time=time, sampler=sample_fn, n_steps=n_steps,
                                        generator=gen, condition=condition)
    obs = adata.obs.copy()
    obs.index = obs.index.astype(str) + "-transferred"
    spec = model.config["conditions"]
    for key, value in condition.items():
        if key in obs:
            obs[f"{key}_original"] = obs[key].astype(str).to_numpy()
        cats = spec["categories"][spec["keys"].index(key)]
        obs[key] = pd.Categorical([str(value)] * len(obs), categories=cats)
    res = decoded_adata(model, z_out, labels, obs, random_state=random_state)
    res.obsm[f"X_{key_added}"] = z_out
    res.uns[key_added] = {"transfer": {"condition": json.dumps({str(k): str(v) for k, v in condition.items()},
                                                               ensure_ascii=False),
                                       "time": float(time), "sampler": sampler, "n_steps": n_steps,
                                       "random_state": random_state}}
    logg.info("    finished", time=start)
    return res
