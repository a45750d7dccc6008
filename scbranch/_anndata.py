"""AnnData validation and access. Everything here reads; nothing writes to the user's AnnData.

``tl`` functions call these first and write their results only at the very end, so any error leaves the
user's AnnData exactly as it was.
"""

from __future__ import annotations

import warnings
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from . import _logging as logg
from ._normalize import InputKind

MAX_VALUE = 1e9  # a count of 1e9 in one gene of one cell is not data: caught here, not by an SVD 55 s later


def get_matrix(adata: ad.AnnData, *, layer: str | None = None, use_raw: bool = False):
    """The expression matrix and its var_names, from ``.X``, a layer, or ``.raw``."""
    if layer is not None and use_raw:
        msg = "pass either layer= or use_raw=True, not both"
        raise ValueError(msg)
    if use_raw:
        if adata.raw is None:
            msg = "use_raw=True but adata.raw is None"
            raise ValueError(msg)
        X, var_names = adata.raw.X, pd.Index(adata.raw.var_names)
    elif layer is not None:
        if layer not in adata.layers:
            msg = f"layer {layer!r} not in adata.layers; available: {list(adata.layers)}"
            raise KeyError(msg)
        X, var_names = adata.layers[layer], pd.Index(adata.var_names)
    else:
        X, var_names = adata.X, pd.Index(adata.var_names)
    if not var_names.is_unique:
        dup = var_names[var_names.duplicated()].unique()
        msg = (f"{len(dup)} gene names occur more than once, e.g. {list(dup[:5])}; genes are matched by name: "
               "call adata.var_names_make_unique() first")
        raise ValueError(msg)
    return X, var_names


def _values(X) -> np.ndarray:
    return X.data if sparse.issparse(X) else np.asarray(X)


def check_expression(X, *, expected: InputKind | Literal["auto"] = "auto", where: str = "X") -> InputKind:
    """Validate an expression matrix and say whether it holds counts or log-normalized values."""
    if X is None or X.shape[1] == 0:
        msg = f"{where} is empty"
        raise ValueError(msg)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        msg = f"{where} must be numeric; got dtype {X.dtype}"
        raise TypeError(msg)
    vals = _values(X)
    if vals.size and not np.isfinite(vals).all():
        n_bad = int((~np.isfinite(vals)).sum())
        msg = f"{where} holds {n_bad} NaN/inf values; scbranch needs finite counts or log-normalized expression"
        raise ValueError(msg)
    if vals.size and vals.max() > MAX_VALUE:
        msg = (f"{where} holds values up to {vals.max():.3g}: neither counts nor log-normalized expression "
               f"(scbranch accepts values up to {MAX_VALUE:.0e})")
        raise ValueError(msg)
    if vals.size and vals.min() < 0:
        msg = (
            f"{where} holds negative values (min {vals.min():.3g}), e.g. scaled data; scbranch needs raw counts "
            "or log-normalized expression: pass use_raw=True or layer='counts'"
        )
        raise ValueError(msg)
    is_integer = bool(np.all(np.equal(np.mod(vals[: 10**6], 1), 0)))
    kind: InputKind = "counts" if is_integer and vals.size and vals.max() > 0 else "lognorm"
    if expected != "auto" and expected != kind:
        if expected == "counts":
            msg = f"{where} was expected to hold counts but holds non-integer values"
            raise ValueError(msg)
        kind = expected  # integer log-normalized values are odd but legal when the user says so
    logg.info(f"    {where} looks like {'raw counts' if kind == 'counts' else 'log-normalized expression'}")
    return kind


LABEL_COLUMNS = ("cell_type", "celltype", "cell_types", "CellType", "cell_type_fine", "celltypes", "labels",
                 "label", "bulk_labels")  # tried in this order when groupby is not given
# never taken silently: cluster ids are not cell types (a model of "types" 0..12 is rarely what was meant)
CLUSTER_COLUMNS = ("louvain", "leiden", "clusters", "cluster", "kmeans")


