"""Plots (matplotlib), with scanpy's conventions and one argument order: the AnnData first, then what is
compared with it (synthetic or transmuted cells, the model), then keyword-only options, ending with
``show=None`` (scanpy's ``sc.settings.autoshow``; not when saving), ``save=`` by scanpy's rule (``True`` or a
suffix such as ``"_pbmc.png"`` → ``sc.settings.figdir/<plot><suffix>``; a :class:`pathlib.Path` is written
exactly there), ``ax=`` and ``return_fig=``. ``groupby`` defaults to the one the model was fitted with (recorded
in ``.uns`` by ``fit`` and ``generate``). Every plot returns its Axes (or the Figure with ``return_fig``)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import _anndata, _normalize
from . import _logging as logg
from .hierarchy import Hierarchy
from .metrics import _scanpy_quiet
from .model import lognorm_of

__all__ = ["branch_points", "hierarchy", "realism", "synthetic_vs_real", "transmutation"]


def synthetic_vs_real(
    adata: ad.AnnData,
    syn: ad.AnnData,
    *,
    groupby: str | None = None,
    key: str = "scbranch",
    basis: str | None = None,
    components: tuple[int, int] = (0, 1),
    show: bool | None = None,
    save: bool | str | Path | None = None,
    return_fig: bool = False,
):
    """Real and synthetic cells side by side, colored by type.

    Parameters
    ----------
    adata, syn
        Real cells and synthetic cells (:func:`scbranch.tl.generate`).
    groupby
        Cell-type column of both (default: the model's, as recorded in ``syn.uns`` or ``adata.uns``).
    key
        Model key: by default the cells are shown in ``.obsm[f"X_{key}"]``, the model space.
    basis
        Another embedding both hold (e.g. ``"umap"`` or ``"X_umap"``, after embedding real and synthetic cells
        together with scanpy), instead of the model space.
    components
        The two columns of the embedding to show.
    save, show, return_fig
        As in scanpy (module docstring).

    Both panels share axes and colors (the dataset's ``.uns[f"{groupby}_colors"]`` when it has them), so a
    type's synthetic cloud sits where its real cloud does. Returns the two Axes (the Figure with ``return_fig``).
    """
    import scanpy as sc
    from matplotlib.colors import to_hex

    groupby = _groupby(groupby, key, syn, adata)
    obsm_key = f"X_{key}" if basis is None else (basis if basis.startswith("X_") else f"X_{basis}")
    label = "scbranch" if basis is None else obsm_key[2:].upper()
    for a, name in ((adata, "adata"), (syn, "syn")):
        if obsm_key not in a.obsm:
            hint = "run scbranch.tl.fit / scbranch.tl.generate first" if basis is None else "embed both first"
            msg = f"{name}.obsm has no {obsm_key!r}; {hint}"
            raise KeyError(msg)
    types = list(dict.fromkeys(list(adata.obs[groupby].astype(str).unique()) + list(syn.obs[groupby].astype(str))))
    cmap = plt.get_cmap("tab20" if len(types) > 10 else "tab10")
    colors = {t: cmap(i % cmap.N) for i, t in enumerate(types)}
    col = adata.obs[groupby]
    given = adata.uns.get(f"{groupby}_colors")
    if given is not None and hasattr(col, "cat") and len(given) == len(col.cat.categories):
        colors.update({str(c): k for c, k in zip(col.cat.categories, given)})
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharex=True, sharey=True)
    i, j = components
    for ax, a, title in ((axes[0], adata, "real"), (axes[1], syn, "synthetic")):
        # drawn by scanpy's embedding plot, one panel per origin on shared axes and one shared palette
        part = ad.AnnData(obs=pd.DataFrame({groupby: pd.Categorical(a.obs[groupby].astype(str), categories=types)},
                                           index=pd.RangeIndex(a.n_obs).astype(str)))
        part.obsm["X_panel"] = np.asarray(a.obsm[obsm_key])[:, [i, j]]
        part.uns[f"{groupby}_colors"] = [to_hex(colors[t]) for t in types]
        sc.pl.embedding(part, basis="X_panel", color=groupby, ax=ax, show=False, legend_loc="none", size=30,
                        frameon=True, title=f"{title} cells ({a.n_obs})")
        ax.set_xlabel(f"{label} {i + 1}")
        ax.set_ylabel("")
        ax.spines[["top", "right"]].set_visible(False)
        for t in types:  # legend handles (scanpy's own legend is per panel; one for both is shared below)
            ax.scatter([], [], s=12, color=colors[t], label=t)
    axes[0].set_ylabel(f"{label} {j + 1}")
    handles, names = axes[0].get_legend_handles_labels()  # one legend for both panels (colours are shared)
    seen = dict(zip(names, handles))
    seen.update(dict(zip(*axes[1].get_legend_handles_labels()[::-1])))
    fig.legend([seen[t] for t in types if t in seen], [t for t in types if t in seen], fontsize=7, markerscale=2,
               loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    _finish(fig, save, show, "synthetic_vs_real")
    return fig if return_fig else axes


def _groupby(groupby: str | None, key: str, *adatas) -> str:
    """``groupby`` as given, else the model's: recorded by ``generate`` (``.uns[key]["generate"]``) or ``fit``
    (``.uns[key]["params"]``)."""
    for a in adatas if groupby is None else ():
        rec = a.uns.get(key, {})
        found = (rec.get("generate", {}) or {}).get("groupby") or (rec.get("params", {}) or {}).get("groupby")
        if found:
            groupby = str(found)
            break
    for a in adatas:
        if groupby is None or groupby not in a.obs:
            msg = f"pass groupby=: no cell-type column {groupby!r} in .obs (none recorded in .uns[{key!r}])"
            raise KeyError(msg)
    return groupby


def _finish(fig, save, show, name: str):
    """Save (scanpy's figdir rule for ``True``/str, exactly there for a Path) and show as scanpy does:
    ``show=None`` follows ``sc.settings.autoshow``, except when saving."""
    fig.tight_layout()
    if save is not None and save is not False:
        if isinstance(save, Path):
            path = save
        else:
            import scanpy as sc

            suffix = "" if save is True else str(save)
            ext = Path(suffix).suffix.lstrip(".")
            if ext not in ("png", "pdf", "svg", "jpg", "jpeg", "tif", "tiff", "eps", "ps"):
                ext = ""
            stem = suffix[: -len(ext) - 1] if ext else suffix
            path = Path(sc.settings.figdir) / f"{name}{stem}.{ext or sc.settings.file_format_figs}"
            path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    if show is None:
        import scanpy as sc

        show = sc.settings.autoshow and (save is None or save is False)
    if show:
        plt.show()


def _uns(adata: ad.AnnData, key: str) -> dict:
    if key not in adata.uns or "hierarchy" not in adata.uns[key]:
        msg = f"adata.uns[{key!r}] has no hierarchy; run scbranch.tl.fit first"
        raise KeyError(msg)
    return adata.uns[key]


def hierarchy(adata: ad.AnnData, *, key: str = "scbranch", show: bool | None = None,
              save: bool | str | Path | None = None, ax=None, return_fig: bool = False):
    """The cell-type tree on a diffusion-time axis: leaves (with cell counts) at t=0, each internal node at
    its branch time, the root's shared branch up to t=1. Nodes where the tree disagrees with the data are red.
    Returns the Axes."""
    uns = _uns(adata, key)
    tree = (Hierarchy.from_table(uns["hierarchy_table"]) if "hierarchy_table" in uns
            else Hierarchy.from_newick(uns["hierarchy"]))
    groupby = uns["params"]["groupby"]
    counts = adata.obs[groupby].astype(str).value_counts()
    bp = uns.get("branch_points")
    conflicts = set(bp.loc[bp["conflict"].astype(str) != "", "node"]) if bp is not None and "conflict" in bp else set()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.4 * len(tree.leaves) + 1.5))
    y = {leaf: float(i) for i, leaf in enumerate(tree.leaves)}
    labels = []

    def merged(node) -> tuple[list, list[str]]:
        """A node's children with zero-length internal children folded in (drawn as one node, names joined):
        ontology trees often put a term at its parent's time, which would stack two nodes on one spot."""
        kids, names = [], [node.name]
        for c in node.children:
            if not c.is_leaf and np.isclose(c.time, node.time):
                sub, sub_names = merged(c)
                kids += sub
                names += sub_names
            else:
                kids.append(c)
        return kids, names

    def place(node) -> float:
        if node.is_leaf:
            return y[node.name]
        kids, names = merged(node)
        ys = [place(c) for c in kids]
        y[node.name] = float(np.mean(ys))
        color = "crimson" if conflicts & set(names) else "0.2"
        ax.plot([node.time, node.time], [min(ys), max(ys)], color=color, lw=1.5)
        for c, yc in zip(kids, ys):
            ax.plot([c.time, node.time], [yc, yc], color="0.2", lw=1.5)
        ax.scatter([node.time], [y[node.name]], color=color, s=18, zorder=3)
        labels.append(ax.annotate(" = ".join(names), (node.time, y[node.name]), xytext=(4, 3),
                                  textcoords="offset points", fontsize=7, color=color))
        return y[node.name]

    place(tree.root)
    ax.plot([tree.root.time, 1.0], [y[tree.root.name]] * 2, color="0.2", lw=1.5, ls="--")
    ax.set_yticks([y[leaf] for leaf in tree.leaves])
    ax.set_yticklabels([f"{leaf} ({counts.get(leaf, 0)})" for leaf in tree.leaves], fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("diffusion time t (branch point: types indistinguishable from here on)")
    ax.set_title("cell-type hierarchy" + (f" — {len(conflicts)} conflict(s) with the data" if conflicts else ""))
    ax.spines[["top", "right"]].set_visible(False)
    _unoverlap(ax, labels)
    _finish(ax.figure, save, show, "hierarchy")
    return ax.figure if return_fig else ax


def _unoverlap(ax, texts, *, max_moves: int = 12) -> None:
    """Nudge annotations (offsets in points) down until none overlaps one placed before it (greedy, top first)."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for t in sorted(texts, key=lambda t: -t.xy[1]):
        for _ in range(max_moves):
            box = t.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(b) for b in placed):
                break
            x, yy = t.get_position()
            t.set_position((x, yy - 8))
        placed.append(t.get_window_extent(renderer))


def branch_points(adata: ad.AnnData, *, key: str = "scbranch", show: bool | None = None,
                  save: bool | str | Path | None = None, ax=None, return_fig: bool = False):
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
    _finish(ax.figure, save, show, "branch_points")
    return ax.figure if return_fig else ax


def transmutation(adata: ad.AnnData, transmuted: ad.AnnData, model, *, key: str = "scbranch", n_markers: int = 6,
                  show: bool | None = None, save: bool | str | Path | None = None, return_fig: bool = False):
    """Source, transmuted and target cells in the model space, and the mean expression of the genes most
    up in the target vs the source (real cells of ``adata``) for each group.

    ``transmuted`` is what :func:`scbranch.tl.transmute` returned (same ``key``). Returns the two Axes."""
    if key not in transmuted.uns or "transmute" not in transmuted.uns[key] or f"X_{key}" not in transmuted.obsm:
        msg = f"transmuted has no transmutation under {key!r}; pass what scbranch.tl.transmute returned"
        raise KeyError(msg)
    info, groupby = transmuted.uns[key]["transmute"], model.groupby
    labels = adata.obs[groupby].astype(str).to_numpy()
    src, tgt = labels == info["source"], labels == info["target"]
    z_real, z_tr = model.get_latent(adata), np.asarray(transmuted.obsm[f"X_{key}"])
    x_real = model.get_lognorm(adata)
    x_tr = lognorm_of(transmuted[:, model.var_names])  # .X holds counts for a model fitted on counts
    x_tr = np.asarray(x_tr.toarray() if hasattr(x_tr, "toarray") else x_tr)
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
    _finish(fig, save, show, "transmutation")
    return fig if return_fig else axes


def _real_markers(xr: np.ndarray, yr: np.ndarray, types: list[str], n_genes: int) -> list[int]:
    """Each type's top ``n_genes`` markers on the real cells (deduplicated), ranked as scanpy ranks them:
    ``sc.tl.rank_genes_groups`` (Wilcoxon, one type vs the rest; as ``metrics.marker_recovery`` does). A type
    of a single cell, which a test cannot rank, takes its largest mean differences instead."""
    import scanpy as sc

    sizes = pd.Series(yr).value_counts()
    ranked = [t for t in types if sizes.get(t, 0) >= 2]
    names: dict[str, list[int]] = {}
    if len(ranked) >= 2:
        a = ad.AnnData(xr, obs=pd.DataFrame({"type": pd.Categorical(yr)}, index=[str(i) for i in range(len(yr))]))
        a.var_names = [str(i) for i in range(xr.shape[1])]
        with _scanpy_quiet():
            sc.tl.rank_genes_groups(a, "type", groups=ranked, method="wilcoxon", use_raw=False,
                                    n_genes=min(xr.shape[1], 10 * n_genes + len(types) * n_genes))
        res = a.uns["rank_genes_groups"]["names"]
        names = {t: [int(g) for g in res[t]] for t in ranked}
    markers: list[int] = []
    for t in types:
        order = names.get(t)
        if order is None:
            m = yr == t
            rest = xr[~m].mean(0) if (~m).any() else np.zeros(xr.shape[1], np.float32)
            order = list(np.argsort(-(xr[m].mean(0) - rest), kind="stable"))
        markers += [g for g in order if g not in markers][:n_genes]
    return markers


def realism(
    adata: ad.AnnData,
    syn: ad.AnnData,
    *,
    groupby: str | None = None,
    n_genes: int = 3,
    layer: str | None = None,
    use_raw: bool = False,
    key: str = "scbranch",
    show: bool | None = None,
    save: bool | str | Path | None = None,
    ax=None,
    return_fig: bool = False,
):
    """Gene-level realism of synthetic cells, real and synthetic side by side.

    Left: a dot plot of each type's top ``n_genes`` marker genes (chosen on the real cells by
    ``sc.tl.rank_genes_groups``, Wilcoxon, one type vs the rest), with rows ``"T (real)"`` and ``"T (syn)"``
    interleaved per type; dot size = fraction of cells expressing (>0), color = mean expression on one shared
    scale. Right: per gene, mean expression vs
    fraction expressing over all cells, real and synthetic in two colors (synthetic cells without zeros sit on
    a flat line at the top).

    Parameters
    ----------
    adata
        Real cells: expression in ``.X``, ``.layers[layer]`` or ``.raw`` (``use_raw``); counts are
        log-normalized here (target sum 1e4, as scbranch normalizes them).
    syn
        Synthetic cells (e.g. from :func:`scbranch.tl.generate`); their log-normalized values (``.X``, or
        ``.layers["lognorm"]`` when ``.X`` holds counts); genes are matched to ``adata``'s by name.
    groupby
        Cell-type column of both ``.obs`` (default: the model's, as recorded in ``.uns[key]``).
    key
        The key ``fit``/``generate`` wrote under.
    ax
        Two Axes to draw in (default: a new figure).
    show
        ``plt.show()``; ``None``: scanpy's ``sc.settings.autoshow`` unless saving.
    save
        As in scanpy (``True`` or a suffix → ``sc.settings.figdir/realism<suffix>``; a Path: exactly there).
    return_fig
        Return the Figure instead of the two Axes.
    """
    from scipy import sparse

    groupby = _groupby(groupby, key, syn, adata)
    x_real, real_names = _anndata.get_matrix(adata, layer=layer, use_raw=use_raw)
    with logg.quiet():
        kind = _anndata.check_expression(x_real)
    if kind == "counts":  # normalized as scbranch normalizes counts, as the synthetic cells' lognorm layer is
        x_real = _normalize.to_lognorm(x_real, "counts")
    # match genes by name, in adata's order
    pos_syn = syn.var_names.get_indexer(real_names)
    keep = np.flatnonzero(pos_syn >= 0)
    if len(keep) == 0:
        msg = "adata and syn share no gene names"
        raise ValueError(msg)
    genes = np.asarray(real_names)[keep]

    def dense(x, cols):
        x = x[:, cols]
        return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float32)

    xr, xs = dense(x_real, keep), dense(lognorm_of(syn), pos_syn[keep])  # syn.X holds counts after counts
    yr, ys = adata.obs[groupby].astype(str).to_numpy(), syn.obs[groupby].astype(str).to_numpy()
    cats = adata.obs[groupby].cat.categories if hasattr(adata.obs[groupby], "cat") else pd.unique(yr)
    types = [str(t) for t in cats if (yr == str(t)).any()]

    markers = _real_markers(xr, yr, types, n_genes)
    rows, means, fracs = [], [], []
    for t in types:
        for x, y, side in ((xr, yr, "real"), (xs, ys, "syn")):
            sub = x[y == t][:, markers]
            rows.append(f"{t} ({side})")
            # a type the model did not generate gets an empty row (NaN draws no dot)
            means.append(sub.mean(0) if len(sub) else np.full(len(markers), np.nan))
            fracs.append((sub > 0).mean(0) if len(sub) else np.full(len(markers), np.nan))
    means, fracs = np.array(means), np.array(fracs)

    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 0.45 * len(markers) + 8), max(4.0, 0.3 * len(rows) + 1.5)),
                                 gridspec_kw={"width_ratios": [max(1.0, 0.12 * len(markers)), 1]})
    else:
        if len(ax) != 2:
            msg = f"ax must be two Axes, got {len(ax)}"
            raise ValueError(msg)
        axes = np.array(list(ax), dtype=object)
        fig = axes[0].figure
    left, right = axes
    gx, gy = np.meshgrid(np.arange(len(markers)), np.arange(len(rows)))
    finite = means[np.isfinite(means)]
    sc_ = left.scatter(gx.ravel(), gy.ravel(), s=np.nan_to_num(fracs.ravel()) * 180 + 1e-3, c=means.ravel(),
                       cmap="Reds", vmin=0, vmax=float(finite.max()) if finite.size and finite.max() > 0 else 1,
                       edgecolors="0.3", linewidths=0.3)
    fig.colorbar(sc_, ax=left, label="mean expression", shrink=0.6)
    left.set_xticks(np.arange(len(markers)))
    left.set_xticklabels(genes[markers], rotation=90, fontsize=8)
    left.set_yticks(np.arange(len(rows)))
    left.set_yticklabels(rows, fontsize=8)
    left.set_xlim(-0.6, len(markers) - 0.4)
    left.set_ylim(len(rows) - 0.5, -0.5)
    for i in range(2, len(rows), 2):  # separate types
        left.axhline(i - 0.5, color="0.85", lw=0.6)
    for f in (0.25, 0.5, 1.0):  # size legend
        left.scatter([], [], s=f * 180, color="0.6", label=f"{f:.0%}")
    left.legend(title="expressing", fontsize=7, title_fontsize=7, frameon=False, loc="upper left",
                bbox_to_anchor=(1.0, 0.0), ncol=3)
    left.set_title(f"top {n_genes} real markers per type")

    for x, name, color in ((xr, "real", "tab:blue"), (xs, "synthetic", "tab:orange")):
        right.scatter(x.mean(0), (x > 0).mean(0), s=6, alpha=0.6, color=color, label=f"{name} ({len(x)} cells)",
                      rasterized=True)
    right.set_xlabel("mean expression per gene")
    right.set_ylabel("fraction of cells expressing")
    right.set_ylim(-0.02, 1.02)
    right.set_title(f"{len(genes)} genes")
    right.legend(fontsize=7, frameon=False, loc="lower right")
    right.spines[["top", "right"]].set_visible(False)
    _finish(fig, save, show, "realism")
    return fig if return_fig else axes
