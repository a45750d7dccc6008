"""Highly variable genes of a matrix read in row blocks: scanpy's selection, without densifying it.

The model space (the PCA) of an input with many genes is fitted on its highly variable genes, as scanpy users
do; counts are still decoded for every gene (:mod:`._nb_decoder`). The selection is scanpy's
``sc.pp.highly_variable_genes``: flavour ``"seurat_v3"`` on counts, ``"seurat"`` (scanpy's default) on
log-normalized input, recomputed here from per-gene sums over row blocks. Why not call scanpy: its
``seurat_v3`` copies the matrix (``data[batch_info == b]``, a full copy of a 20k × 20k CSR even with one batch)
and reads it in memory, where the backed route has only blocks; the same code serves both routes, so they select
the same genes. ``tests/test_hvg.py`` checks that the genes equal scanpy's.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse

SPAN = 0.3  # scanpy's seurat_v3 loess span
N_BINS = 20  # scanpy's seurat mean bins


def _sums(blocks: Iterable, n_genes: int, fn=None) -> tuple[int, np.ndarray, np.ndarray]:
    """Rows, per-gene sum and sum of squares of ``fn(block)`` over the blocks (CSR stays CSR)."""
    n, s1, s2 = 0, np.zeros(n_genes), np.zeros(n_genes)
    for b in blocks:
        indices, data = _entries(b)
        if fn is not None:
            data = fn(data)  # zero maps to zero for expm1
        n += b.shape[0]
        s1 += np.bincount(indices, data, minlength=n_genes)
        s2 += np.bincount(indices, data * data, minlength=n_genes)
    return n, s1, s2


def _entries(b) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and float64 values of a block's stored entries (a CSR block's own arrays, values cast
    only: no float64 copy of its indices and row pointers, which cost a third of the selection at 20k genes)."""
    if not sparse.issparse(b):
        b = sparse.csr_matrix(b)
    b = b.tocsr() if b.format != "csr" else b
    return b.indices, b.data.astype(np.float64)


def _mean_var(n: int, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = s1 / n
    var = (s2 / n - mean**2) * (n / max(n - 1, 1))  # ddof 1, as scanpy's _get_mean_var
    return mean, np.clip(var, 0, None)


def seurat_v3(blocks: Iterable, n_genes: int, n_top_genes: int) -> np.ndarray:
    """Indices (sorted) of the ``n_top_genes`` genes of largest clipped standardized variance of the counts
    (Stuart et al. 2019; scanpy's ``flavor="seurat_v3"`` with one batch). Two passes over ``blocks``."""
    try:
        from skmisc.loess import loess
    except ImportError as e:  # scanpy's own requirement for this flavour
        msg = "highly variable genes of counts (flavor 'seurat_v3') need scikit-misc: pip install scikit-misc"
        raise ImportError(msg) from e
    n, s1, s2 = _sums(blocks, n_genes)
    mean, var = _mean_var(n, s1, s2)
    fitted = np.zeros(n_genes)
    ok = var > 0
    model = loess(np.log10(mean[ok]), np.log10(var[ok]), span=SPAN, degree=2)
    model.fit()
    fitted[ok] = model.outputs.fitted_values
    reg_std = np.sqrt(10**fitted)
    clip = reg_std * np.sqrt(n) + mean  # as in Seurat: values above are clipped
    c1, c2 = np.zeros(n_genes), np.zeros(n_genes)
    for b in blocks:
        indices, data = _entries(b)
        v = np.minimum(data, clip[indices])
        c1 += np.bincount(indices, v, minlength=n_genes)
        c2 += np.bincount(indices, v * v, minlength=n_genes)
    norm_var = (n * mean**2 + c2 - 2 * c1 * mean) / ((n - 1) * reg_std**2)
    return np.sort(np.argsort(-norm_var)[:n_top_genes])


def seurat(blocks: Iterable, n_genes: int, n_top_genes: int) -> np.ndarray:
    """Indices (sorted) of the ``n_top_genes`` genes of largest normalized dispersion of log-normalized input
    (scanpy's default ``flavor="seurat"``: dispersion of ``expm1`` values, z-scored within 20 bins of mean)."""
    n, s1, s2 = _sums(blocks, n_genes, np.expm1)
    mean, var = _mean_var(n, s1, s2)
    mean[mean == 0] = 1e-12
    disp = var / mean
    disp[disp == 0] = np.nan
    df = pd.DataFrame({"mean": np.log1p(mean), "disp": np.log(disp)})
    df["bin"] = pd.cut(df["mean"], bins=N_BINS)
    stats = df.groupby("bin", observed=True)["disp"].agg(avg="mean", dev="std")
    single = stats["dev"].isna()  # a bin of one gene: normalized dispersion 1, as scanpy sets it
    stats.loc[single, "dev"], stats.loc[single, "avg"] = stats.loc[single, "avg"], 0
    per_gene = stats.loc[df["bin"]].to_numpy()
    norm = (df["disp"].to_numpy() - per_gene[:, 0]) / per_gene[:, 1]
    return np.sort(np.argsort(-np.nan_to_num(norm, nan=-np.inf), kind="stable")[:n_top_genes])


def select(blocks: Iterable, n_genes: int, n_top_genes: int, kind: str) -> np.ndarray:
    """The flavour for ``kind`` ("counts": ``seurat_v3``; "lognorm": ``seurat``) on ``blocks`` of that kind."""
    fn = seurat_v3 if kind == "counts" else seurat
    return fn(blocks, n_genes, n_top_genes)
