"""``scbranch.tl.fit``: set up and train a branched diffusion model on an AnnData, record its diagnostics."""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from collections.abc import Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .. import __version__ as scbranch_version
from .. import _anndata
from .. import _logging as logg
from ..hierarchy import Hierarchy
from ..model import BranchedDiffusion, ModelConfig, SetupConfig, TrainConfig, route, split_options, to_params

__all__ = ["fit"]


def _legacy(kwargs: dict, model_kwargs, train_kwargs) -> tuple[dict, dict]:
    """Keywords fit took before 0.3 (``width=``, ``lr=``, …): routed to model_kwargs / train_kwargs, with a
    FutureWarning; anything else is the usual TypeError."""
    model, train, rest = route(kwargs, own=FIT_ARGUMENTS)
    if rest:
        msg = f"fit() got unexpected keyword arguments {sorted(rest)}"
        raise TypeError(msg)
    for key in kwargs:
        where, given = ("model_kwargs", model_kwargs) if key in model else ("train_kwargs", train_kwargs)
        if key in (given or {}):  # which one was meant? neither silently wins
            msg = f"fit() got {key}= and {where}[{key!r}]; pass it once, in {where}"
            raise TypeError(msg)
        warnings.warn(f"fit({key}=...) is deprecated: pass {where}={{{key!r}: ...}}", FutureWarning, stacklevel=3)
    return {**dict(model_kwargs or {}), **model}, {**dict(train_kwargs or {}), **train}


