"""What ``generate`` is asked for → how many cells of each leaf type, and which request each cell answers.

A request names cell types (leaves) or internal nodes of the hierarchy (``{"lymphocyte": 500}``: Cell Ontology
names with ``hierarchy="cl"``, node names of a given tree, ``n3``-style names of a data tree). A node's cells
are split over its leaf types by a multinomial draw with the types' training proportions (or ``proportions``),
and all of them are then generated in one tree walk, so the node's upstream branch is shared as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import _logging as logg


@dataclass
class Plan:
    """Cells per leaf type, and the (request, leaf type, n) triples in the order the cells are laid out."""

    per_type: dict[str, int]
    rows: list[tuple[str, str, int]]

    @property
    def has_nodes(self) -> bool:
        return any(asked != leaf for asked, leaf, _ in self.rows)


def _counts(n_cells, keys) -> dict[str, int]:
    req = dict(n_cells) if isinstance(n_cells, Mapping) else dict.fromkeys(keys, n_cells)
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in req.values()):
        msg = f"n_cells must be whole numbers of cells (an int, or {{type or node: int}}); got {n_cells!r}"
        raise TypeError(msg)
    req = {str(k): int(v) for k, v in req.items()}
    if any(v < 0 for v in req.values()) or sum(req.values()) == 0:
        msg = f"n_cells must be non-negative and ask for at least one cell; got {n_cells}"
        raise ValueError(msg)
    return req


def _weights(model, node: str, leaves: list[str], proportions: Mapping | None) -> np.ndarray:
    if proportions is not None:
        unknown = sorted(set(map(str, proportions)) - set(leaves))
        if unknown:
            msg = f"proportions name types that are not below {node!r}: {unknown}; its types are {leaves}"
            raise KeyError(msg)
        w = np.array([float(proportions.get(t, 0.0)) for t in leaves])
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            msg = f"proportions must be non-negative numbers, not all zero; got {dict(proportions)}"
            raise ValueError(msg)
        return w / w.sum()
    counts = model.state.type_counts
    if counts is None:  # saved before type counts were kept
        logg.warning(f"the model holds no training proportions: {node!r}'s types are drawn equally often")
        return np.full(len(leaves), 1 / len(leaves))
    w = np.array([float(counts.get(t, 0)) for t in leaves])
    return w / w.sum()


def plan(model, n_cells: int | Mapping[str, int], *, proportions: Mapping | None = None,
         random_state: int = 0) -> Plan:
    """Resolve ``n_cells`` (an int for every type, or ``{type or node: n}``) against the model's hierarchy."""
    if proportions is not None and not isinstance(proportions, Mapping):  # a string would be read letter by letter
        msg = (f"proportions must be a {{type: weight}} mapping, got {proportions!r}; for equal shares pass "
               "proportions=dict.fromkeys(types, 1)")
        raise TypeError(msg)
    req = _counts(n_cells, model.types)
    nodes = {n.name: n for n in model.hierarchy.internal_nodes}
    unknown = sorted(set(req) - set(model.types) - set(nodes))
    if unknown:
        msg = (f"unknown cell types or nodes {unknown}; the model knows the types {model.types} and the nodes "
               f"{sorted(nodes)}")
        raise KeyError(msg)
    if proportions is not None and not any(k in nodes for k in req):
        msg = "proportions= applies to internal nodes of the hierarchy; n_cells asks for none"
        raise ValueError(msg)
    rng = np.random.default_rng(random_state)
    rows = []
    for asked, n in req.items():
        if n == 0:
            continue
        if asked in model.types:
            rows.append((asked, asked, n))
            continue
        leaves = [t for t in nodes[asked].leaves() if t in model.types]
        drawn = rng.multinomial(n, _weights(model, asked, leaves, proportions))
        rows += [(asked, t, int(k)) for t, k in zip(leaves, drawn) if k > 0]
    per_type: dict[str, int] = {}
    for _, leaf, n in rows:
        per_type[leaf] = per_type.get(leaf, 0) + n
    return Plan(per_type, rows)
