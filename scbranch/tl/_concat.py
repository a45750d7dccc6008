"""``scbranch.tl.concat_real_synthetic``: real and synthetic cells in one AnnData, ready for one UMAP.

The first thing done with synthetic cells is to embed them beside the real ones. ``ad.concat([adata, syn])``
gets three things wrong: the real cells have no ``scbranch_synthetic`` column, so the default inner join drops the
flag; embeddings of the real cells only (``X_umap``) get NaN rows; and a model fitted on a layer or ``.raw`` leaves
the two ``.X`` on different scales. Here both parts are read from where the model read the real cells, so their
``.X`` hold the same form (counts with counts, log-normalized with log-normalized).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _anndata, _chunks, _normalize
from .. import _logging as logg
from ..model import lognorm_of

__all__ = ["concat_real_synthetic", "join"]


def _fit_record(adata: ad.AnnData, model, key_added: str) -> dict:
    """groupby, layer, use_raw and input kind of the fit: the model's, else what ``tl.fit`` wrote to ``.uns``."""
    if model is not None:
        s = model.state
        return {"groupby": s.groupby, "layer": s.layer, "use_raw": s.use_raw, "input_kind": s.input_kind}
    params = adata.uns.get(key_added, {}).get("params", {}) if isinstance(adata.uns.get(key_added), dict) else {}
    return dict(params)


