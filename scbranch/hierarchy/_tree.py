"""The one hierarchy type: a rooted tree whose leaves are cell types and whose internal nodes carry branch times.

A node's *time* is the diffusion time at which its children's noised distributions become indistinguishable
(leaves: 0). Times never increase from root to leaf. Every node owns one *branch*, the time interval
[node.time, parent.time) (root: [root.time, 1]) times the set of types below it; the network learns one
score function per branch.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# ete3 imports the standard library's `cgi`, deprecated since 3.11 (removed in 3.13, where the legacy-cgi package
# stands in): a DeprecationWarning at import that fails the test suites of projects running pytest with
# `filterwarnings = error` (scverse's template does). Only that warning is silenced, only for this import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*'cgi' is deprecated", category=DeprecationWarning)
    import ete3


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)
    time: float | None = None  # branch time; None until calibrated from data

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def traverse(self, order: str = "pre") -> Iterator[Node]:
        if order == "pre":
            yield self
        for child in self.children:
            yield from child.traverse(order)
        if order == "post":
            yield self

    def leaves(self) -> list[str]:
        return [n.name for n in self.traverse() if n.is_leaf]


def fresh_names(taken: set[str], prefix: str = "n") -> Iterator[str]:
    """``n0, n1, …`` for unnamed internal nodes, skipping names already ``taken`` (a cell type may be "n1")."""
    i = 0
    while True:
        if f"{prefix}{i}" not in taken:
            yield f"{prefix}{i}"
        i += 1


class Hierarchy:
    """A cell-type tree. Build it with :meth:`from_newick`, :meth:`from_dict` or from data (:func:`from_data`)."""

    def __init__(self, root: Node):
        root = _collapse_unary(root)
        names = [n.name for n in root.traverse()]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            msg = f"node names must be unique in a hierarchy; repeated: {dup}"
            raise ValueError(msg)
        for node in root.traverse():
            if node.is_leaf:
                node.time = 0.0
            if node.children and node.time == 0 and any(c.is_leaf for c in node.children):
                msg = (f"node {node.name!r} has branch time 0: its types {node.leaves()} would be generated as one "
                       "(zero-length branches); give it a positive time or merge the types")
                raise ValueError(msg)
            for child in node.children:
                if node.time is not None and child.time is not None and child.time > node.time + 1e-9:
                    msg = (f"branch times must not increase from root to leaf: {child.name!r} ({child.time:.3g}) > "
                           f"its parent {node.name!r} ({node.time:.3g})")
                    raise ValueError(msg)
        if root.time is not None and not 0 <= root.time <= 1:
            msg = f"branch times are diffusion times in [0, 1]; the root has {root.time:.3g}"
            raise ValueError(msg)
        self.root = root

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def leaves(self) -> list[str]:
        return self.root.leaves()

    @property
    def internal_nodes(self) -> list[Node]:
        return [n for n in self.root.traverse() if not n.is_leaf]

    @property
    def has_times(self) -> bool:
        return all(n.time is not None for n in self.root.traverse())

    def node(self, name: str) -> Node:
        for n in self.root.traverse():
            if n.name == name:
                return n
        msg = f"no node named {name!r} in the hierarchy"
        raise KeyError(msg)

    def __repr__(self) -> str:
        return f"Hierarchy({len(self.leaves)} types, {len(self.internal_nodes)} internal nodes): {self.to_newick()}"

    # ---- tree surgery ------------------------------------------------------------------------------------------
    def ancestors(self, name: str) -> list[str]:
        """Names of the nodes above ``name``, nearest first (a ``KeyError`` if there is no such node)."""
        self.node(name)
        path: list[str] = []

        def walk(node, trail):
            if node.name == name:
                path.extend(reversed(trail))
                return True
            return any(walk(c, [*trail, node.name]) for c in node.children)

        walk(self.root, [])
        return path

    def lca(self, *names: str) -> str:
        """The lowest common ancestor of ``names`` (a name itself when the others lie below it)."""
        lines = [[n, *self.ancestors(n)] for n in names]
        common = set(lines[0]).intersection(*lines[1:])
        return next(n for n in lines[0] if n in common)

    def insert_leaf(self, new: str, anchor: str, time: float) -> tuple[Hierarchy, str, str]:
        """A copy with leaf ``new`` cut into ``anchor``'s path at ``time``: a new node there, holding the subtree
        below the cut and the new leaf. Returns (new tree, name of the new node, name of the node whose branch
        was cut). Needs branch times."""
        if new in {n.name for n in self.root.traverse()}:
            msg = f"{new!r} is already a node of the hierarchy"
            raise ValueError(msg)
        if anchor not in self.leaves or not self.has_times:
            msg = f"insert_leaf needs a timed hierarchy and a leaf anchor; got anchor {anchor!r}"
            raise ValueError(msg)
        tree = self.copy()
        names = {n.name for n in tree.root.traverse()}
        name = f"{new} + {anchor}"
        while name in names:
            name += "'"
        parent, node = None, tree.root  # down from the root to the node whose branch holds `time`
        while node.time > time:
            parent = node
            node = next(c for c in node.children if anchor in c.leaves())
        cut = Node(name, [node, Node(new, time=0.0)], time=max(time, node.time))
        if parent is None:
            tree.root = cut
        else:
            parent.children[parent.children.index(node)] = cut
        return Hierarchy(tree.root), name, node.name

    # ---- readers ----------------------------------------------------------------------------------------------
    @classmethod
    def from_newick(cls, newick: str | os.PathLike) -> Hierarchy:
        """Read a Newick string or file (ete3). Branch lengths, if all given, are read as branch times
        (the tree must then be ultrametric: a node's time is its distance to its leaves)."""
        text = str(newick)
        if os.path.exists(text):
            with open(text) as fh:
                text = fh.read().strip()
        elif "(" not in text:  # a Newick tree of several types has parentheses: this was meant as a file name
            msg = f"hierarchy {text!r} is neither a Newick string nor an existing file: file not found"
            raise FileNotFoundError(msg)
        try:
            tree = ete3.Tree(text, format=1, quoted_node_names=True)
        except Exception as err:  # ete3 raises its own NewickError; re-raise with the input for context
            msg = f"could not parse Newick {text[:80]!r}: {err}"
            raise ValueError(msg) from err
        n_lengths = re.sub(r"\"[^\"]*\"|'[^']*'", "", text).count(":")  # colons outside quoted names
        n_branches = sum(1 for t in tree.traverse() if not t.is_root())
        if 0 < n_lengths < n_branches:  # ete3 would give the others length 1: a tree the user never wrote
            msg = (f"the Newick gives branch lengths for {n_lengths} of its {n_branches} branches; give all of them "
                   "(branch times) or none (times calibrated from the data)")
            raise ValueError(msg)
        names = fresh_names({t.name for t in tree.traverse() if t.name})

        def convert(t) -> Node:
            name = t.name or (next(names) if t.children else "")
            if not name:
                msg = "every leaf of a Newick hierarchy needs a name (the cell type)"
                raise ValueError(msg)
            node = Node(name, [convert(c) for c in t.children])
            if n_lengths and t.children:
                depths = [t.get_distance(leaf) for leaf in t.get_leaves()]
                if max(depths) - min(depths) > 1e-6 * max(1.0, max(depths)):
                    msg = (f"the Newick's branch lengths are not ultrametric: below {name!r} leaves lie at distances "
                           f"{min(depths):.4g} to {max(depths):.4g}; branch times need every leaf at time 0")
                    raise ValueError(msg)
                node.time = float(depths[0])
            return node

        return cls(convert(tree))

    @classmethod
    def from_dict(cls, tree: Mapping, root_name: str = "root") -> Hierarchy:
        """Read a nested dict: ``{"lymphoid": {"T": ["CD4 T", "CD8 T"], "B": None}, "myeloid": [...]}``.

        A value is a dict (an internal node), a list/tuple of leaves (names or dicts), or ``None`` (a leaf).
        """

        def convert(name: str, value) -> Node:
            if value is None:
                return Node(str(name))
            if isinstance(value, Mapping):
                return Node(str(name), [convert(k, v) for k, v in value.items()])
            if isinstance(value, Sequence) and not isinstance(value, str):
                kids = []
                for item in value:
                    if isinstance(item, Mapping):
                        kids.extend(convert(k, v) for k, v in item.items())
                    else:
                        kids.append(Node(str(item)))
                return Node(str(name), kids)
            msg = f"cannot read hierarchy entry {name!r}: {value!r} (use a dict, a list of names, or None)"
            raise TypeError(msg)

        return cls(convert(root_name, dict(tree)))

    # ---- writers ----------------------------------------------------------------------------------------------
    def to_newick(self) -> str:
        """Newick with quoted names and branch times as lengths (parent time - child time), if calibrated."""
        timed = self.has_times

        def fmt(node: Node, parent_time: float | None) -> str:
            name = '"' + node.name.replace('"', "'") + '"'
            inner = "(" + ",".join(fmt(c, node.time) for c in node.children) + ")" if node.children else ""
            length = f":{parent_time - node.time:.10g}" if timed and parent_time is not None else ""
            return inner + name + length

        return fmt(self.root, None) + ";"

    def to_table(self) -> pd.DataFrame:
        """Tidy parent/child table: one row per node (root's parent is empty) with its branch time."""
        rows = [(self.root.name, "", self.root.time)]
        for node in self.root.traverse():
            rows.extend((c.name, node.name, c.time) for c in node.children)
        return pd.DataFrame(rows, columns=["node", "parent", "time"])

    @classmethod
    def from_table(cls, table: pd.DataFrame, *, child: str = "node", parent: str = "parent",
                   time: str | None = "time") -> Hierarchy:
        """Read a parent/child table (any two columns). A row with an empty/NaN parent, or a parent that is
        never a child, is a root; several roots get a common root ``"root"``. ``time`` is optional."""
        missing = [c for c in (child, parent) if c not in table.columns]
        if missing:
            msg = f"columns {missing} not in the table; it has {list(table.columns)}"
            raise KeyError(msg)
        use_time = time is not None and time in table.columns
        nodes: dict[str, Node] = {}
        parent_of: dict[str, str] = {}
        for row in table.itertuples(index=False):
            c, p = str(getattr(row, child)), getattr(row, parent)
            t = getattr(row, time) if use_time else None
            nodes.setdefault(c, Node(c))
            if use_time and t is not None and not pd.isna(t):
                nodes[c].time = float(t)
            if p is not None and not pd.isna(p) and str(p) != "":
                p = str(p)
                if c in parent_of and parent_of[c] != p:
                    msg = f"node {c!r} has two parents ({parent_of[c]!r}, {p!r}); a hierarchy must be a tree"
                    raise ValueError(msg)
                parent_of[c] = p
                nodes.setdefault(p, Node(p))
        for start in parent_of:  # a loop of parents would leave its nodes out of the tree without a word
            seen, node = {start}, start
            while node in parent_of:
                node = parent_of[node]
                if node in seen:
                    msg = f"the table's parent links form a cycle through {node!r}; a hierarchy must be a tree"
                    raise ValueError(msg)
                seen.add(node)
        for c, p in parent_of.items():
            nodes[p].children.append(nodes[c])
        roots = [n for name, n in nodes.items() if name not in parent_of]
        if not roots:
            msg = "the table has a cycle: no node without a parent"
            raise ValueError(msg)
        root = roots[0] if len(roots) == 1 else Node("root", roots)
        return cls(root)

    def to_dict(self) -> dict:
        def conv(node: Node):
            return None if node.is_leaf else {c.name: conv(c) for c in node.children}

        return {c.name: conv(c) for c in self.root.children}

    def copy(self) -> Hierarchy:
        return Hierarchy(_copy(self.root))

    # ---- restructuring ------------------------------------------------------------------------------------------
    def prune(self, types: Sequence[str]) -> Hierarchy:
        """Keep only the leaves in ``types`` (all must be present), collapsing nodes left with one child."""
        missing = sorted(set(types) - set(self.leaves))
        if missing:
            msg = f"cell types not in the hierarchy's leaves: {missing}; its leaves are {self.leaves}"
            raise ValueError(msg)
        keep = set(types)

        def walk(node: Node) -> Node | None:
            if node.is_leaf:
                return Node(node.name, time=0.0) if node.name in keep else None
            kids = [k for k in (walk(c) for c in node.children) if k is not None]
            return Node(node.name, kids, node.time) if kids else None

        return Hierarchy(walk(self.root))

    # ---- branches ---------------------------------------------------------------------------------------------
    def branches(self) -> pd.DataFrame:
        """One row per branch with positive length: id, node, t_start, t_end, the types it holds."""
        if not self.has_times:
            msg = "the hierarchy has no branch times yet; calibrate them from data first"
            raise ValueError(msg)
        rows = []

        def walk(node: Node, t_end: float):
            if t_end - node.time > 1e-9:
                rows.append((node.name, float(node.time), float(t_end), node.leaves()))
            for c in node.children:
                walk(c, node.time)

        walk(self.root, 1.0)
        df = pd.DataFrame(rows, columns=["node", "t_start", "t_end", "cell_types"])
        df.insert(0, "branch", np.arange(len(df)))
        return df

    def type_paths(self, types: Sequence[str]) -> list[list[tuple[int, float]]]:
        """For each type (in ``types`` order) its branches from leaf to root as (branch id, t_start)."""
        df = self.branches()
        return [[(int(r.branch), float(r.t_start)) for r in df.itertuples() if ty in r.cell_types] for ty in types]


def _copy(node: Node) -> Node:
    return Node(node.name, [_copy(c) for c in node.children], node.time)


def _collapse_unary(node: Node) -> Node:
    """Replace internal nodes that have a single child by that child (they add no branch point)."""
    while len(node.children) == 1:
        node = node.children[0]
    return Node(node.name, [_collapse_unary(c) for c in node.children], node.time)
