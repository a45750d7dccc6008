"""Cells mapped through a shared noise level: to another type (:func:`transmute`) or another condition
(:func:`transfer`). Both forward-noise real cells to a diffusion time and run the reverse process down the target's
branches, so what the noise erased is regenerated for the target while the rest of each cell is kept.

:meth:`BranchedDiffusion.transmute` and :meth:`~scbranch.BranchedDiffusion.transfer` call these; the options and
keys are documented on :func:`scbranch.tl.transmute` and :func:`scbranch.tl.transfer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .. import _anndata
from .. import _logging as logg
from ..sampling import get_sampler, get_times, sample_tree
from ._conditions import condition_codes, conditioned
from ._generate import decoded_adata


def transmute_path(model, z: np.ndarray, source: str, target: str, *, time: float | None, sampler, n_steps: int,
                   generator: torch.Generator, condition=None) -> tuple[np.ndarray, float]:
    """Forward-noise ``z`` to the source/target branch time (or ``time``) and reverse down target's branches
    (under covariates ``condition``, for :func:`transfer`)."""
    if time is None:
        time = float(model.hierarchy.node(model.hierarchy.lca(source, target)).time)
    x0 = torch.as_tensor(z, dtype=torch.float32)
    t = torch.full((len(x0),), time)
    xt, _, _ = model.module.sde.marginal(x0, t, torch.randn(x0.shape, generator=generator))
    paths, bounds, heads = model.walk_layout()
    ts = get_times(n_steps)
    ts = torch.cat([torch.tensor([time]), ts[ts < time]])
    # only the part of the tree below `time` is walked
    bounds = {b: (lo, min(hi, time)) for b, (lo, hi) in bounds.items() if lo < time}
    path = [b for b in paths[target] if b in bounds]
    eps_model = conditioned(model.module, condition_codes(model, condition))
    out, _ = sample_tree(eps_model, sampler, {target: path}, bounds, {target: len(x0)}, ts,
                         sde=model.module.sde, n_features=x0.shape[1], heads=heads, generator=generator,
                         progress=False, x_init=xt)
    return out[target].numpy(), time


def _check_time(time: float | None) -> None:
    if time is not None and not 0 < time <= 1:
        msg = f"time must be in (0, 1], got {time}"
        raise ValueError(msg)


def transmute(model, adata: ad.AnnData, *, source: str, target: str, time: float | None, sampler: str,
              n_steps: int, random_state: int, key_added: str) -> ad.AnnData:
    """The ``source`` cells of ``adata`` turned into ``target`` (see :func:`scbranch.tl.transmute`)."""
    groupby = model.groupby
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    n_steps = _anndata.check_count(n_steps, what="n_steps")
    if groupby not in adata.obs:
        msg = f"adata.obs has no {groupby!r} column (the model's groupby)"
        raise KeyError(msg)
    for role, ty in (("source", source), ("target", target)):
        if ty not in model.types:
            msg = f"unknown {role} type {ty!r}; the model knows {model.types}"
            raise KeyError(msg)
    if source == target:
        msg = "source and target are the same type"
        raise ValueError(msg)
    _check_time(time)
    sample_fn = get_sampler(sampler)
    mask = (adata.obs[groupby].astype(str) == source).to_numpy()
    if not mask.any():
        msg = f"no cells of {source!r} in adata.obs[{groupby!r}]"
        raise ValueError(msg)
    start = logg.info(f"transmuting {mask.sum()} {source!r} cells into {target!r}")
    z = model.get_latent(adata[mask])
    gen = torch.Generator().manual_seed(int(random_state))
    z_out, t_used = transmute_path(model, z, source, target, time=time, sampler=sample_fn,
                                   n_steps=n_steps, generator=gen)
    obs = adata.obs[mask].copy()
    obs.index = obs.index.astype(str) + "-transmuted"
    obs[groupby] = pd.Categorical([target] * len(obs), categories=model.type_order)
    obs["transmuted_from"] = source
    res = decoded_adata(model, z_out, [target] * len(z_out), obs, random_state=random_state)
    res.obsm[f"X_{key_added}"], res.obsm[f"X_{key_added}_source"] = z_out.astype(np.float32), z.astype(np.float32)
    res.uns[key_added] = {"transmute": {"source": source, "target": target, "time": t_used, "sampler": sampler,
                                        "n_steps": n_steps, "random_state": random_state}}
    logg.info("    finished", time=start, deep=f"noised to t={t_used:.3f}")
    return res


def transfer(model, adata: ad.AnnData, *, condition: Mapping[str, str], time: float, sampler: str, n_steps: int,
             random_state: int, key_added: str) -> ad.AnnData:
    """Each cell of ``adata`` as it would look under ``condition`` (see :func:`scbranch.tl.transfer`)."""
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    n_steps = _anndata.check_count(n_steps, what="n_steps")
    if not condition:
        msg = "condition= must name at least one covariate, e.g. {'donor': 'D2'}"
        raise ValueError(msg)
    condition_codes(model, condition)  # unknown keys or values: a clear error before any work
    if time is None:
        msg = "time must be in (0, 1], got None"
        raise ValueError(msg)
    _check_time(time)
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
    for key, value in condition.items():
        if key in obs:
            obs[f"{key}_original"] = obs[key].astype(str).to_numpy()
        obs[key] = pd.Categorical([str(value)] * len(obs), categories=model.state.condition_categories(key))
    res = decoded_adata(model, z_out, labels, obs, random_state=random_state)
    res.obsm[f"X_{key_added}"] = z_out
    res.uns[key_added] = {"transfer": {"condition": json.dumps({str(k): str(v) for k, v in condition.items()},
                                                               ensure_ascii=False),
                                       "time": float(time), "sampler": sampler, "n_steps": n_steps,
                                       "random_state": random_state}}
    logg.info("    finished", time=start)
    return res