def default_groupby(adata: ad.AnnData) -> str:
    """The first of :data:`LABEL_COLUMNS` in ``adata.obs``, said at scanpy's default verbosity (a warning-level
    line, as the choice decides what the model learns), or an error listing the columns to choose from."""
    for name in LABEL_COLUMNS:
        if name in adata.obs.columns:
            logg.warning(f"groupby not given: the cell types are adata.obs[{name!r}] (pass groupby= to choose)")
            return name
    cats = [c for c in adata.obs.columns if not pd.api.types.is_numeric_dtype(adata.obs[c])]
    clusters = [c for c in cats if c.lower() in CLUSTER_COLUMNS]
    hint = (f"; {clusters} hold clusters, not cell types: pass groupby={clusters[0]!r} to model clusters anyway"
            if clusters else "")
    msg = (f"pass groupby=: adata.obs has none of the usual label columns {list(LABEL_COLUMNS)}; "
           f"categorical columns: {cats}{hint}")
    raise KeyError(msg)


def check_labels(adata: ad.AnnData, groupby: str, *, min_cells: int, drop_small: bool,
                 min_types: int = 2) -> tuple[pd.Series, list[str]]:
    """Labels as strings (index = obs_names) and the list of types kept (sorted by size, largest first)."""
    if not isinstance(groupby, str) or groupby not in adata.obs.columns:
        cats = [c for c in adata.obs.columns if not pd.api.types.is_numeric_dtype(adata.obs[c])]
        msg = f"groupby={groupby!r} is not a column of adata.obs; categorical columns: {cats}"
        raise KeyError(msg)
    col = adata.obs[groupby]
    if col.isna().any():
        msg = f"{int(col.isna().sum())} cells have no label in adata.obs[{groupby!r}]; subset them out first"
        raise ValueError(msg)
    labels = col.astype(str)
    texts = pd.Series(pd.unique(col.astype(object).to_numpy())).astype(str)
    if texts.duplicated().any():  # e.g. 1 and "1": two labels the model could only store as one
        msg = (f"adata.obs[{groupby!r}] holds distinct values with the same text: "
               f"{sorted(texts[texts.duplicated()].unique())[:5]}; make the labels strings first (e.g. .astype(str))")
        raise ValueError(msg)
    empty = sorted({v for v in labels.unique() if not v.strip()})
    if empty:
        msg = f"adata.obs[{groupby!r}] holds empty or blank labels {empty}; name every cell type"
        raise ValueError(msg)
    counts = labels.value_counts()
    small = counts[counts < min_cells]
    if len(small) and not drop_small:
        listing = ", ".join(f"{k!r} ({v} cells)" for k, v in small.items())
        msg = f"cell types with fewer than min_cells={min_cells} cells: {listing}; pass drop_small=True to skip them"
        raise ValueError(msg)
    if len(small):
        logg.warning(f"dropping {len(small)} cell types with < {min_cells} cells: {list(small.index)}")
    kept = [str(k) for k in counts.index if counts[k] >= min_cells]
    if len(kept) < min_types:
        msg = (f"need at least {min_types} cell type(s) with >= {min_cells} cells in adata.obs[{groupby!r}]; "
               f"found {len(kept)}")
        raise ValueError(msg)
    return labels, kept


def check_obs_column(adata: ad.AnnData, key: str, *, what: str) -> np.ndarray:
    """A complete ``adata.obs`` column as strings, or a clear error naming the option that asked for it."""
    if not isinstance(key, str) or key not in adata.obs.columns:
        msg = f"{what}={key!r} is not a column of adata.obs; columns: {list(adata.obs.columns)}"
        raise KeyError(msg)
    if adata.obs[key].isna().any():
        msg = f"{int(adata.obs[key].isna().sum())} cells have no value in adata.obs[{key!r}] ({what})"
        raise ValueError(msg)
    return adata.obs[key].astype(str).to_numpy()


