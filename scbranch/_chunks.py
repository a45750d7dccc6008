"""Reading expression in row blocks, so no AnnData (backed, in memory, sparse or dense) becomes one dense matrix.

The diffusion model trains on the representation (n_cells × ~30 floats: 120 bytes a cell); only that is
held in memory. The gene-space matrix is validated, normalized, fitted (blockwise PCA) and projected a row block
at a time, in memory and backed alike: one code path, so the two cannot drift apart. Sparse blocks stay sparse;
a dense block holds at most ``DENSE_BLOCK_VALUES`` values.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from . import _anndata, _normalize
from . import _logging as logg

CHUNK_CELLS = 10_000  # rows per chunk
IN_MEMORY_MAX_CELLS = 50_000  # above this, even in-memory data goes through the chunked path
DENSE_BLOCK_VALUES = 2**25  # a dense block (dense input, or a decoder's block) holds at most this many values


def is_chunked(X) -> bool:
    """Whether to work in chunks: backed (h5py / anndata sparse dataset) or very many cells."""
    return not in_memory(X) or X.shape[0] > IN_MEMORY_MAX_CELLS


def row_chunks(X, mask: np.ndarray | None = None, chunk: int = CHUNK_CELLS) -> Iterator[np.ndarray]:
    """Contiguous row blocks of ``X`` (optionally only the rows in boolean ``mask``), as read from disk; no larger
    than a row source's own ``chunk_cells`` (:func:`scbranch.read_soma`'s)."""
    chunk = min(chunk, getattr(X, "chunk_cells", chunk))
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        keep = None if mask is None else mask[start:stop]
        if keep is not None and not keep.any():
            continue
        block = _csr_rows(X, start, stop) if sparse.issparse(X) and X.format == "csr" else X[start:stop]
        yield block if keep is None or keep.all() else block[np.flatnonzero(keep)]


def _csr_rows(X: sparse.csr_matrix, start: int, stop: int) -> sparse.csr_matrix:
    """Rows ``start:stop`` of an in-memory CSR matrix sharing its data and indices (scipy's slice copies them:
    0.3 s a 10,000-cell block at 20,000 genes, on every pass). Callers never write into a block."""
    lo, hi = X.indptr[start], X.indptr[stop]
    return sparse.csr_matrix((X.data[lo:hi], X.indices[lo:hi], X.indptr[start : stop + 1] - lo),
                             shape=(stop - start, X.shape[1]), copy=False)


def in_memory(X) -> bool:
    return isinstance(X, np.ndarray) or sparse.issparse(X)


def to_csr(X, cols: np.ndarray | None = None) -> sparse.csr_matrix:
    """``X`` (in memory or backed; dense or sparse) as one in-memory CSR float32 matrix, columns ``cols`` only,
    read a chunk at a time: a backed sparse matrix is never densified (``np.asarray`` on anndata's backed sparse
    dataset gave "setting an array element with a sequence"), a backed dense one only a chunk at a time."""
    blocks = []
    for block in ([X] if in_memory(X) else row_chunks(X)):
        block = sparse.csr_matrix(block, dtype=np.float32)
        blocks.append(block if cols is None else block[:, cols])
    return sparse.vstack(blocks, format="csr") if len(blocks) != 1 else blocks[0]


def read_rows(X, rows: np.ndarray):
    """Rows ``rows`` (any order) of an in-memory or backed matrix, in that order."""
    order = np.argsort(rows)
    block = X[np.sort(rows)]
    out = np.empty_like(order)
    out[order] = np.arange(len(rows))
    return block[out]


def check_expression(X, *, expected="auto", where: str = "X"):
    """:func:`~scbranch._anndata.check_expression` over every chunk: the first decides, the rest must agree."""
    kind = None
    for i, block in enumerate(row_chunks(X)):
        with logg.quiet(i > 0):
            kind = _anndata.check_expression(block, expected=expected if kind is None else kind, where=where)
    return kind


def block_rows(X) -> int:
    """Rows per block: ``CHUNK_CELLS``, fewer for dense genes-wide input (a dense block is held whole)."""
    cap = min(CHUNK_CELLS, getattr(X, "chunk_cells", CHUNK_CELLS))
    if is_sparse(X):
        return cap
    return int(np.clip(DENSE_BLOCK_VALUES // max(X.shape[1], 1), 1, cap))


def is_sparse(X) -> bool:
    """Sparse in memory, or an anndata backed sparse dataset (whose row slices are scipy sparse), e.g. the SOMA
    matrix of :func:`scbranch.read_soma` (an ``anndata.abc.CSRDataset``)."""
    return (sparse.issparse(X) or type(X).__name__.endswith(("CSRDataset", "CSCDataset", "SparseDataset"))
            or getattr(X, "format", None) in ("csr", "csc"))  # anndata.abc.CSRDataset / CSCDataset


class KeptPasses:
    """Row blocks iterable any number of times (a randomized SVD reads its matrix once per power iteration): a
    subclass yields them from :meth:`blocks`; with ``keep`` the blocks of the first complete pass are kept and
    every later pass replays them instead of making them again."""

    keep: bool = False
    cache: list | None = None  # set only by a pass that ran to the end

    def blocks(self) -> Iterator:
        raise NotImplementedError

    def __iter__(self) -> Iterator:
        if self.cache is not None:
            yield from self.cache
            return
        fresh = []
        for block in self.blocks():
            if self.keep:
                fresh.append(block)
            yield block
        if self.keep:
            self.cache = fresh


class LognormBlocks(KeptPasses):
    """Log-normalized row blocks of ``X`` (only the rows in ``mask``). In memory, the normalized blocks are kept
    after the first pass: for sparse input that costs one more copy of the (masked) input's non-zeros and saves
    normalizing it again on every pass; backed, every pass reads the file again."""

    def __init__(self, X, kind, mask: np.ndarray | None = None):
        self.X, self.kind, self.mask = X, kind, mask
        self.keep = in_memory(X) and is_sparse(X)
        self.n_genes = X.shape[1]

    def blocks(self) -> Iterator:
        for block in row_chunks(self.X, self.mask, block_rows(self.X)):
            yield _normalize.lognorm(block, self.kind)


def transform(rep, X, kind, *, batch=None) -> np.ndarray:
    """Every cell of ``X`` in the representation's space, one block at a time (sparse blocks stay sparse)."""
    out, step = [], block_rows(X)
    for start, block in zip(range(0, X.shape[0], step), row_chunks(X, chunk=step)):
        x = _normalize.lognorm(block, kind) if rep.input == "lognorm" else block
        b = None if batch is None else batch[start : start + step]
        out.append(rep.transform(x, batch=b))
    return np.vstack(out) if out else np.zeros((0, rep.n_features), np.float32)


def decoder_sample(labels: np.ndarray, mask: np.ndarray, per_type: int = 2000, random_state: int = 0) -> np.ndarray:
    """Row indices for the per-type decoder statistics: up to ``per_type`` cells of each type in ``mask``."""
    rng = np.random.default_rng(random_state)
    rows = []
    for ty in np.unique(labels[mask]):
        idx = np.flatnonzero(mask & (labels == ty))
        rows.append(rng.choice(idx, min(per_type, len(idx)), replace=False) if len(idx) > per_type else idx)
    return np.sort(np.concatenate(rows))
