"""Setting up a model, its first part: validate the expression matrix and put every cell in model space.

The PCA representation reads the matrix in log-normalized row blocks, in memory and backed alike (sparse blocks
stay sparse; see :mod:`scbranch._chunks`): it is fitted by a blockwise randomized PCA and every cell projected a
block at a time. scVI reads the counts in memory. Either way the decoder is fitted on a
subsample (≤ 2,000 training cells a type), with the input's counts whenever it holds them (raw, or recoverable
from log-normalized values), so memory holds only the low-dimensional cells and that subsample.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .. import _anndata, _chunks, _normalize
from .. import _logging as logg
from .._interrupt import interruptible
from .._normalize import counts_info, recover_counts
from ..representation import REPRESENTATIONS, DecoderData, get_representation
from ._config import ModelConfig, representation_options


@dataclass
class Represented:
    rep: object
    kind: str  # "counts" or "lognorm": what the matrix held
    var_names: pd.Index
    z_all: np.ndarray  # every cell in model space
    decoder: DecoderData  # the cells the decoder is fitted on


def represent(adata: ad.AnnData, labels: pd.Series, train_mask: np.ndarray, *, model: ModelConfig, layer,
              use_raw: bool, input_kind: str, batch_key, random_state: int, progress: bool) -> Represented:
    cls = get_representation(model.representation)
    rep = cls.from_options(representation_options(model, cls), n_cells=int(train_mask.sum()), progress=progress)
    X, var_names = _anndata.get_matrix(adata, layer=layer, use_raw=use_raw)
    where = "raw.X" if use_raw else (f"layers[{layer!r}]" if layer else "X")
    chunked = _chunks.is_chunked(X)
    blocks = rep.input == "lognorm" and hasattr(rep, "fit_blocks")  # fits from row blocks: memory need not hold X
    if chunked and not blocks:
        msg = (f"backed AnnData (and > 50,000 cells, and read_soma's) is supported with representation='pca'; load "
               f"it into memory for {model.representation!r} (adata.to_memory(); read_soma's: adata.X = "
               "adata.X.to_memory())")
        raise ValueError(msg)
    kind = (_chunks.check_expression if chunked else _anndata.check_expression)(X, expected=input_kind, where=where)
    if batch_key is not None and not rep.uses_batch:
        takers = " or ".join(f"representation={k!r}" for k, c in REPRESENTATIONS.items() if c.uses_batch)
        msg = f"batch_key= goes with a representation that models batches ({takers}), not {model.representation!r}"
        raise ValueError(msg)
    y = labels.to_numpy()
    batch = None if batch_key is None else _anndata.check_obs_column(adata, batch_key, what="batch_key")
    genes = rep.genes(var_names)
    if not genes.equals(var_names):
        X, var_names = X[:, var_names.get_indexer(genes)], genes

    recovered = None
    if rep.input == "counts" and kind != "counts":  # once: the representation reads these counts, the decoder
        recovered = recover_counts(X)                # their normalization
        if recovered is None:
            msg = (f"representation={model.representation!r} models counts, but {where} holds log-normalized values "
                   "that are not a per-cell scaling of integer counts; pass layer= with raw counts")
            raise ValueError(msg)

    t0 = logg.info(f"    fitting the {model.representation} representation" + (" in chunks" if chunked else ""))
    rows = _chunks.decoder_sample(y, train_mask, random_state=random_state)
    bt = batch[train_mask] if batch is not None else None
    if rep.input == "lognorm":  # in memory or backed: log-normalized row blocks, sparse kept sparse
        if blocks:
            lognorm = _chunks.LognormBlocks(X, kind, train_mask)
            # highly variable genes (many genes only) from the counts as they are, as scanpy's seurat_v3 reads them
            rep.fit_blocks(lognorm, random_state=random_state, hvg_kind=kind,
                           hvg_blocks=_RowBlocks(X, train_mask) if kind == "counts" else lognorm)
            if getattr(rep, "genes_", None) is not None:
                logg.info(f"    model space fitted on {len(rep.genes_):,} highly variable genes of "
                          f"{len(var_names):,} (n_top_genes); counts decoded for all")
        else:
            x_train = _normalize.lognorm(_chunks.read_rows(X, np.flatnonzero(train_mask)), kind)
            rep.fit(x_train, var_names=var_names, batch=bt, random_state=random_state)
        z_all = _chunks.transform(rep, X, kind, batch=batch)
        x_rows = sparse.csr_matrix(_chunks.read_rows(X, rows))  # the decoder's cells: sparse even from dense input
        x_dec = _normalize.lognorm(x_rows, kind)
    else:
        x_in = X if recovered is None else recovered.counts
        with interruptible():  # scVI trains on Lightning: Ctrl-C must stay a KeyboardInterrupt
            rep.fit(x_in[train_mask], var_names=var_names, batch=bt, random_state=random_state)
        z_all = rep.transform(x_in, batch=batch)
        x_rows, x_dec = X[rows], x_in[rows]
    info = recovered.take(rows) if recovered is not None else counts_info(x_rows, kind)
    logg.info(f"    {rep.n_features} {model.representation} components; decoding "
              + ("counts" if info is not None else "log-normalized expression (no counts in the input)"), time=t0)
    dec = DecoderData(x_dec, y[rows], info, batch[rows] if batch is not None else None, z_all[rows])
    return Represented(rep, kind, var_names, z_all, dec)


class _RowBlocks:
    """The rows in ``mask`` of ``X`` as they are, in blocks, re-iterable (one pass per statistic)."""

    def __init__(self, X, mask: np.ndarray):
        self.X, self.mask = X, mask

    def __iter__(self):
        return _chunks.row_chunks(self.X, self.mask, _chunks.block_rows(self.X))
