"""Counts and log-normalization: the one place scbranch turns counts into log-normalized expression and finds the
counts behind log-normalized values.

Two ways real data are log-normalized, both recognised (and reproduced by the decoders' ``Libraries``):

- ``target_sum``: ``log1p(counts / counts.sum() * target_sum)`` over the genes the matrix holds (raw-count input,
  which scbranch normalizes this way with :data:`TARGET_SUM`, or input normalized after gene selection). Every
  cell's ``expm1`` row sum is the same number.
- ``scale``: ``log1p(counts * s)`` with a per-cell ``s`` that was set over *more* genes than the matrix holds
  (the common highly-variable-gene subset; pbmc68k_reduced's ``.raw`` sums to ~1,300–2,500 per cell).

:func:`recover_counts` finds the integer counts and the per-cell scale of a log-normalized matrix when they
exist (a count of 1 is the smallest non-zero value of a cell, or 1/2, 1/3 of it when a cell has no 1s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

InputKind = Literal["counts", "lognorm"]
TARGET_SUM = 1e4  # how scbranch log-normalizes raw-count input
ROUND_TOL = 0.25  # float32 log1p storage leaves ≤ 0.12 on counts up to ~10^4 (pbmc68k); non-counts far more
MAX_FAIL = 0.01  # a matrix whose cells fail the integer check more often than this holds no counts


def lognorm(X, kind: InputKind, target_sum: float = TARGET_SUM):
    """Float32 log-normalized expression, sparse (CSR) for sparse input and dense for dense input: counts are
    library-size normalized to ``target_sum``; log-normalized input is only cast. On CSR only the stored values
    change (``log1p(0) = 0``), so memory follows the non-zeros: no cells × genes array is made."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float32, copy=True)
        if kind == "counts":
            lib = np.asarray(X.sum(1), dtype=np.float32).ravel()
            lib[lib == 0] = 1
            X.data /= np.repeat(lib, np.diff(X.indptr))  # the dense path's order of operations: same floats
            X.data *= np.float32(target_sum)
            np.log1p(X.data, out=X.data)
        return X
    X = np.asarray(X).astype(np.float32, copy=True)
    if kind == "counts":
        lib = X.sum(1, keepdims=True)
        lib[lib == 0] = 1
        X = np.log1p(X / lib * target_sum)
    return X


def to_lognorm(X, kind: InputKind, target_sum: float = TARGET_SUM) -> np.ndarray:
    """Dense float32 log-normalized expression (see :func:`lognorm`; for small matrices and plots only)."""
    X = lognorm(X, kind, target_sum)
    return X.toarray() if sparse.issparse(X) else X


def to_counts(X, kind: InputKind):
    """Integer counts: ``X`` itself, or recovered from log-normalized values (:func:`recover_counts`)."""
    info = counts_info(X, kind)
    if info is None:
        msg = "the expression holds log-normalized values that are not a per-cell scaling of integer counts"
        raise ValueError(msg)
    return info.counts


@dataclass
class CountsInfo:
    """Integer counts of the decoder's cells and how the input normalized them (see the module docstring)."""

    counts: object  # cells × genes, integer-valued (dense or sparse)
    scale: np.ndarray | None  # per-cell s of "scale" mode; None: "target_sum" mode
    target_sum: float | None

    def take(self, rows) -> CountsInfo:
        """The same for a subset of the cells."""
        return CountsInfo(self.counts[rows], None if self.scale is None else self.scale[rows], self.target_sum)


def counts_info(X, kind: str) -> CountsInfo | None:
    """The counts of an expression matrix that holds ``kind`` ("counts" or "lognorm"), if it has any."""
    if kind == "counts":
        return CountsInfo(X, None, TARGET_SUM)
    return recover_counts(X)


def recover_counts(X, chunk: int = 2048) -> CountsInfo | None:
    """Integer counts behind a log-normalized matrix, or ``None`` when it holds none (e.g. scaled, SCTransform).
    Read in row chunks and worked on as CSR (dense input a chunk at a time): only non-zeros are touched, as a
    zero is the count 0 at any scale."""
    blocks, scales, sums, n_failed = [], [], [], 0
    for lo in range(0, X.shape[0], chunk):
        e = sparse.csr_matrix(X[lo : lo + chunk], dtype=np.float64, copy=True)  # a copy: expm1 below works in place
        e.eliminate_zeros()
        np.expm1(e.data, out=e.data)
        row = np.repeat(np.arange(e.shape[0]), np.diff(e.indptr))
        s1 = np.full(e.shape[0], np.inf)
        np.minimum.at(s1, row, np.where(e.data > 0, e.data, np.inf))  # the cell's smallest value: m counts
        s1[~np.isfinite(s1)] = 1.0  # empty cells: any scale
        scale = np.full(e.shape[0], np.nan)
        for m in (1, 2, 3, 4):  # the cell's smallest count is m
            ratio = e.data * (m / s1[row])
            bad = np.bincount(row, np.abs(ratio - np.round(ratio)) >= ROUND_TOL, minlength=e.shape[0])
            ok = np.isnan(scale) & (bad == 0)
            scale[ok] = s1[ok] / m
        failed = np.isnan(scale)
        n_failed += int(failed.sum())
        scale[failed] = s1[failed]  # a few odd cells: nearest counts at their smallest value
        sums.append(np.bincount(row, e.data, minlength=e.shape[0]))
        e.data = np.round(e.data / scale[row])
        blocks.append(e.astype(np.float32))
        scales.append(scale)
    if n_failed > MAX_FAIL * X.shape[0]:
        return None
    counts, scale, sums = sparse.vstack(blocks, format="csr"), np.concatenate(scales), np.concatenate(sums)
    counts.eliminate_zeros()
    pos = sums[sums > 0]
    if len(pos) and np.ptp(pos) <= 1e-3 * np.median(pos):  # one row sum: normalized over these genes
        return CountsInfo(counts, None, float(np.median(pos)))
    return CountsInfo(counts, scale.astype(np.float32), None)