def fit(
    adata: ad.AnnData,
    *,
    groupby: str | None = None,
    hierarchy: str | Mapping | pd.DataFrame | Hierarchy | None = None,
    # the options fit takes itself are config fields: their defaults are the configs', defined there once
    representation: Literal["pca", "scvi"] = ModelConfig.representation,
    n_comps: int | None = ModelConfig.n_comps,
    layer: str | None = SetupConfig.layer,
    batch_key: str | None = SetupConfig.batch_key,
    condition_keys: list[str] | None = SetupConfig.condition_keys,
    sharing: float = ModelConfig.sharing,
    max_steps: int | None = TrainConfig.max_steps,
    random_state: int = 0,
    progress: bool | None = None,
    key_added: str = "scbranch",
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    trainer_kwargs: Mapping | None = None,
    **kwargs,
) -> BranchedDiffusion:
    """Train a hierarchically branched diffusion model on the cells of ``adata``.

    Parameters
    ----------
    adata
        Cells × genes. Expression is read from ``.X``, ``layers[layer]`` or ``.raw`` and may be raw counts
        (library-size normalized and log1p-transformed here) or log-normalized; which one is detected and logged.
    groupby
        Column of ``adata.obs`` with the cell type labels. ``None``: the first of the usual names found
        (:data:`scbranch._anndata.LABEL_COLUMNS`: ``cell_type``, ``celltype``, ``cell_types``, ``CellType``,
        ``labels``, ``bulk_labels``, …), named in a warning; a clustering column (``louvain``, ``leiden``) is never
        taken silently. With CELLxGENE's ``cell_type``, its
        ``cell_type_ontology_term_id`` becomes the default ``ontology_key``.
    hierarchy
        ``None``/``"data"``: topology and branch times from the data. A Newick string/file, nested dict,
        parent/child table or :class:`~scbranch.Hierarchy`: that topology (leaves must match the labels; extra
        leaves are pruned), with branch times calibrated from the data unless the tree carries them. ``"cl"``:
        the Cell Ontology's tree over the labels (offline); the path of another ontology (``.obo``, ``.owl``,
        ``.json``, read with ``pronto``): its tree, labels mapped as for CL (term ids, names, synonyms, an
        ``ontology_key`` column or ``ontology_mapping``). A list of ``adata.obs`` columns: nested annotation
        levels, coarse to fine (``["compartment", "cell_type_coarse"]``; ``groupby`` is the finest level and is
        appended if missing); a fine label under two coarse ones is an error naming it.
    representation, n_comps
        Model space. ``"scvi"``: scVI's latent means (see ``batch_key``); synthetic cells are decoded to counts
        by scVI's likelihood. ``"pca"``: ``n_comps`` PCs of log-normalized expression, each standardized. By default
        15 PCs below 2,000 cells and 30 above: on pbmc68k_reduced (700 cells) 30 PCs gave over-dispersed
        samples (99th-percentile norm 11.0 vs 7.7 for real cells); 15 PCs stayed close (6.8 vs 5.6).
        With many genes the PCs are those of the highly variable genes (``model_kwargs={"n_top_genes": ...}``:
        ``"auto"``, the default, keeps every gene up to 5,000 and else takes 3,000; an integer: that many;
        ``None``, ``0`` or ``"all"``: every gene), chosen as ``sc.pp.highly_variable_genes`` chooses them — flavour
        ``"seurat_v3"`` on raw counts, scanpy's default ``"seurat"`` on log-normalized input — from the training
        cells, without densifying them, in memory and backed alike. Synthetic cells still have every gene of the
        input: the count decoder's mean is one softmax over every gene, the highly variable genes through a full
        output layer of its hidden units and the others through a rank-64 map of the same units (each gene with its
        NB dispersion per type, as before). Written to ``.uns[key_added]["params"]["n_top_genes"]``; the model genes are
        ``model.representation.genes_`` (indices into ``var_names``).
    layer
        Read expression from ``.layers[layer]`` (default ``.X``; ``model_kwargs={"use_raw": True}``: ``.raw``).
    batch_key
        With ``representation="scvi"`` (raw counts required): the ``adata.obs`` column of batches passed to
        scVI (``model_kwargs``: ``scvi_model``, an already trained ``scvi.model.SCVI`` to use instead of training
        one; ``scvi_epochs``). ``n_comps`` is scVI's ``n_latent`` (default 10).
    condition_keys
        Categorical ``adata.obs`` columns (donor, batch, condition) the score functions are conditioned on as
        well: an embedding per covariate added to the branch conditioning, left out of 15 % of training rows so
        that ``generate(condition={"donor": "D2"})`` may give some covariates and marginalize the others;
        :func:`~scbranch.tl.transfer` maps cells to another condition.
    sharing
        How much of the reverse trajectory types share, in [0, 1]: branch points are placed where a two-sample test on
        ``200 ** (1 - sharing)`` cells per type stops telling the noised types apart (0: 200 cells, the earliest split
        in the reverse process; 1: single cells, the latest split and most shared steps). The topology always comes from
        the 200-cell test; no branch point lies below t = 0.05, so every type keeps the last steps of the reverse
        process to itself. Default 0.5, measured in ``benchmarks/sharing.py`` (3 seeds; cell states the network
        evaluated for all types relative to flat / held-out per-type MMD / train-on-synthetic accuracy, with
        ``generate``'s default ``resample``): 16 simulated types: flat 1.00 / 0.013 / 0.50; sharing 0.5: 0.37 / 0.014 /
        0.52; 0.7: 0.32 / 0.015 / 0.52; 1: 0.54 / 0.021 / 0.50. pbmc68k: flat 1.00 / 0.056 / 0.78; 0.5: 0.71 / 0.054 /
        0.77; 0.7: 0.74 / 0.090 / 0.80; 1: 0.87 / 0.051 / 0.79. With resampling, quality stays near flat's over the
        whole range and the cost is lowest around 0.5–0.7 (later splits need more rows to hand each type distinct ones);
        0.5 is the cheaper of the two on pbmc68k. Without resampling (``generate(resample=False)``) late splits are
        cheaper but lose quality: 0.5 gives 0.27 / 0.022 / 0.44 and 1 gives 0.13 / 0.161 / 0.30 on 16 types.
    max_steps
        The most training steps; by default chosen by data size (:func:`default_steps`). Training stops early
        when the validation loss stops improving.
    model_kwargs
        Further fields of :class:`~scbranch.model.SetupConfig` (``use_raw``, ``input_kind``, ``min_cells``,
        ``drop_small``: types with fewer cells are an error or dropped; ``ontology_key``, ``ontology_mapping`` for
        ``hierarchy="cl"``) and :class:`~scbranch.model.ModelConfig` (``n_top_genes``, see ``representation``;
        ``width``, ``n_blocks``, ``dropout``, ``beta_min``, ``beta_max``; ``softness`` for component-wise noise
        schedules, coarse to fine — off by default, as in ``benchmarks/schedules.py`` it did not beat standard
        diffusion: pbmc68k MMD 0.062 / kNN AUC 0.642 at softness 4 vs 0.064 / 0.606; ``type_classifier``, the
        noise-conditioned classifier behind :func:`~scbranch.tl.score_types` and ``generate``'s resampling at branch
        points; ``branched=False``, the flat label-conditional baseline in the same code).
    train_kwargs
        Fields of :class:`~scbranch.model.TrainConfig`: ``batch_size``, ``lr``, the stopping rule (``stop_tol``,
        ``stop_window``, ``min_steps``; ``stop_tol=0`` trains all ``max_steps``), ``max_epochs``,
        ``ema_decay``, ``weight_decay``, ``balance``, ``val_fraction``, ``schedule``, and the device
        (``accelerator``, ``devices``, ``strategy``, ``checkpoint_dir`` for the last and best validation step).
    trainer_kwargs
        Passed to ``lightning.Trainer`` (e.g. ``train_kwargs={"accelerator": "gpu", "devices": 4, "strategy":
        "ddp"}, trainer_kwargs={"num_nodes": 2}``).
    **kwargs
        The options fit took before 0.3 (``width=``, ``lr=``, …) still work, with a ``FutureWarning``.
    random_state
        Seed for the split, the network's initialisation and the training noise.
    progress
        A progress bar over the training steps (and scVI's). ``None``: follow scanpy, a bar at
        ``sc.settings.verbosity >= 1`` (its default) and nothing at all printed at 0.
    key_added
        Prefix of the keys written.

    Returns
    -------
    The trained :class:`~scbranch.BranchedDiffusion`, and writes to ``adata``:

    ``.uns[key_added]["hierarchy"]``
        Newick string, branch times as branch lengths.
    ``.uns[key_added]["branches"]``
        Table: branch, node, t_start, t_end, cell_types (a JSON list), head (the network head it uses).
    ``.uns[key_added]["branch_points"]``
        Table per internal node: time, raw_time, monotone_adjusted, conflict (text where the tree's topology
        disagrees with the data), children, last_pair, n_types; plus
        ``["separation"]`` with the statistic/threshold curves over diffusion time (both only when branch
        times are calibrated here, i.e. the given tree carries none).
    ``.uns[key_added]["params"]``, ``.uns[key_added]["training"]``
        Fit options and versions; loss per check (train, validation, per branch).
    ``.obsm[f"X_{key_added}"]``
        Every cell in the model's space.
    """
    _anndata.check_key(key_added)
    model_kwargs, train_kwargs = _legacy(kwargs, model_kwargs, train_kwargs)
    # every option checked before any work: a typo in train_kwargs must not cost a representation fit
    clash = sorted(set(FIT_ARGUMENTS) & set(model_kwargs))
    if clash:
        msg = f"{clash} are arguments of fit itself; do not pass them in model_kwargs"
        raise TypeError(msg)
    split_options(model_kwargs, SetupConfig, ModelConfig, where="model_kwargs")
    (train_options,) = split_options({**dict(train_kwargs), "max_steps": max_steps}, TrainConfig, where="train_kwargs")
    start = logg.info(f"fitting branched diffusion on {adata.n_obs} cells")
    model = BranchedDiffusion(adata, groupby=groupby, hierarchy=hierarchy, random_state=random_state,
                              progress=progress, representation=representation, n_comps=n_comps, layer=layer,
                              batch_key=batch_key, condition_keys=condition_keys, sharing=sharing, **model_kwargs)
    hist = model.train(progress=progress, trainer_kwargs=trainer_kwargs, **vars(train_options))

    # ---- write (only now, all validation has passed) ----
    p, s = model.prepared, model.state
    uns = {
        "hierarchy": model.hierarchy.to_newick(),
        "hierarchy_table": model.hierarchy.to_table(),  # the exact names, whatever they hold (Newick quoting cannot)
        "branches": model.branches_table(),
        "params": _anndata.to_h5ad_safe({  # heads: in the branches table; type order/colours: .obs, .uns
            **to_params(model.setup_options), **to_params(model.model_options), **to_params(model.train_options),
            "groupby": s.groupby, "input_kind": s.input_kind, "n_comps": s.n_comps, "random_state": s.random_state,
            "hierarchy_source": p.source,
            # scbranch's own from the code that ran (an editable install's metadata can lag behind it)
            "versions": {"scbranch": scbranch_version,
                         **{p: importlib.metadata.version(p) for p in ("torch", "anndata", "scvi-tools")}},
        }),
        "training": {k: v if isinstance(v, str) else np.asarray(v) for k, v in hist.items()},
    }
    if p.branch_points is not None:
        uns["branch_points"] = p.branch_points
        uns["separation"] = {"time": p.curves["time"], "statistic": p.curves["statistic"],
                             "threshold": p.curves["threshold"], "node": np.asarray(p.curves["node"], dtype=str),
                             "pair": np.asarray(p.curves["pair"], dtype=str)}
    adata.uns[key_added] = uns
    adata.obsm[f"X_{key_added}"] = p.z_all
    p.z_all = None  # written; the model keeps only the training cells (for model.train again)
    logg.info("    finished", time=start,
              deep=f"added .uns[{key_added!r}] (hierarchy, branches, branch_points, params, training), "
                   f".obsm['X_{key_added}']")
    return model


# fit's own arguments that are config fields too (derived, never a hand-kept list): passed to fit itself, not in
# model_kwargs; route() leaves them to fit
FIT_ARGUMENTS = tuple(p for p in inspect.signature(fit).parameters
                      if p in {f for c in (SetupConfig, ModelConfig, TrainConfig) for f in c.__dataclass_fields__})
