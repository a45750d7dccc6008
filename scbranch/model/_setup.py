"""Setting a model up on an AnnData: validate, put the cells in model space, place the branch points.

Everything here runs before a network exists and changes nothing in the AnnData; :class:`Prepared` holds what
training and the ``.uns`` record need (the model-space cells, the decoder's cells, the branch-point table).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .. import _anndata
from .. import _logging as logg
from ..hierarchy import Hierarchy, Node, SeparationTest, calibrate_times, data_topology, n_ref_for, resolve_hierarchy
from ..hierarchy._data import N_REF
from ..hierarchy._resolve import Context
from ..module import make_sde
from ..representation import DecoderData
from ._config import ModelConfig, SetupConfig
from ._io import plain
from ._represent import represent
from ._state import ModelState

MAX_FLOAT_LEVELS = 20  # a float condition column with more distinct values is continuous: refused (bin it)


@dataclass
class Prepared:
    """The outcome of setup: what :class:`~scbranch.BranchedDiffusion` is built from and trains on."""

    state: ModelState  # what the model saves besides its tensors
    rep: object  # the fitted representation
    tree: Hierarchy  # with branch times
    z: np.ndarray  # training cells in model space
    y: np.ndarray  # their labels
    c: np.ndarray | None  # their covariate codes (n, K), with condition_keys
    z_all: np.ndarray  # every cell of the AnnData in model space
    decoder: DecoderData  # the real cells the decoder is fitted on
    source: str  # where the tree came from: "data", "given", "levels", "cl" or "ontology file"
    branch_points: pd.DataFrame | None  # only when branch times were calibrated here
    curves: dict | None


def prepare(adata: ad.AnnData, *, groupby: str | None, hierarchy, setup: SetupConfig, model: ModelConfig,
            random_state: int, progress: bool) -> Prepared:
    """Validate ``adata`` and the options, fit the representation and place the branch points."""
    if groupby is None:
        groupby = _anndata.default_groupby(adata)
        if setup.ontology_key is None and f"{groupby}_ontology_term_id" in adata.obs.columns:
            # CELLxGENE's schema: labels and their CL IDs
            setup = dataclasses.replace(setup, ontology_key=f"{groupby}_ontology_term_id")
    random_state = _anndata.check_seed(random_state)
    if not model.branched and not (hierarchy is None or (isinstance(hierarchy, str) and hierarchy == "data")):
        msg = "branched=False fits the flat baseline, which has no hierarchy; drop hierarchy= or branched=False"
        raise ValueError(msg)
    n_ref = n_ref_for(model.sharing)
    labels, types = _anndata.check_labels(adata, groupby, min_cells=setup.min_cells, drop_small=setup.drop_small)
    train_mask = labels.isin(types).to_numpy()
    given = resolve_hierarchy(hierarchy, Context(adata, groupby, types, train_mask, setup.ontology_key,
                                                 setup.ontology_mapping))
    tree, source = given.tree, given.source
    conditions, c = _conditions(adata, setup.condition_keys or [], groupby, train_mask)  # checked before the fit
    r = represent(adata, labels, train_mask, model=model, layer=setup.layer, use_raw=setup.use_raw,
                  input_kind=setup.input_kind, batch_key=setup.batch_key, random_state=random_state,
                  progress=progress)
    z, y = r.z_all[train_mask], labels.to_numpy()[train_mask]

    # ---- hierarchy: topology and branch times from the same SDE the model trains with ----
    t0 = logg.info("    placing branch points in diffusion time")
    branch_points = curves = None
    if not model.branched:  # the flat baseline: every type on its own branch over all of [0, 1]
        tree = Hierarchy(Node("root", [Node(t) for t in types], time=1.0))
    elif tree is None or not tree.has_times:
        sde = make_sde(model.beta_min, model.beta_max, softness=model.softness, variances=z.var(0))
        test = SeparationTest(z, y, sde, n_ref=n_ref)
        if tree is None:  # topology from the most discriminating test: at high sharing many pairs tie at the
            # floor time and the linkage would join them arbitrarily (benchmarks/hierarchy.py: RF 37 of 60 at
            # 32 types, sharing 1); branch times then come from the test at the chosen sharing
            tree = data_topology(test if n_ref == N_REF else SeparationTest(z, y, sde), types)
        tree, branch_points, curves = calibrate_times(tree, test)
    logg.info(f"    hierarchy {tree.to_newick()}", time=t0)

    state = ModelState(**plain({
        "groupby": groupby, "types": types, **_anndata.type_order_and_colors(adata, groupby, types),
        "var_names": list(map(str, r.var_names)), "layer": setup.layer, "use_raw": setup.use_raw,
        "input_kind": r.kind, "batch_key": setup.batch_key, "n_comps": r.rep.n_features,
        **{k: getattr(model, k) for k in ("width", "n_blocks", "dropout", "beta_min", "beta_max", "softness")},
        "sharing": float(model.sharing), "random_state": random_state,
        "type_counts": {t: int((y == t).sum()) for t in types},  # training proportions (generate at a node)
        "variances": z.var(0).astype(float).tolist(), "conditions": conditions or None,
        # generate writes each type's coarse labels on synthetic cells
        "levels": _level_labels(adata.obs.loc[train_mask], given.levels, groupby)
        if given.levels and model.branched else None,
    }))
    return Prepared(state, r.rep, tree, z, y, c, r.z_all, r.decoder, source, branch_points, curves)


def _level_labels(obs, columns, groupby) -> dict:
    """``{coarse column: [its categories, {type: label}]}``: nested levels give every type one label per level."""
    out = {}
    for col in columns:
        pairs = obs[[groupby, col]].astype(str).drop_duplicates()
        cats = obs[col].cat.categories if isinstance(obs[col].dtype, pd.CategoricalDtype) else pairs[col].unique()
        out[col] = [[str(c) for c in cats if str(c) in set(pairs[col])], dict(zip(pairs[groupby], pairs[col]))]
    return out


def _conditions(adata, keys, groupby, mask) -> tuple[dict | None, np.ndarray | None]:
    """Covariate columns → ``{"keys", "categories"}`` and the training cells' codes (n, K)."""
    if not keys:
        return None, None
    if groupby in keys:
        msg = f"condition_keys must not include groupby ({groupby!r}): the type is the branch"
        raise ValueError(msg)
    cats, codes = [], []
    for key in keys:
        col = adata.obs.get(key)
        if col is not None and pd.api.types.is_float_dtype(col) and col[mask].nunique() > MAX_FLOAT_LEVELS:
            # each distinct number would become a category of its own (a continuous column: hundreds)
            msg = (f"condition_keys column {key!r} holds {col[mask].nunique()} distinct numbers; covariates are "
                   f"categories: bin it first, e.g. adata.obs['{key}_bin'] = pd.cut(adata.obs[{key!r}], 5)")
            raise ValueError(msg)
        values = _anndata.check_obs_column(adata, key, what="condition_keys")[mask]
        col = adata.obs[key]
        order = [str(v) for v in col.cat.categories] if hasattr(col, "cat") else sorted(set(values))
        order = [v for v in order if v in set(values)]
        cats.append(order)
        codes.append(pd.Categorical(values, categories=order).codes)
    logg.info(f"    conditioning on {dict(zip(keys, map(len, cats)))} (categories per key)")
    return {"keys": list(keys), "categories": cats}, np.stack(codes, 1).astype(np.int64)
