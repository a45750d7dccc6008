"""Datasets that ship offline."""

from __future__ import annotations

import anndata as ad


def pbmc68k() -> ad.AnnData:
    """scanpy's ``pbmc68k_reduced`` as scbranch wants it: the log-normalized ``.raw`` (700 cells × 765 genes;
    its ``.X`` is scaled), with ``obs["bulk_labels"]`` (10 types, 8–240 cells) and the original UMAP."""
    import scanpy as sc

    full = sc.datasets.pbmc68k_reduced()
    adata = full.raw.to_adata()
    adata.obs = full.obs[["bulk_labels", "n_counts", "percent_mito"]].copy()
    adata.obsm["X_umap"] = full.obsm["X_umap"].copy()
    return adata
