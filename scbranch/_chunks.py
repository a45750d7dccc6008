"""Reading expression in row chunks, so backed (on-disk) and very large AnnData never become one dense matrix.

The diffusion model trains on the representation (n_cells × ~30 floats: 120 bytes a cell); only that is
held in memory. The gene-space matrix is validated, fitted (incremental PCA) and projected chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

from . import _anndata
from . import _logging as logg

CHUNK_CELLS = 10_000  # rows per chunk
IN_MEMORY_MAX_CELLS = 50_000  # above this, even in-memory data goes through the chunked path


def is_chunked(X) -> bool:
    """Whether to work in chunks: backed (h5py / anndata sparse dataset) or very many cells."""
    return not in_memory(X) or X.shape[0] > IN_MEMORY_MAX_CELLS


def row_chunks(X, mask: np.ndarray | None = None, chunk: int = CHUNK_CELLS) -> Iterator[np.ndarray]:
    """Contiguous row blocks of ``X`` (optionally only the rows in boolean ``mask``), as read from disk."""
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        if mask is not None and not mask[start:stop].any():
            continue
        block = X[start:stop]
        yield block if mask is None else block[np.flatnonzero(mask[start:stop])]


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


def transform(rep, X, kind, *, batch=None) -> np.ndarray:
    """Every cell of ``X`` in the representation's space, one chunk at a time."""
    out = []
    for start, block in zip(range(0, X.shape[0], CHUNK_CELLS), row_chunks(X)):
        x = _anndata.to_lognorm(block, kind) if rep.input == "lognorm" else block
        b = None if batch is None else batch[start : start + CHUNK_CELLS]
        out.append(rep.transform(x, batch=b))
    return np.vstack(out)


def decoder_sample(labels: np.ndarray, mask: np.ndarray, per_type: int = 2000, random_state: int = 0) -> np.ndarray:
    """Row indices for the per-type decoder statistics: up to ``per_type`` cells of each type in ``mask``."""
    rng = np.random.default_rng(random_state)
    rows = []
    for ty in np.unique(labels[mask]):
        idx = np.flatnonzero(mask & (labels == ty))
        rows.append(rng.choice(idx, min(per_type, len(idx)), replace=False) if len(idx) > per_type else idx)
    return np.sort(np.concatenate(rows))
