"""Cells drawn from a known cell-type tree (nested Gaussian clusters → Poisson counts), for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd

from .hierarchy import Hierarchy

__all__ = ["balanced_tree", "simulate_tree"]


def balanced_tree(n_types: int) -> dict:
    """A nested dict with ``n_types`` leaves ``t0 … t{K-1}``, split in halves recursively."""
    def build(names: list[str]):
        if len(names) == 1:
            return None
        mid = len(names) // 2
        left, right = names[:mid], names[mid:]
        return {f"({'+'.join(left)})" if len(left) > 1 else left[0]: build(left),
                f"({'+'.join(right)})" if len(right) > 1 else right[0]: build(right)}

    return build([f"t{i}" for i in range(n_types)])


def simulate_tree(
    tree: Mapping | Hierarchy | None = None,
    *,
    n_cells: int | Mapping[str, int] = 200,
    n_genes: int = 200,
    n_latent: int = 10,
    root_scale: float = 6.0,
    decay: float = 0.5,
    library_size: float = 2000.0,
    random_state: int = 0,
) -> ad.AnnData:
    """Simulate count data whose cell types follow ``tree``.

    Every node adds a Gaussian offset of scale ``root_scale * decay**depth`` (depth 0 = the root's children)
    to the latent mean of all types below it; cells are ``N(mean, I)`` in a ``n_latent``-dim latent space,
    mapped to genes by a random loading and drawn as Poisson counts. Deeper splits are therefore smaller:
    the true branch times order as the depths. Returns counts in ``.X``, labels in ``.obs["cell_type"]``,
    the true tree as Newick in ``.uns["true_hierarchy"]`` and the latent cells in ``.obsm["X_latent"]``.
    """
    rng = np.random.default_rng(random_state)
    h = tree if isinstance(tree, Hierarchy) else Hierarchy.from_dict(tree if tree is not None else balanced_tree(4))
    types = h.leaves
    sizes = dict.fromkeys(types, n_cells) if isinstance(n_cells, int) else {t: int(n_cells[t]) for t in types}
    means: dict[str, np.ndarray] = {}

    def walk(node, mean, depth):
        if node.is_leaf:
            means[node.name] = mean
            return
        # orthonormal directions: siblings at depth d sit exactly root_scale·decay^d·√2 apart
        dirs, _ = np.linalg.qr(rng.normal(size=(n_latent, len(node.children))))
        for child, direction in zip(node.children, dirs.T):
            walk(child, mean + root_scale * decay**depth * direction, depth + 1)

    walk(h.root, np.zeros(n_latent), 0)
    z = np.concatenate([means[t] + rng.normal(size=(sizes[t], n_latent)) for t in types])
    labels = np.concatenate([[t] * sizes[t] for t in types])
    loading = rng.normal(scale=0.4 / np.sqrt(n_latent), size=(n_latent, n_genes))
    base = rng.normal(size=n_genes)
    logits = base + z @ loading
    rate = np.exp(logits - logits.max(1, keepdims=True))
    rate = rate / rate.sum(1, keepdims=True) * library_size
    counts = rng.poisson(rate).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels, categories=types)},
                       index=[f"cell{i}" for i in range(len(labels))])
    adata = ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    adata.obsm["X_latent"] = z.astype(np.float32)
    adata.uns["true_hierarchy"] = h.to_newick()
    return adata
