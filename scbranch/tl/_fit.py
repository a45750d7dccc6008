"""Scanpy-style tools: ``fit`` a branched diffusion model on an AnnData, ``generate`` synthetic cells."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _anndata
from .. import _logging as logg
from ..hierarchy import Hierarchy, Node, SeparationTest, calibrate_times, data_topology, n_ref_for
from ..hierarchy._data import N_REF
from ..hierarchy import _ontology as ontology
from .._threads import torch_threads
from ..model import BranchedDiffusion
from ..model._types import fit_type_classifier
from ..module import make_sde
from ..representation import REPRESENTATIONS
from ._represent import represent

__all__ = ["fit", "generate"]


ONTOLOGY_CHOICES = ("cl", "ontology", "ontology+data")
DEFAULT_SHARING = 0.5  # see fit's docstring: the knee of the cost-quality curve (benchmarks/sharing.py)
TRAIN_OPTIONS = ("stop_tol", "stop_window", "min_steps", "check_every", "ema_decay", "weight_decay", "balance",
                 "val_fraction", "schedule")


def _read_hierarchy(hierarchy) -> Hierarchy | None:
    if hierarchy is None or (isinstance(hierarchy, str) and hierarchy == "data"):
        return None
    if isinstance(hierarchy, Hierarchy):
        return hierarchy
    if isinstance(hierarchy, Mapping):
        return Hierarchy.from_dict(hierarchy)
    if isinstance(hierarchy, pd.DataFrame):
        return Hierarchy.from_table(hierarchy)
    if isinstance(hierarchy, str):
        return Hierarchy.from_newick(hierarchy)
    msg = f"hierarchy must be None/'data', a Newick string or file, a nested dict, a table or a Hierarchy; got {type(hierarchy)}"
    raise TypeError(msg)


def default_steps(n_cells: int) -> int:
    """The most optimizer steps a default fit may take: 4 per cell, within [4,000, 20,000].

    A cap, not the budget: training stops earlier by the validation-loss rule
    (:class:`scbranch.model._training.StopRule`), which in ``benchmarks/fit_time.py`` stopped pbmc68k (700 cells)
    and 10k simulated cells well below this cap at held-out quality within seed noise of longer training.
    """
    return int(np.clip(4 * n_cells, 4000, 20000))


def fit(
    adata: ad.AnnData,
    *,
    groupby: str | None = None,
    hierarchy: None | str | Mapping | pd.DataFrame | Hierarchy = None,
    ontology_key: str | None = None,
    ontology_mapping: Mapping[str, str] | None = None,
    representation: Literal["pca"] = "pca",
    n_comps: int | None = None,
    layer: str | None = None,
    use_raw: bool = False,
    input_kind: Literal["auto", "counts", "lognorm"] = "auto",
    min_cells: int = 5,
    drop_small: bool = False,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    batch_size: int = 256,
    width: int = 128,
    n_blocks: int = 3,
    dropout: float = 0.0,
    lr: float = 2e-3,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    softness: float | None = None,
    sharing: float = DEFAULT_SHARING,
    type_classifier: bool = True,
    batch_key: str | None = None,
    scvi_model=None,
    scvi_epochs: int | None = None,
    branched: bool = True,
    accelerator: str = "auto",
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    checkpoint_dir: str | None = None,
    trainer_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    random_state: int = 0,
    progress: bool = True,
    key_added: str = "scbranch",
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
        ``labels``, ``bulk_labels``, …), logged; with CELLxGENE's ``cell_type``, its
        ``cell_type_ontology_term_id`` becomes the default ``ontology_key``.
    hierarchy
        ``None``/``"data"``: topology and branch times from the data. A Newick string/file, nested dict,
        parent/child table or :class:`~scbranch.Hierarchy`: that topology (leaves must match the labels; extra
        leaves are pruned), with branch times calibrated from the data unless the tree carries them.
    representation, n_comps
        Model space. ``"scvi"``: scVI's latent means (see ``batch_key``); synthetic cells are decoded to counts
        by scVI's likelihood. ``"pca"``: ``n_comps`` PCs of log-normalized expression, each standardized. By default
        15 PCs below 2,000 cells and 30 above: on pbmc68k_reduced (700 cells) 30 PCs gave over-dispersed
        samples (99th-percentile norm 11.0 vs 7.7 for real cells); 15 PCs stayed close (6.8 vs 5.6).
    batch_key, scvi_model, scvi_epochs
        With ``representation="scvi"`` (raw counts required): the ``adata.obs`` column of batches passed to
        scVI; an already trained ``scvi.model.SCVI`` to use instead of training one (set up on counts with at
        most a layer and a batch key; its genes are used); scVI's training epochs (``None``: scvi-tools'
        default, which scales with the number of cells). ``n_comps`` is scVI's ``n_latent`` (default 10).
    min_cells, drop_small
        Types with fewer cells are an error, or are dropped with a warning if ``drop_small``.
    max_epochs, max_steps
        Training budget; by default steps are chosen by data size (:func:`default_steps`). Training stops
        early when the validation loss stops improving.
    softness
        ``None`` (default): every component on one noise schedule. A positive number: component-wise
        schedules (GUD): components are generated coarse-to-fine in order of variance, each inside its own
        window of diffusion time of width softness / (1 + softness); small values approach autoregression
        over components. Branch times are calibrated under the same per-component SDE.
        Off by default: in ``benchmarks/schedules.py`` it did not beat standard diffusion (pbmc68k: MMD
        0.062 / kNN AUC 0.642 at softness 4 vs 0.064 / 0.606 standard; worse at 1 and 0.25; simulated tree:
        standard best, 0.050 vs 0.052–0.059).
    sharing
        How much of the reverse trajectory types share, in [0, 1]: branch points are placed where a two-sample
        test on ``200 ** (1 - sharing)`` cells per type stops telling the noised types apart (0: 200 cells, the
        earliest split in the reverse process; 1: single cells, the latest split and most shared steps). The
        topology always comes from the 200-cell test. Default 0.5, the knee of the curve measured in
        ``benchmarks/sharing.py`` (cell-evaluations for all types relative to flat / held-out per-type MMD /
        train-on-synthetic accuracy). pbmc68k, 3 seeds: flat 1.00 / 0.056 / 0.78; sharing 0: 0.64 / 0.069 /
        0.80; 0.5: 0.44 / 0.065 / 0.79; 1: 0.21 / 0.225 / 0.64 (0.107 / 0.77 with ``resample``). 16 simulated
        types, 2 seeds: flat 1.00 / 0.012 / 0.51; 0: 0.54 / 0.015 / 0.51; 0.5: 0.25 / 0.019 / 0.44; 1: 0.10 /
        0.158 / 0.26 (0.040 / 0.49 with ``resample``).
    type_classifier
        Also train a small noise-conditioned type classifier p(type | x_t, t) (a few seconds): it scores cells
        (:func:`~scbranch.tl.score_types`) and lets :func:`generate` resample rows at branch points.
    branched
        ``False`` fits the flat baseline in the same code: one branch per type over the whole time range
        (a label-conditional diffusion model), for comparisons.
    train_kwargs
        Further training options (:func:`scbranch.model._training.train_module`): ``stop_tol``, ``stop_window``,
        ``min_steps`` (the stopping rule; ``stop_tol=0`` trains all ``max_steps``), ``check_every``,
        ``ema_decay``, ``weight_decay``, ``balance``, ``val_fraction``, ``schedule``.
    accelerator, devices, strategy, checkpoint_dir, trainer_kwargs
        Passed to ``lightning.Trainer`` (e.g. ``accelerator="gpu", devices=4, strategy="ddp",
        trainer_kwargs={"num_nodes": 2}``); checkpoints of the last and best validation step go to
        ``checkpoint_dir`` if given.
    random_state
        Seed for the split, the network's initialisation and the training noise.
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
    if groupby is None:
        groupby = _anndata.default_groupby(adata)
        if ontology_key is None and f"{groupby}_ontology_term_id" in adata.obs.columns:
            ontology_key = f"{groupby}_ontology_term_id"  # CELLxGENE's schema: labels and their CL IDs
    start = logg.info(f"fitting branched diffusion on {adata.n_obs} cells, groupby={groupby!r}")
    # ---- validate everything before touching anything ----
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    if representation not in REPRESENTATIONS:
        msg = f"unknown representation {representation!r}; choose from {list(REPRESENTATIONS)}"
        raise ValueError(msg)
    if not branched and not (hierarchy is None or (isinstance(hierarchy, str) and hierarchy == "data")):
        msg = "branched=False fits the flat baseline, which has no hierarchy; drop hierarchy= or branched=False"
        raise ValueError(msg)
    _anndata.check_steps(max_steps)
    unknown = sorted(set(train_kwargs or {}) - set(TRAIN_OPTIONS))
    if unknown:
        msg = f"unknown train_kwargs {unknown}; choose from {list(TRAIN_OPTIONS)}"
        raise TypeError(msg)
    n_ref = n_ref_for(sharing)
    if softness is not None and not (np.isfinite(softness) and softness > 0):
        msg = f"softness must be a positive finite number or None (standard diffusion), got {softness!r}"
        raise ValueError(msg)
    labels, types = _anndata.check_labels(adata, groupby, min_cells=min_cells, drop_small=drop_small)
    from_ontology = isinstance(hierarchy, str) and hierarchy.lower() in ONTOLOGY_CHOICES
    if from_ontology:
        ids = _anndata.label_ids(adata, groupby, ontology_key) if ontology_key else None
        tree = ontology.ontology_hierarchy(ontology.map_labels(types, ids=ids, mapping=ontology_mapping))
    else:
        tree = _read_hierarchy(hierarchy)
    from_data = tree is None
    if tree is not None:
        unknown = sorted(set(types) - set(tree.leaves))
        if unknown:
            msg = (f"cell types in adata.obs[{groupby!r}] that are not leaves of the hierarchy: {unknown}; "
                   f"leaves: {tree.leaves}")
            raise ValueError(msg)
        tree = tree.prune(types)
        timed = [n.name for n in tree.internal_nodes if n.time is not None]
        if timed and not tree.has_times:  # recalibrating would silently drop the times that were given
            msg = (f"the hierarchy gives branch times for {timed} but not for every internal node; give all of them "
                   "or none (then they are calibrated from the data)")
            raise ValueError(msg)
    train_mask = labels.isin(types).to_numpy()
    r = represent(adata, labels, train_mask, representation=representation, layer=layer, use_raw=use_raw,
                  input_kind=input_kind, n_comps=n_comps, batch_key=batch_key, scvi_model=scvi_model,
                  scvi_epochs=scvi_epochs, random_state=random_state, progress=progress)
    rep, kind, var_names, z_all = r.rep, r.kind, r.var_names, r.z_all
    z, y = z_all[train_mask], labels.to_numpy()[train_mask]

    # ---- hierarchy: topology and branch times from the same SDE the model trains with ----
    t0 = logg.info("    placing branch points in diffusion time")
    branch_points = curves = None
    if not branched:  # the flat baseline: every type on its own branch over all of [0, 1]
        tree = Hierarchy(Node("root", [Node(t) for t in types], time=1.0))
    elif tree is None or not tree.has_times:
        sde = make_sde(beta_min, beta_max, softness=softness, variances=z.var(0))
        test = SeparationTest(z, y, sde, n_ref=n_ref)
        if tree is None:  # topology from the most discriminating test: at high sharing many pairs tie at the
            # floor time and the linkage would join them arbitrarily (benchmarks/hierarchy.py: RF 37 of 60 at
            # 32 types, sharing 1); branch times then come from the test at the chosen sharing
            tree = data_topology(test if n_ref == N_REF else SeparationTest(z, y, sde), types)
        tree, branch_points, curves = calibrate_times(tree, test)
    logg.info(f"    hierarchy {tree.to_newick()}", time=t0)

    # ---- model ----
    n_train = int(train_mask.sum())
    if max_steps is None:
        max_steps = max_epochs * int(np.ceil(n_train / batch_size)) if max_epochs else default_steps(n_train)
    config = {
        "groupby": groupby, "types": types, **_anndata.type_order_and_colors(adata, groupby, types),
        "var_names": list(map(str, var_names)), "layer": layer,
        "use_raw": use_raw, "input_kind": kind, "n_comps": rep.n_comps, "width": width, "n_blocks": n_blocks,
        "dropout": dropout, "beta_min": beta_min, "beta_max": beta_max, "random_state": random_state, "batch_key": batch_key,
        "softness": softness, "sharing": float(sharing), "variances": z.var(0).astype(float).tolist(),
    }
    model = BranchedDiffusion(config, rep, tree)
    t0 = logg.info(f"    training {len(model.branches)} branches for up to {max_steps} steps")
    hist = model.train(z, y, max_steps=max_steps, batch_size=batch_size, lr=lr, random_state=random_state,
                       progress=progress, accelerator=accelerator, devices=devices, strategy=strategy,
                       checkpoint_dir=checkpoint_dir, trainer_kwargs=trainer_kwargs, **dict(train_kwargs or {}))
    model.fit_decoder(r.decoder, random_state=random_state)
    if type_classifier:
        with torch_threads():
            # as many steps as the score net took, within [200, 1000]: a small net on the same noised cells
            fit_type_classifier(model, z, y, steps=int(np.clip(hist["n_steps"], 200, 1000)),
                                random_state=random_state)
    logg.info(f"    trained {hist['n_steps']} steps ({hist['stop_reason']}), best validation loss "
              f"{hist['best_val_loss']:.4f}", time=t0)

    # ---- write (only now, all validation has passed) ----
    uns = {
        "hierarchy": tree.to_newick(),
        "hierarchy_table": tree.to_table(),  # the exact names, whatever they hold (Newick quoting cannot)
        "branches": model.branches_table(),
        "params": _anndata.to_h5ad_safe({  # heads: in the branches table; type order/colours: .obs, .uns
            **{k: v for k, v in config.items() if k not in ("var_names", "variances", "heads", "type_order",
                                                              "type_colors")},
            "hierarchy_source": "cl" if from_ontology else ("data" if from_data else "given"),
            "representation": representation, "min_cells": min_cells, "drop_small": drop_small,
            "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "branched": branched,
            "versions": {p: importlib.metadata.version(p) for p in ("scbranch", "torch", "anndata", "scvi-tools")},
        }),
        "training": {k: v if isinstance(v, str) else np.asarray(v) for k, v in hist.items()},
    }
    if branch_points is not None:
        uns["branch_points"] = branch_points
        uns["separation"] = {"time": curves["time"], "statistic": curves["statistic"],
                             "threshold": curves["threshold"], "node": np.asarray(curves["node"], dtype=str),
                             "pair": np.asarray(curves["pair"], dtype=str)}
    adata.uns[key_added] = uns
    adata.obsm[f"X_{key_added}"] = z_all
    logg.info("    finished", time=start,
              deep=f"added .uns[{key_added!r}] (hierarchy, branches, branch_points, params, training), "
                   f".obsm['X_{key_added}']")
    return model


def generate(
    model: BranchedDiffusion,
    n_cells: int | Mapping[str, int] = 100,
    *,
    sampler: Literal["euler_maruyama", "ddim", "dpm_solver_2", "heun", "pc"] = "euler_maruyama",
    n_steps: int | None = None,
    spacing: Literal["uniform", "logsnr"] = "uniform",
    shared: bool = True,
    resample: bool = False,
    transform_batch: str | None = None,
    obs_prefix: str | None = None,
    random_state: int = 0,
    progress: bool = True,
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Generate synthetic cells per type by walking the model's branch tree from t=1 down.

    Parameters
    ----------
    model
        A trained model from :func:`fit`.
    n_cells
        Cells per type: an int for every type, or ``{type: n}``.
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
        classifier's posterior ratio p(child | x_t) / π(child), so it starts from its own marginal rather than the
        parent's mixture (needs ``fit(type_classifier=True)``). Off by default: in ``benchmarks/sharing.py`` it
        rescued late splits (sharing 1, per-type MMD pbmc68k 0.225 → 0.107, 16 simulated types 0.158 → 0.040) but
        was mixed at the default sharing 0.5 (pbmc68k 0.065 → 0.079, 16 types 0.019 → 0.021, kNN AUC and
        train-on-synthetic accuracy better on one and worse on the other): turn it on with high ``sharing``.
    obs_prefix
        Prefix of the new cells' ``obs_names`` (default ``"synthetic-{random_state}-"``, so that two calls
        with different seeds give distinct names).
    transform_batch
        ``representation="scvi"`` with a batch key only: decode every cell in this batch (default: each
        cell's batch drawn from its type's observed batches).

    Returns
    -------
    A new AnnData with the model's ``var_names``: ``.X`` (sparse) log-normalized expression, normalized as the
    input was (same target sum, or per-cell scales drawn with the library sizes of real cells of the type);
    ``.layers["counts"]`` (sparse integers) whenever the model decodes counts — the input held raw counts or
    counts recoverable from its log-normalized values, or ``representation="scvi"`` — with library sizes
    drawn from the type's real cells; ``.obs[batch_key]`` (scVI with a batch key: the batch each cell was
    decoded in);
    ``.obs[groupby]`` (categorical), ``.obs[f"{key_added}_synthetic"] = True``, ``.obsm[f"X_{key_added}"]``
    (model space) and ``.uns[key_added]["generate"]`` (sampler, n_steps, nfe, n_evals, shared, random_state).
    """
    start = logg.info(f"generating cells with {sampler}")
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    if transform_batch is not None and not model.config.get("batch_key"):
        msg = "transform_batch= needs a model fitted with representation='scvi' and a batch_key"
        raise ValueError(msg)
    cells, stats = model.sample(n_cells, sampler=sampler, n_steps=n_steps, spacing=spacing, shared=shared,
                                resample=resample, random_state=random_state, progress=progress)
    z = np.concatenate(list(cells.values())).astype(np.float32)
    labels = np.concatenate([[ty] * len(v) for ty, v in cells.items()])
    order = [t for t in model.type_order if t in cells]
    obs = pd.DataFrame(
        {model.groupby: pd.Categorical(labels, categories=order), f"{key_added}_synthetic": True},
        index=[f"{f'synthetic-{random_state}-' if obs_prefix is None else obs_prefix}{i}" for i in range(len(z))],
    )
    out = model.decode(z, labels, random_state=random_state, transform_batch=transform_batch)
    if out.batch is not None:
        obs[model.config["batch_key"]] = pd.Categorical(out.batch, categories=model.representation.batches)
    layers = {"counts": sparse.csr_matrix(out.counts)} if out.counts is not None else {}
    syn = ad.AnnData(X=out.X, obs=obs, var=pd.DataFrame(index=model.var_names), layers=layers)
    syn.obsm[f"X_{key_added}"] = z
    syn.uns[key_added] = {"generate": stats}
    colors = model.config.get("type_colors") or {}
    if all(t in colors for t in order):  # the real data's colours, so sc.pl colours types as it does
        syn.uns[f"{model.groupby}_colors"] = [colors[t] for t in order]
    logg.info("    finished", time=start,
              deep=f"{len(z)} cells of {len(cells)} types; {stats['nfe']} network calls, {stats['n_evals']} cell-rows")
    return syn
