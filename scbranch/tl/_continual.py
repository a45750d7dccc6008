"""Tools that use the branch tree: add cell types, transmute cells between types, augment rare types."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .. import _anndata
from .. import _logging as logg
from ..model import BranchedDiffusion
from ._concat import join
from ._generate import generate


def add_cell_type(
    adata_new: ad.AnnData,
    model: BranchedDiffusion,
    *,
    groupby: str | None = None,
    mode: Literal["heads", "replay"] = "heads",
    min_cells: int = 5,
    max_steps: int | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    key_added: str = "scbranch",
) -> BranchedDiffusion:
    """Add the cell types of ``adata_new`` to a trained model without its old training data.

    Each new type is placed at its branch point against cells the model generates for the old types, then
    trained with ``mode="heads"`` (only the new type's own branch; old types stay bit-for-bit unchanged) or
    ``mode="replay"`` (also fine-tunes the upstream branches it joins, replaying old types from the frozen
    model so they are not forgotten). Several types at once are fine.

    The change is a transaction: validation first, then placement, training and the decoder on a working copy,
    committed to ``model`` only when all of it succeeded; any error (or Ctrl-C) leaves ``model`` as it was.

    Parameters
    ----------
    adata_new
        Cells of the new types only (same genes as the model, read as at fit time).
    model
        A trained model; ``sb.tl.add_cell_type(model, adata_new)`` (the order before 0.3) still works, with a
        ``FutureWarning``.
    groupby
        Label column of ``adata_new`` (default: the model's).
    mode
        ``"heads"`` or ``"replay"`` (above).
    min_cells
        Fewest cells a new type may have.
    max_steps
        Training steps (default 6 per new cell within [800, 2,000], on a one-cycle schedule).
    random_state, progress, key_added
        Seed; progress bars; key of what is written.

    Returns
    -------
    The updated model (modified in place), and writes to ``adata_new``: ``.obsm[f"X_{key_added}"]`` (model
    space) and ``.uns[key_added]`` with the updated ``hierarchy``, ``hierarchy_table``, ``branches`` and
    ``continual`` (``placements``: each new type's anchor type and branch time; ``trained_heads``, ``mode``,
    ``n_steps``).
    """
    adata_new, model = _anndata.adata_first(adata_new, model, "add_cell_type")
    _anndata.check_key(key_added)
    start = logg.info(f"adding cell types to the model ({mode})")
    model.add_cell_type(adata_new, groupby=groupby, mode=mode, min_cells=min_cells, max_steps=max_steps,
                        random_state=random_state, progress=progress)
    report = model.last_added
    adata_new.obsm[f"X_{key_added}"] = report["latent"]
    adata_new.uns[key_added] = {
        "hierarchy": model.hierarchy.to_newick(),
        "hierarchy_table": model.hierarchy.to_table(),
        "branches": model.branches_table(),
        "continual": {
            "placements": pd.DataFrame(report["placements"], columns=["cell_type", "anchor", "time"]),
            "trained_heads": np.asarray(report["trained_heads"]),
            "mode": mode, "n_steps": int(report["history"]["n_steps"]),
        },
    }
    logg.info("    finished", time=start,
              deep=f"placed {[(n, a, round(t, 3)) for n, a, t in report['placements']]}; "
                   f"trained heads {report['trained_heads']}")
    return model


def transmute(
    adata: ad.AnnData,
    model: BranchedDiffusion,
    *,
    source: str,
    target: str,
    time: float | None = None,
    sampler: str = "ddim",
    n_steps: int = 200,
    random_state: int = 0,
    device: str = "auto",
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Turn the cells of ``source`` in ``adata`` into ``target``: forward-noise them to the two types' shared
    branch time, then run the reverse process down ``target``'s branches.

    Parameters
    ----------
    adata
        Cells with the model's genes and its ``groupby`` column; only the ``source`` cells are used. Not modified.
    model
        A trained model (the model-first order before 0.3 still works, with a ``FutureWarning``).
    source, target
        Cell types of the model.
    time
        Noise to this diffusion time instead of the branch time (e.g. a fixed time, the seed paper's baseline).
    sampler, n_steps
        The reverse process below ``time``.
    random_state, key_added
        Seed; key of what is written.
    device
        Where the networks run: ``"auto"`` (a CUDA GPU when torch finds one, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"mps"``; see :func:`~scbranch.tl.generate`.

    Returns
    -------
    A new AnnData of the transmuted cells, one per source cell (``obs_names``: the source cell's with
    ``-transmuted``): ``.X`` expression decoded as :func:`generate` does (``.layers["counts"]`` when the model
    decodes counts); ``.obs``: the source cells' annotations with ``[groupby]`` = ``target`` and
    ``["transmuted_from"]`` = ``source``; ``.obsm[f"X_{key_added}"]`` (model space) and
    ``.obsm[f"X_{key_added}_source"]`` (the source cells in model space); ``.uns[key_added]["transmute"]``
    (source, target, time, sampler, n_steps, random_state).
    """
    adata, model = _anndata.adata_first(adata, model, "transmute")
    return model.transmute(adata, source=source, target=target, time=time, sampler=sampler, n_steps=n_steps,
                           random_state=random_state, device=device, key_added=key_added)


def augment(
    adata: ad.AnnData,
    model: BranchedDiffusion,
    *,
    min_cells: int = 300,
    groupby: str | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Real cells plus synthetic cells for every type with fewer than ``min_cells``, up to ``min_cells``.

    Parameters
    ----------
    adata
        The real cells (in memory or backed: read a chunk at a time). Not modified.
    model
        A trained model of their types.
    min_cells
        Each type's cells after augmentation, at least.
    groupby
        The label column of ``adata`` (default: the model's).
    random_state, progress, key_added
        Seed; progress bar (``None``: scanpy's verbosity); key prefix.

    Returns
    -------
    A new AnnData, :func:`~scbranch.tl.concat_real_synthetic` of the real cells and the synthetic ones (same genes, one
    scale: ``.X`` holds what the model was fitted on, counts or log-normalized):
    ``.obs[f"{key_added}_synthetic"]`` (bool), ``.obs[groupby]`` in the real category order with its colours,
    the real cells' other columns (NaN on synthetic cells); ``.obsm[f"X_{key_added}"]`` (model space, all
    cells) — the real cells' other embeddings are left out rather than given NaN rows (compute them on all
    cells); ``.uns[key_added]["augment"]``: ``min_cells`` and the table ``added`` (cell_type, n_added).
    """
    adata, model = _anndata.adata_first(adata, model, "augment")
    groupby = groupby or model.groupby
    random_state = _anndata.check_seed(random_state)
    _anndata.check_key(key_added)
    min_cells = _anndata.check_count(min_cells, what="min_cells")
    labels, _ = _anndata.check_labels(adata, groupby, min_cells=1, drop_small=False, min_types=1)
    counts = labels.value_counts()
    unknown = sorted(set(counts.index[counts < min_cells]) - set(model.types))
    if unknown:
        msg = f"types below min_cells that the model cannot generate: {unknown}; add them with add_cell_type"
        raise ValueError(msg)
    need = {t: int(min_cells - counts.get(t, 0)) for t in model.types if counts.get(t, 0) < min_cells}
    start = logg.info(f"augmenting {len(need)} types to {min_cells} cells")
    syn = None  # nothing to add: the real cells alone, laid out the same way
    if need:
        syn = generate(model, need, random_state=random_state, progress=progress, key_added=key_added)
        if groupby != model.groupby:
            syn.obs[groupby] = syn.obs[model.groupby]
    out = join(adata, syn, model, groupby=groupby, key_added=key_added)
    out.uns[key_added] = {"augment": {"min_cells": min_cells,  # a table: type names may hold "/" (h5ad keys)
                                      "added": pd.DataFrame({"cell_type": list(need), "n_added": list(need.values())})}}
    logg.info("    finished", time=start, deep=f"added {sum(need.values())} synthetic cells; "
                                              f".obs[{key_added + '_synthetic'!r}], .uns[{key_added!r}]['augment']")
    return out
