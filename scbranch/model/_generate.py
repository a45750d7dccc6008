"""Generating synthetic cells as an AnnData (``BranchedDiffusion.generate`` and ``scbranch.tl.generate``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _anndata
from .. import _logging as logg
from ._device import resolve as resolve_device
from ._requests import plan

__all__ = ["counts_of", "generate", "layout", "lognorm_of"]


def generate(
    model,
    n_cells: int | Mapping[str, int] = 100,
    *,
    sampler: Literal["euler_maruyama", "ddim", "dpm_solver_2", "heun", "pc"] = "euler_maruyama",
    n_steps: int | None = None,
    spacing: Literal["uniform", "logsnr"] = "uniform",
    shared: bool = True,
    resample: bool | None = None,
    proportions: Mapping[str, float] | None = None,
    condition: Mapping[str, str] | None = None,
    transform_batch: str | None = None,
    obs_prefix: str | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    device: str = "auto",
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Generate synthetic cells per type by walking the model's branch tree from t=1 down.

    Parameters
    ----------
    model
        A trained model from :func:`fit`.
    n_cells
        Cells per type: an int for every type, or ``{type: n}``. Keys may also be internal nodes of the
        model's hierarchy (``{"lymphocyte": 500}``: Cell Ontology names with ``hierarchy="cl"``, node names of a
        given tree, ``n3``-style names of a data tree): that node's cells are split over the types below it in
        their training proportions (a multinomial draw) and generated in the same tree walk, so the node's
        upstream branch is shared.
    proportions
        ``{type: weight}`` for the types below the requested node(s) instead of the training proportions
        (types left out get none).
    condition
        With ``fit(condition_keys=[...])``: ``{key: value}`` to generate under (e.g. ``{"donor": "D2"}``); keys
        left out, or ``None``, are marginalized (the network's "not given" code).
    sampler, n_steps, spacing
        Reverse-diffusion sampler and its number of steps, on a time grid ``"uniform"`` in t or uniform in
        log-SNR. Step defaults give 50 network evaluations per trajectory (euler_maruyama 50, ddim 50,
        dpm_solver_2 25, heun 25, pc 25). In ``benchmarks/schedules.py`` Euler–Maruyama-50 (the default)
        matched 1,000-step Euler–Maruyama on MMD (pbmc68k 0.051 vs 0.051) and the deterministic samplers
        did not (0.068–0.073; kNN AUC 0.76–0.77 vs 0.68).
    shared
        Share upstream steps between types (the tree walk). ``False`` samples each type alone (same
        distribution, more network evaluations).
    resample
        At each branch point, each child draws the rows it continues from its parent's rows by the type
        classifier's posterior ratio p(child | x_t) / π(child) (systematic resampling), so it starts from its own
        marginal rather than the parent's mixture; the shared branches carry enough rows for it: a child that
        keeps a fraction f of its parent's rows as effective ones (measured at fit on noised training cells and
        kept in ``model.config["branch_ess"]``) makes its parent carry up to n·α²/f rows, α² the signal
        fraction at the split (copies of a row made at high noise end as nearly independent cells; at low
        noise as near twins). Default ``None``: on whenever the model has its type classifier (``fit``'s
        default). In ``benchmarks/sharing.py`` (default sharing 0.5, 3 seeds; network evaluations relative to
        flat / held-out per-type MMD / train-on-synthetic accuracy / rare types' MMD): 16 simulated types 0.37 /
        0.014 / 0.52 / 0.039 (off: 0.27 / 0.022 / 0.44 / 0.050; flat 1.00 / 0.013 / 0.50 / 0.036); pbmc68k 0.71 /
        0.054 / 0.77 / 0.065 (off: 0.45 / 0.067 / 0.78 / 0.078; flat 1.00 / 0.056 / 0.78 / 0.068). ``False``: the
        cheaper walk, rows handed to the children as they are; prefer it with ``hierarchy="cl"`` for now, where
        resampling scored worse on pbmc68k (MMD 0.062 vs 0.034, 2 seeds; flat 0.017).
    progress
        A bar over the reverse-diffusion steps, shown only when sampling takes longer than half a second
        (``None``: at scanpy's verbosity >= 1; nothing is printed at 0).
    device
        Where the score network and the type classifier run: ``"auto"`` (a CUDA GPU when torch finds one, else
        the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; a device torch does not find is an error.
        Random draws stay on the CPU, so a seed draws the same noise everywhere (outputs on a GPU may still
        differ in the last bits of its arithmetic). Decoding to genes runs on the CPU.
    obs_prefix
        Prefix of the new cells' ``obs_names`` (default ``"synthetic-{random_state}-"``, so that two calls
        with different seeds give distinct names).
    transform_batch
        ``representation="scvi"`` with a batch key only: decode every cell in this batch (default: each
        cell's batch drawn from its type's observed batches).

    Returns
    -------
    A new AnnData with the model's ``var_names``, its matrices laid out as the real cells' were (see
    :func:`~scbranch.model._generate.layout`): counts in, counts out; log-normalized in, log-normalized out.

    ``.X`` (sparse)
        Fitted on ``.X`` (or ``.raw``) holding counts: integer counts, with library sizes drawn from the type's
        real cells nearest each synthetic cell in model space. Holding log-normalized values: log-normalized
        expression, normalized as the input was (same target sum, or per-cell scales drawn as the library sizes).
    ``.layers["lognorm"]`` or ``.layers["counts"]``
        The other form: ``"lognorm"`` beside counts in ``.X``; ``"counts"`` (sparse integers) beside
        log-normalized ``.X`` whenever the model decodes counts (the input held raw counts or counts recoverable
        from its log-normalized values, or ``representation="scvi"``). Fitted on ``layers[layer]``: that layer
        holds the input's form and ``.X`` the other.
    ``.obs``
        ``[groupby]`` (categorical: each cell's type), ``[f"{key_added}_synthetic"] = True``, the coarse
        annotation columns of ``fit(hierarchy=[...columns])`` (each type's coarse labels),
        ``[f"{key_added}_node"]`` (only when a node was asked for: the node, or the type, each cell answers),
        ``[key]`` for each covariate given in ``condition``, ``[batch_key]`` (scVI with a batch key: the batch
        each cell was decoded in).
    ``.obsm[f"X_{key_added}"]``
        Model space.
    ``.uns[key_added]["generate"]``
        sampler, n_steps, nfe (network calls), n_evals (cell states evaluated: cells × steps), shared,
        random_state, groupby.

    Put them beside the real cells with :func:`~scbranch.tl.concat_real_synthetic`.
    """
    start = logg.info(f"generating cells with {sampler}")
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    resolve_device(device)  # a missing GPU is an error before any work
    if transform_batch is not None and not model.config.get("batch_key"):
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
        cats = model.config["conditions"]["categories"][model.config["conditions"]["keys"].index(key)]
        obs[key] = pd.Categorical([str(value)] * len(obs), categories=cats)
    levels_of(model, labels, obs)  # coarse annotation levels of a nested hierarchy, for the new cells too
    out = model.decode(z, labels, random_state=random_state, transform_batch=transform_batch)
    if out.batch is not None:
        obs[model.config["batch_key"]] = pd.Categorical(out.batch, categories=model.representation.batches)
    X, layers = layout(model, out)
    syn = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=model.var_names), layers=layers)
    syn.obsm[f"X_{key_added}"] = z
    syn.uns[key_added] = {"generate": {**stats, "groupby": model.groupby}}
    colors = model.config.get("type_colors") or {}
    if all(t in colors for t in order):  # the real data's colours, so sc.pl colours types as it does
        syn.uns[f"{model.groupby}_colors"] = [colors[t] for t in order]
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
    kind = model.config.get("input_kind", "lognorm")
    if kind not in forms:  # counts read, none decoded (not made by the representations here): keep what we have
        kind = "lognorm"
    other = next((k for k in forms if k != kind), None)
    layer = model.config.get("layer")
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
    for col, (cats, of_type) in (model.config.get("levels") or {}).items():
        if col not in obs.columns:
            obs[col] = pd.Categorical([of_type.get(str(t)) for t in labels], categories=cats)


def decoded_adata(model, z: np.ndarray, labels, obs: pd.DataFrame, *, random_state: int) -> ad.AnnData:
    """Model-space cells as an AnnData on the model's genes, decoded and laid out as :func:`generate` does (see
    :func:`layout`), with ``obs`` and the dataset's type colours."""
    out = model.decode(z, labels, random_state=random_state)
    X, layers = layout(model, out)
    res = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=model.var_names), layers=layers)
    colors, col = model.config.get("type_colors") or {}, obs.get(model.groupby)
    if col is not None and hasattr(col, "cat") and all(str(t) in colors for t in col.cat.categories):
        res.uns[f"{model.groupby}_colors"] = [colors[str(t)] for t in col.cat.categories]
    return res
