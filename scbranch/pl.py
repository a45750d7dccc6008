"""Plots (matplotlib; return the Axes, ``save=`` a file like scanpy)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt

__all__ = ["synthetic_vs_real"]


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
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    if show:
        plt.show()
    return axes