def label_ids(adata: ad.AnnData, groupby: str, key: str) -> dict[str, str]:
    """``{label: ontology ID}`` from an obs column of IDs; each label must have exactly one ID."""
    if key not in adata.obs.columns:
        msg = f"ontology_key={key!r} is not a column of adata.obs"
        raise KeyError(msg)
    pairs = adata.obs[[groupby, key]].astype(str).drop_duplicates()
    multi = pairs[groupby][pairs[groupby].duplicated()].unique().tolist()
    if multi and groupby != key:
        msg = f"labels with more than one ID in adata.obs[{key!r}]: {multi}"
        raise ValueError(msg)
    return dict(zip(pairs[groupby], pairs[key]))


def type_order_and_colors(adata: ad.AnnData, groupby: str, types: list[str]) -> dict:
    """The real data's order of the kept types (its categories' order, else first appearance) and, when
    ``.uns[f"{groupby}_colors"]`` matches the categories, each type's colour: synthetic cells keep both."""
    col = adata.obs[groupby]
    cats = [str(c) for c in col.cat.categories] if isinstance(col.dtype, pd.CategoricalDtype) else \
        list(dict.fromkeys(col.astype(str)))
    order = [c for c in cats if c in set(types)]
    colors = adata.uns.get(f"{groupby}_colors")
    out: dict = {"type_order": order}
    if colors is not None and isinstance(col.dtype, pd.CategoricalDtype) and len(colors) == len(cats):
        out["type_colors"] = {c: str(k) for c, k in zip(cats, colors) if c in set(types)}
    return out


FEWEST_STEPS = 20  # a budget below this cannot warm the LR up (over min(200, 10 %) of the steps: 2 or more)


def check_seed(random_state, *, what: str = "random_state") -> int:
    """A seed numpy and torch both accept (an integer in [0, 2**32)), as a plain int."""
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) \
            or not 0 <= int(random_state) < 2**32:
        msg = f"{what} must be an integer in [0, 2**32); got {random_state!r}"
        raise ValueError(msg)
    return int(random_state)


def check_count(n, *, what: str, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (steps, cells), as a plain int."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        msg = f"{what} must be an integer >= {minimum}; got {n!r}"
        raise ValueError(msg)
    return int(n)


def check_key(key_added, *, what: str = "key_added") -> str:
    """A key that survives ``write_h5ad`` (h5ad splits keys at "/", and an empty key cannot be stored)."""
    if not isinstance(key_added, str) or not key_added.strip() or "/" in key_added:
        msg = f"{what} must be a non-empty string without '/' (h5ad reads '/' as nesting); got {key_added!r}"
        raise ValueError(msg)
    return key_added


def check_steps(max_steps, *, what: str = "max_steps") -> None:
    """A training budget the schedule can run (or ``None``: the default), else a clear error before any work."""
    if max_steps is not None:
        check_count(max_steps, what=what, minimum=FEWEST_STEPS)


def to_h5ad_safe(obj):
    """Make a nested params dict writable to .h5ad (``None`` values left out, tuples → lists)."""
    if isinstance(obj, dict):
        return {str(k): to_h5ad_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, tuple | list):
        return [to_h5ad_safe(v) for v in obj]
    return obj


def adata_first(a, b, fn: str):
    """``(adata, model)`` for the tools that read cells from an AnnData (scanpy's order: the data first). The
    model-first order of scbranch < 0.3 still works, with a FutureWarning."""
    if isinstance(b, ad.AnnData) and not isinstance(a, ad.AnnData):
        warnings.warn(f"pass the AnnData first: sb.tl.{fn}(adata, model, ...); the model-first order is deprecated",
                      FutureWarning, stacklevel=3)
        return b, a
    if not isinstance(a, ad.AnnData) or isinstance(b, ad.AnnData):
        msg = (f"sb.tl.{fn} takes an AnnData first, then the model (from sb.tl.fit or BranchedDiffusion.load); got "
               f"{type(a).__name__}, {type(b).__name__}")
        raise TypeError(msg)
    return a, b
