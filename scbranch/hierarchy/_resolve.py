"""Every form ``fit(hierarchy=...)`` takes, read by one resolver into a :class:`Hierarchy` over the data's types.

The forms, tried in this order (the first that claims the value reads it; a new form is one row of ``READERS``):

- ``None`` / ``"data"``: no tree given, the topology comes from the data (``tree=None``);
- a list of ``adata.obs`` columns: nested annotation levels, coarse to fine (``groupby`` the finest);
- ``"cl"``: the Cell Ontology (offline), labels mapped to its terms;
- the path of an ontology file (``.obo``, ``.owl``, ``.json``), read with ``pronto``;
- a :class:`Hierarchy`, a nested dict, a parent/child table, or a Newick string or file.

Whatever the form, the tree is pruned to the types, and its branch times are kept only if it gives all of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import pandas as pd

from .. import _anndata
from . import _ontology as ontology
from ._levels import from_obs_columns
from ._tree import Hierarchy

DEPRECATED_ALIASES = ("ontology", "ontology+data")  # of "cl", before 0.3: warned until 0.4


@dataclass
class Resolved:
    """The tree pruned to the types (``None``: from the data), where it came from, and the coarse annotation
    columns when it came from nested levels."""

    tree: Hierarchy | None
    source: str  # "data", "levels", "cl", "ontology file" or "given"
    levels: list[str] | None = None


@dataclass
class Context:
    """What a reader may need besides the value: the cells of the types, and how labels map to ontology terms."""

    adata: ad.AnnData
    groupby: str
    types: list[str]
    mask: object  # the rows of the types kept
    ontology_key: str | None = None
    ontology_mapping: Mapping[str, str] | None = None


def _is_data(spec) -> bool:
    return spec is None or (isinstance(spec, str) and spec == "data")


def _is_levels(spec) -> bool:
    return isinstance(spec, list | tuple) and len(spec) > 0 and all(isinstance(c, str) for c in spec)


def _is_cl(spec) -> bool:
    if isinstance(spec, str) and spec.lower() in DEPRECATED_ALIASES:
        warnings.warn(f"hierarchy={spec!r} is deprecated: pass hierarchy='cl'", FutureWarning, stacklevel=6)
        return True
    return isinstance(spec, str) and spec.lower() == "cl"


def _is_ontology_file(spec) -> bool:
    return isinstance(spec, str) and spec.lower().endswith(ontology.ONTOLOGY_SUFFIXES)


def _levels(spec, ctx: Context) -> Hierarchy:
    columns = [*spec, ctx.groupby] if spec[-1] != ctx.groupby else list(spec)
    return from_obs_columns(ctx.adata.obs.loc[ctx.mask], columns)


def _ontology(spec, ctx: Context) -> Hierarchy:
    if spec.lower() == "cl" or spec.lower() in DEPRECATED_ALIASES:
        onto = None  # the Cell Ontology that ships with cellxgene-ontology-guide
    elif not Path(spec).is_file():  # not a Newick string to be parsed
        msg = f"ontology file {spec!r} not found"
        raise FileNotFoundError(msg)
    else:
        onto = ontology.read_ontology(spec)
    ids = _anndata.label_ids(ctx.adata, ctx.groupby, ctx.ontology_key) if ctx.ontology_key else None
    term_of = ontology.map_labels(ctx.types, ids=ids, mapping=ctx.ontology_mapping, onto=onto)
    return ontology.ontology_hierarchy(term_of, onto)


def _given(spec, ctx: Context) -> Hierarchy:
    if isinstance(spec, Hierarchy):
        return spec
    if isinstance(spec, Mapping):
        return Hierarchy.from_dict(spec)
    if isinstance(spec, pd.DataFrame):
        return Hierarchy.from_table(spec)
    return Hierarchy.from_newick(spec)


def _is_given(spec) -> bool:
    return isinstance(spec, Hierarchy | Mapping | pd.DataFrame | str)


# (source, claims the value, reads it): the first row whose test is true reads the value
READERS: list[tuple[str, Callable, Callable]] = [
    ("data", _is_data, lambda spec, ctx: None),
    ("levels", _is_levels, _levels),
    ("cl", _is_cl, _ontology),
    ("ontology file", _is_ontology_file, _ontology),
    ("given", _is_given, _given),
]


def resolve_hierarchy(spec, ctx: Context) -> Resolved:
    """``fit``'s ``hierarchy=`` value as a tree over ``ctx.types`` (see the module docstring)."""
    source, read = next(((src, read) for src, claims, read in READERS if claims(spec)), (None, None))
    if read is None:
        msg = ("hierarchy must be None/'data', 'cl', an ontology file, a list of obs columns, a Newick string or "
               f"file, a nested dict, a table or a Hierarchy; got {type(spec)}")
        raise TypeError(msg)
    tree = read(spec, ctx)
    levels = [c for c in spec if c != ctx.groupby] if source == "levels" else None
    if tree is None:
        return Resolved(None, source)
    unknown = sorted(set(ctx.types) - set(tree.leaves))
    if unknown:
        msg = (f"cell types in adata.obs[{ctx.groupby!r}] that are not leaves of the hierarchy: {unknown}; "
               f"leaves: {tree.leaves}")
        raise ValueError(msg)
    tree = tree.prune(ctx.types)
    timed = [n.name for n in tree.internal_nodes if n.time is not None]
    if timed and not tree.has_times:  # recalibrating would silently drop the times that were given
        msg = (f"the hierarchy gives branch times for {timed} but not for every internal node; give all of them "
               "or none (then they are calibrated from the data)")
        raise ValueError(msg)
    return Resolved(tree, source, levels)
