"""A hierarchy from annotation levels: nested ``.obs`` columns, coarse to fine (``["compartment",
"cell_type_coarse", "cell_type"]``), as many atlases annotate.

Each label of a finer column must sit under exactly one label of the coarser column (else an error names the
labels and their parents). Nodes with a single child collapse into it (a coarse label holding one fine label
adds no branch point); a coarse label whose name is also another node's is named ``"label (column)"``, since
node names must be unique. Branch times are then calibrated from the data, as for any given topology.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import pandas as pd

from ._tree import Hierarchy, Node


def _parents(obs: pd.DataFrame, coarse: str, fine: str) -> dict[str, str]:
    """fine label → its one coarse label."""
    pairs = obs[[coarse, fine]].astype(str).drop_duplicates()
    split = pairs.groupby(fine)[coarse].agg(sorted)
    bad = {f: p for f, p in split.items() if len(p) > 1}
    if bad:
        lines = "; ".join(f"{f!r} under {p}" for f, p in list(bad.items())[:10])
        msg = (f"the annotation levels are not nested: labels of {fine!r} sit under several labels of {coarse!r}: "
               f"{lines}")
        raise ValueError(msg)
    return {f: p[0] for f, p in split.items()}


def from_obs_columns(obs: pd.DataFrame, columns: Sequence[str]) -> Hierarchy:
    """The tree of nested annotation ``columns`` of ``obs`` (coarse → fine; the last holds the cell types)."""
    columns = list(columns)
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        msg = f"hierarchy levels {missing} are not columns of adata.obs; its columns: {list(obs.columns)}"
        raise KeyError(msg)
    if len(set(columns)) != len(columns) or len(columns) < 2:
        msg = f"hierarchy levels must be two or more distinct obs columns, coarse to fine; got {columns}"
        raise ValueError(msg)
    empty = obs[columns].isna().any(axis=1)
    if empty.any():
        cols = [c for c in columns if obs.loc[empty, c].isna().any()]
        msg = f"{int(empty.sum())} cells have no label in the hierarchy level(s) {cols}; label them or subset the cells"
        raise ValueError(msg)
    levels = [sorted(obs[c].astype(str).unique()) for c in columns]
    parent = [_parents(obs, c, f) for c, f in itertools.pairwise(columns)]
    column_of: dict[int, str] = {}  # internal node → the level it comes from (to disambiguate its name)

    def build(lab: str, depth: int) -> Node:
        if depth == len(columns) - 1:
            return Node(lab)
        kids = [build(f, depth + 1) for f in levels[depth + 1] if parent[depth][f] == lab]
        if len(kids) == 1:
            return kids[0]
        node = Node(lab, kids)
        column_of[id(node)] = columns[depth]
        return node

    top = [build(lab, 0) for lab in levels[0]]
    tree = top[0] if len(top) == 1 else Node("", top)
    count = Counter(n.name for n in tree.traverse())
    for n in tree.traverse():
        if id(n) in column_of and count[n.name] > 1:
            n.name = f"{n.name} ({column_of[id(n)]})"
    if not tree.name:
        taken = {n.name for n in tree.traverse()}
        tree.name = next(n for n in ("root", "all cells", "root (levels)") if n not in taken)
    return Hierarchy(tree)
