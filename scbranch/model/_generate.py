"""Generating synthetic cells as an AnnData (``BranchedDiffusion.generate`` and ``scbranch.tl.generate``)."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _anndata
from .. import _logging as logg
from ._device import resolve as resolve_device
from ._requests import plan

__all__ = ["counts_of", "generate", "layout", "lognorm_of"]


def generate(model, n_cells: int | Mapping[str, int], *, sampler: str, n_steps: int | None, spacing: str,
             shared: bool, resample: bool | None, proportions: Mapping[str, float] | None,
             condition: Mapping[str, str] | None, transform_batch: str | None, obs_prefix: str | None,
             random_state: int, progress: bool | None, key_added: str, device: str = "auto") -> ad.AnnData:
    """Synthetic cells per type by walking the model's branch tree from t=1 down (the options and keys written:
    :func:`scbranch.tl.generate`; their defaults: :meth:`~scbranch.BranchedDiffusion.generate`)."""
    start = logg.info(f"generating cells with {sampler}")
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    resolve_device(device)  # a missing GPU is an error before any work
    if transform_batch is not None and not model.state.batch_key:
        msg = "transform_batch= needs a model fitted with representation='scvi' and a batch_key"
        raise ValueError(msg)
    asked = plan(model, n_cells, proportions=proportions, random_state=random_state)
    cells, stats = model.sample(asked.per_type, sampler=sampler, n_steps=n_steps, spacing=spacing, shared=shared,
                                resample=resample, condition=condition, random_state=random_state, progress=progress,
                                device=device)
    parts, used = [], dict.fromkeys(cells, 0)  # lay the cells out request by request (a type's cells are iid)
    for _, leaf, n in asked.rows:
        parts.append(cells[leaf][used[leaf]:used[leaf] + n])
        used[leaf] += n
    z = np.concatenate(parts).astype(np.float32)
    labels = np.concatenate([[leaf] * n for _, leaf, n in asked.rows])
    order = [t for t in model.type_order if t in cells]
    obs = pd.DataFrame(
        {model.groupby: pd.Categorical(labels, categories=order), f"{key_added}_synthetic": True},
        index=[f"{f'synthetic-{random_state}-' if obs_prefix is None else obs_prefix}{i}" for i in range(len(z))],
    )
    if asked.has_nodes:  # which request each cell answers: the node asked for, or its own type
        requests = list(dict.fromkeys(a for a, _, _ in asked.rows))
        obs[f"{key_added}_node"] = pd.Categorical(np.concatenate([[a] * n for a, _, n in asked.rows]),
                                                  categories=requests)
    for key, value in (condition or {}).items():  # the covariates the cells were generated under
        if value is None:  # marginalized: no value to record
            continue
        obs[key] = pd.Categorical([str(value)] * len(obs), categories=model.state.condition_categories(key))
    levels_of(model, labels, obs)  # coarse annotation levels of a nested hierarchy, for the new cells too
    syn = decoded_adata(model, z, labels, obs, random_state=random_state, transform_batch=transform_batch)
    syn.obsm[f"X_{key_added}"] = z
    syn.uns[key_added] = {"generate": {**stats, "groupby": model.groupby}}
    logg.info("    finished", time=start,
              deep=f"{len(z)} cells of {len(cells)} types; {stats['nfe']} network calls, {stats['n_evals']} "
                   "cell-states evaluated")
    return syn


def layout(model, out) -> tuple[object, dict]:
    """Where decoded cells go: each form where the model read that form of the real cells — counts in, counts
    out; log-normalized in, log-normalized out — and the other form beside it.

    Read from ``.X`` (or ``.raw``): ``.X`` holds the input's form, ``layers["lognorm"]`` or ``layers["counts"]``
    the other (when the model makes counts). Read from ``layers[L]``: ``layers[L]`` holds the input's form and
    ``.X`` the other (log-normalized when the model makes no counts). So ``ad.concat`` with the real cells, or
    :func:`scbranch.tl.concat_real_synthetic`, never mixes counts with log-normalized values (on zeisel's counts a
    log-normalized synthetic ``.X`` made the synthetic cells separate islands in a joint UMAP)."""
    forms = {"lognorm": out.X}
    if out.counts is not None:
        forms["counts"] = sparse.csr_matrix(out.counts)
    kind = model.state.input_kind
    if kind not in forms:  # counts read, none decoded (not made by the representations here): keep what we have
        kind = "lognorm"
    other = next((k for k in forms if k != kind), None)
    layer = model.state.layer
    if layer is None:
        return forms[kind], ({other: forms[other]} if other else {})
    layers = {layer: forms[kind]}
    if other and other != layer:
        layers[other] = forms[other]
    return (forms[other] if other else forms[kind]), layers


def lognorm_of(syn: ad.AnnData):
    """The log-normalized expression of decoded cells, wherever :func:`layout` put it."""
    return syn.layers.get("lognorm", syn.X)


def counts_of(syn: ad.AnnData):
    """The counts of decoded cells, wherever :func:`layout` put them (``None``: the model makes no counts)."""
    if "counts" in syn.layers:
        return syn.layers["counts"]
    return syn.X if "lognorm" in syn.layers else None


def levels_of(model, labels, obs: pd.DataFrame) -> None:
    """Fill ``obs`` with the coarse annotation levels of ``fit(hierarchy=[coarse, ..., groupby])``: each type's
    label at every coarser level, as the real cells have them (so a joint table or UMAP has no NaN there)."""
    for col, (cats, of_type) in (model.state.levels or {}).items():
        if col not in obs.columns:
            obs[col] = pd.Categorical([of_type.get(str(t)) for t in labels], categories=cats)


def decoded_adata(model, z: np.ndarray, labels, obs: pd.DataFrame, *, random_state: int,
                  transform_batch: str | None = None) -> ad.AnnData:
    """Model-space cells as an AnnData on the model's genes: decoded, laid out (see :func:`layout`), with ``obs``,
    each cell's batch (scVI with a batch key) and the dataset's type colours, so ``sc.pl`` colours types as it
    colours the real cells. The end of :func:`generate`, :meth:`~scbranch.BranchedDiffusion.reconstruct`,
    ``transmute`` and ``transfer``."""
    out = model.decode(z, labels, random_state=random_state, transform_batch=transform_batch)
    if out.batch is not None and model.state.batch_key not in obs:  # real cells keep the batch they came from
        obs[model.state.batch_key] = pd.Categorical(out.batch, categories=model.representation.batches)
    X, layers = layout(model, out)
    res = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=model.var_names), layers=layers)
    colors, col = model.state.type_colors or {}, obs.get(model.groupby)
    if col is not None and hasattr(col, "cat") and all(str(t) in colors for t in col.cat.categories):
        res.uns[f"{model.groupby}_colors"] = [colors[str(t)] for t in col.cat.categories]
    return res