def concat_real_synthetic(
    adata: ad.AnnData,
    syn: ad.AnnData,
    model=None,
    *,
    groupby: str | None = None,
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Real cells followed by synthetic cells in one AnnData, on one scale, ready for ``sc.pp.neighbors``,
    ``sc.tl.umap`` and ``sc.pl.umap(color=["scbranch_synthetic", groupby])``.

    Parameters
    ----------
    adata
        The real cells (in memory or backed; read a chunk at a time). Not modified.
    syn
        Synthetic cells from :func:`~scbranch.tl.generate` (or :func:`~scbranch.tl.transmute`, …).
    model
        The model that made ``syn``: where it read the real cells (``.X``, ``layers[layer]`` or ``.raw``) and its
        ``groupby``. ``None``: from ``adata.uns[key_added]["params"]`` as :func:`~scbranch.tl.fit` wrote it, else
        ``.X``.
    groupby
        The cell-type column (default: the model's).
    key_added
        The prefix used at fit and generate.

    Returns
    -------
    A new AnnData on the model's genes (``.var``: the real cells' columns for them):

    ``.X`` (sparse)
        What the model was fitted on, for both parts: counts with counts (then ``.layers["lognorm"]`` holds both
        parts log-normalized, the real cells to a target sum of 1e4 as scbranch normalizes counts), or
        log-normalized with log-normalized.
    ``.obs``
        The real cells' columns (synthetic cells: NaN where they have no value, except the columns ``generate``
        fills: ``[groupby]``, the coarse levels of a nested hierarchy, covariates),
        ``[f"{key_added}_synthetic"]`` (bool: ``False`` on real cells), ``[groupby]`` categorical in the real
        order (with its colours in ``.uns``).
    ``.obsm[f"X_{key_added}"]``
        Model space for both parts (when the real cells have it or ``model`` is given). The real cells' other
        embeddings (``X_umap``, ``X_pca``, …) are left out — synthetic cells have none, and NaN rows break
        ``sc.pp.neighbors``: compute them on all cells.
    """
    for a, name in ((adata, "adata"), (syn, "syn")):
        if not isinstance(a, ad.AnnData):
            msg = f"{name} must be an AnnData, got {type(a).__name__}"
            raise TypeError(msg)
    return join(adata, syn, model, groupby=groupby, key_added=key_added)


def join(adata: ad.AnnData, syn: ad.AnnData | None, model=None, *, groupby: str | None = None,
         key_added: str = "scbranch") -> ad.AnnData:
    """:func:`concat_real_synthetic`; ``syn=None`` (``augment`` with nothing to add): the real cells alone, laid
    out the same way."""
    _anndata.check_key(key_added)
    rec = _fit_record(adata, model, key_added)
    made = {} if syn is None else syn.uns.get(key_added, {}).get("generate", {})
    groupby = groupby or rec.get("groupby") or made.get("groupby")
    for a, name in ((adata, "adata"), (syn, "syn")):
        if a is not None and (groupby is None or groupby not in a.obs.columns):
            msg = f"groupby={groupby!r} is not a column of {name}.obs; pass groupby= (or the model)"
            raise KeyError(msg)
    flag = f"{key_added}_synthetic"
    n_syn = 0 if syn is None else syn.n_obs
    start = logg.info(f"joining {adata.n_obs} real and {n_syn} synthetic cells")

    layer, use_raw = rec.get("layer"), bool(rec.get("use_raw", False))
    X, var_names = _anndata.get_matrix(adata, layer=layer, use_raw=use_raw)
    genes = pd.Index(syn.var_names if syn is not None else model.var_names)
    cols = var_names.get_indexer(genes)
    if (cols < 0).any():
        msg = f"{int((cols < 0).sum())} genes of syn are not in adata, e.g. {list(genes[cols < 0][:5])}"
        raise ValueError(msg)
    x_real = _chunks.to_csr(X, cols)
    kind = rec.get("input_kind") or _anndata.check_expression(x_real[: min(1000, x_real.shape[0])])
    x_syn = lognorm_syn = sparse.csr_matrix((0, len(genes)), dtype=np.float32)
    if syn is not None:
        x_syn = sparse.csr_matrix(syn.X if layer is None or layer not in syn.layers else syn.layers[layer],
                                  dtype=np.float32)
        if kind == "counts":
            lognorm_syn = sparse.csr_matrix(lognorm_of(syn) if layer is None else syn.X, dtype=np.float32)
    layers = {}
    if kind == "counts":  # counts in .X for both: their log-normalized form beside them, for sc.pp.pca directly
        layers["lognorm"] = sparse.vstack([sparse.csr_matrix(_normalize.to_lognorm(x_real, "counts")),
                                           lognorm_syn], format="csr")

    obs = _obs(adata.obs, None if syn is None else syn.obs, groupby, flag)
    if obs.index.duplicated().any():
        msg = "real and synthetic cells share obs_names; pass generate(obs_prefix=...) for distinct names"
        raise ValueError(msg)
    var = (adata.raw.var if use_raw else adata.var).iloc[cols].copy()
    out = ad.AnnData(sparse.vstack([x_real, x_syn], format="csr"), obs=obs, var=var, layers=layers)

    z_key = f"X_{key_added}"
    z_real = adata.obsm[z_key] if z_key in adata.obsm else (model.get_latent(adata) if model is not None else None)
    z_syn = None if syn is None else syn.obsm.get(z_key)
    if z_real is not None and (syn is None or (z_syn is not None and np.shape(z_real)[1] == z_syn.shape[1])):
        parts = [np.asarray(z_real, np.float32)] + ([] if syn is None else [np.asarray(z_syn, np.float32)])
        out.obsm[z_key] = np.vstack(parts)
    colors = _colors([a for a in (adata, syn) if a is not None], groupby, list(out.obs[groupby].cat.categories))
    if colors:
        out.uns[f"{groupby}_colors"] = colors
    logg.info("    finished", time=start, deep=f"{'counts' if kind == 'counts' else 'log-normalized'} .X; "
                                              f".obs[{flag!r}] marks the synthetic cells")
    return out


def _obs(real: pd.DataFrame, syn: pd.DataFrame | None, groupby: str, flag: str) -> pd.DataFrame:
    """Both obs tables, all columns (outer join); categorical columns keep their categories, real ones first."""
    tables = [real.copy()] + ([] if syn is None else [syn.copy()])
    for d, value in zip(tables, (False, True)):
        d[flag] = value
    obs = pd.concat(tables, join="outer")
    for col in obs.columns:
        parts = [d[col] for d in tables if col in d.columns]
        if col == flag:
            obs[col] = obs[col].astype(bool)
        elif any(isinstance(p.dtype, pd.CategoricalDtype) for p in parts) or col == groupby:
            cats = [c for p in parts for c in (p.cat.categories if isinstance(p.dtype, pd.CategoricalDtype)
                                              else pd.unique(p.dropna()))]
            obs[col] = pd.Categorical(obs[col], categories=list(dict.fromkeys(cats)))
    obs[groupby] = obs[groupby].cat.remove_unused_categories()  # types absent from both (e.g. filtered out)
    return obs


def _colors(adatas, groupby: str, categories: list) -> list[str] | None:
    """A colour per category: the real data's where they match its categories, else the synthetic cells'."""
    for a in adatas:
        col, colors = a.obs[groupby], a.uns.get(f"{groupby}_colors")
        if colors is None or not isinstance(col.dtype, pd.CategoricalDtype) or len(colors) != len(col.cat.categories):
            continue
        of = dict(zip(map(str, col.cat.categories), colors))
        if all(str(c) in of for c in categories):
            return [of[str(c)] for c in categories]
    return None
