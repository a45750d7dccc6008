"""Plots (matplotlib; return the Axes, ``save=`` a file like scanpy)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np

from .hierarchy import Hierarchy

__all__ = ["branch_points", "hierarchy", "synthetic_vs_real", "transmutation"]


def synthetic_vs_real(
    adata: ad.AnnData,
    syn: ad.AnnData,
    *,
    groupby: str,
    key: str = "scbranch",
    components: tuple[int, int] = (0, 1),
    save: str | Path | None = None,
    show: bool = False,
):
    """Real and synthetic cells side by side in the model space's first two components, colored by type.

    Both panels share axes and colors, so a type's synthetic cloud sits where its real cloud does.
    Returns the two Axes.
    """
    basis = f"X_{key}"
    for a, name in ((adata, "adata"), (syn, "syn")):
        if basis not in a.obsm:
            msg = f"{name}.obsm has no {basis!r}; run scbranch.tl.fit / scbranch.tl.generate first"
            raise KeyError(msg)
    types = list(dict.fromkeys(list(adata.obs[groupby].astype(str).unique()) + list(syn.obs[groupby].astype(str))))
    cmap = plt.get_cmap("tab20" if len(types) > 10 else "tab10")
    colors = {t: cmap(i % cmap.N) for i, t in enumerate(types)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharex=True, sharey=True)
    i, j = components
    for ax, a, title in ((axes[0], adata, "real"), (axes[1], syn, "synthetic")):
        z, lab = a.obsm[basis], a.obs[groupby].astype(str).to_numpy()
        for t in types:
            m = lab == t
            if m.any():
                ax.scatter(z[m, i], z[m, j], s=6, alpha=0.7, color=colors[t], label=f"{t} ({m.sum()})", rasterized=True)
        ax.set_title(f"{title} cells ({a.n_obs})")
        ax.set_xlabel(f"scbranch {i + 1}")
    axes[0].set_ylabel(f"scbranch {j + 1}")
    axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _finish(fig, save, show)
    return axes


def _finish(fig, save, show):
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    if show:
        plt.show()


def _uns(adata: ad.AnnData, key: str) -> dict:
    if key not in adata.uns or "hierarchy" not in adata.uns[key]:
        msg = f"adata.uns[{key!r}] has no hierarchy; run scbranch.tl.fit first"
        raise KeyError(msg)
    return adata.uns[key]


def hierarchy(adata: ad.AnnData, *, key: str = "scbranch", ax=None, save: str | Path | None = None,
              show: bool = False):
    """The cell-type tree on a diffusion-time axis: leaves (with cell counts) at t=0, each internal node at
    its branch time, the root's shared branch up to t=1. Nodes where the tree disagrees with the data are red.
    Returns the Axes."""
    uns = _uns(adata, key)
    tree = Hierarchy.from_newick(uns["hierarchy"])
    groupby = uns["params"]["groupby"]
    counts = adata.obs[groupby].astype(str).value_counts()
    bp = uns.get("branch_points")
    conflicts = set(bp.loc[bp["conflict"].astype(str) != "", "node"]) if bp is not None and "conflict" in bp else set()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.4 * len(tree.leaves) + 1.5))
    y = {}
    for i, leaf in enumerate(tree.leaves):
        y[leaf] = float(i)

    def place(node) -> float:
        if node.is_leaf:
            return y[node.name]
        ys = [place(c) for c in node.children]
        y[node.name] = float(np.mean(ys))
        color = "crimson" if node.name in conflicts else "0.2"
        ax.plot([node.time, node.time], [min(ys), max(ys)], color=color, lw=1.5)
        for c, yc in zip(node.children, ys):
            ax.plot([c.time, node.time], [yc, yc], color="0.2", lw=1.5)
        ax.scatter([node.time], [y[node.name]], color=color, s=18, zorder=3)
        ax.annotate(node.name, (node.time, y[node.name]), xytext=(4, 3), textcoords="offset points", fontsize=7,
                    color=color)
        return y[node.name]

    place(tree.root)
    ax.plot([tree.root.time, 1.0], [y[tree.root.name]] * 2, color="0.2", lw=1.5, ls="--")
    ax.set_yticks([y[leaf] for leaf in tree.leaves])
    ax.set_yticklabels([f"{leaf} ({counts.get(leaf, 0)})" for leaf in tree.leaves], fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("diffusion time t (branch point: types indistinguishable from here on)")
    ax.set_title("cell-type hierarchy" + (f" — {len(conflicts)} conflict(s) with the data" if conflicts else ""))
    ax.spines[["top", "right"]].set_visible(False)
    _finish(ax.figure, save, show)
    return ax


def branch_points(adata: ad.AnnData, *, key: str = "scbranch", ax=None, save: str | Path | None = None,
                  show: bool = False):
    """The separation statistic vs diffusion time for each internal node (its latest-merging pair of types),
    with the threshold; the node's branch time is where its curve crosses it. Returns the Axes."""
    uns = _uns(adata, key)
    if "separation" not in uns:
        msg = "no separation curves: branch times were given with the tree, not calibrated from data"
        raise KeyError(msg)
    sep, bp = uns["separation"], uns["branch_points"].set_index("node")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("tab10")
    for i, node in enumerate(sep["node"]):
        color = cmap(i % 10)
        ax.plot(sep["time"], np.maximum(sep["statistic"][i], 1e-3), color=color, lw=1.2,
                label=f"{node}: {sep['pair'][i]}" if "pair" in sep else node)
        ax.axvline(float(bp.loc[node, "time"]), color=color, lw=0.8, ls=":")
    ax.axhline(float(sep["threshold"][0][0]), color="k", lw=1, ls="--", label="threshold (level 0.05)")
    ax.set_yscale("log")
    ax.set_xlabel("diffusion time t")
    ax.set_ylabel("separation statistic (noised mean shift / null sd)")
    ax.legend(fontsize=6, loc="upper right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    _finish(ax.figure, save, show)
    return ax


def transmutation(adata: ad.AnnData, model, *, key: str = "scbranch_transmuted", n_markers: int = 6,
                  save: str | Path | None = None, show: bool = False):
    """Source, transmuted and target cells in the model space, and the mean expression of the genes most
    up in the target vs the source (real cells) for each group. Returns the two Axes."""
    if key not in adata.uns or key not in adata.obsm:
        msg = f"no transmutation under {key!r}; run scbranch.tl.transmute first"
        raise KeyError(msg)
    info, groupby = adata.uns[key], model.groupby
    labels = adata.obs[groupby].astype(str).to_numpy()
    src, tgt = labels == info["source"], labels == info["target"]
    z_real, z_tr = model.get_latent(adata), adata.obsm[key][src]
    x_real = model.get_lognorm(adata)
    x_tr = model.to_genes(z_tr, [info["target"]] * len(z_tr))
    up = x_real[tgt].mean(0) - x_real[src].mean(0)
    genes = np.argsort(-up)[:n_markers]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.2]})
    ax = axes[0]
    ax.scatter(z_real[~(src | tgt), 0], z_real[~(src | tgt), 1], s=4, color="0.85", label="other cells")
    ax.scatter(z_real[src, 0], z_real[src, 1], s=8, color="tab:blue", label=f"source: {info['source']}")
    ax.scatter(z_real[tgt, 0], z_real[tgt, 1], s=8, color="tab:green", label=f"target: {info['target']}")
    ax.scatter(z_tr[:, 0], z_tr[:, 1], s=8, color="tab:red", marker="x", label="transmuted")
    ax.set_xlabel("scbranch 1")
    ax.set_ylabel("scbranch 2")
    ax.set_title(f"transmutation via t = {info['time']:.2f}")
    ax.legend(fontsize=7, frameon=False)
    ax = axes[1]
    width = 0.27
    pos = np.arange(len(genes))
    for k, (vals, name, color) in enumerate(((x_real[src], "source", "tab:blue"), (x_tr, "transmuted", "tab:red"),
                                             (x_real[tgt], "target", "tab:green"))):
        ax.bar(pos + (k - 1) * width, vals[:, genes].mean(0), width, color=color, label=name)
    ax.set_xticks(pos)
    ax.set_xticklabels(np.asarray(model.var_names)[genes], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("mean log-normalized expression")
    ax.set_title(f"top {len(genes)} genes up in {info['target']} vs {info['source']}")
    ax.legend(fontsize=7, frameon=False)
    _finish(fig, save, show)
    return axes
