"""Cells from a TileDB-SOMA experiment (the CELLxGENE Census format), streamed a block of cells at a time.

:func:`read_soma` loads ``obs`` (filtered) and ``var`` into memory and leaves the expression on disk (or in the
cloud): ``.X`` is a :class:`SomaX`, a read-only view of the SOMA ``X`` matrix restricted to the selected cells and
genes. It is an :class:`anndata.abc.CSRDataset`, like the ``.X`` of a backed ``.h5ad``, so scbranch reads it as it
reads backed input (:mod:`scbranch._chunks`): a row block at a time, as sparse CSR, never the whole matrix.
``tiledbsoma`` is imported only here, when :func:`read_soma` is called (``pip install scbranch[atlas]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from . import _chunks

try:
    from anndata.abc import CSRDataset as _CSRDataset  # AnnData takes these as .X, as the backed .h5ad's
except ImportError:  # anndata < 0.11
    _CSRDataset = None

__all__ = ["SomaX", "read_soma"]

SOMA_JOINID = "soma_joinid"


def _tiledbsoma():
    try:
        import tiledbsoma
    except ImportError as err:
        msg = "read_soma needs tiledbsoma: pip install 'scbranch[atlas]' (or pip install tiledbsoma)"
        raise ImportError(msg) from err
    return tiledbsoma


def read_soma(
    experiment,
    *,
    measurement_name: str = "RNA",
    X_name: str = "raw",
    obs_value_filter: str | None = None,
    obs_column_names: list[str] | None = None,
    var_value_filter: str | None = None,
    obs_index: str | None = None,
    var_index: str | None = None,
    chunk_cells: int = _chunks.CHUNK_CELLS,
):
    """Cells of a TileDB-SOMA experiment as an AnnData whose expression stays where it is.

    ``obs`` (the cells ``obs_value_filter`` selects) and ``var`` are read into memory; ``.X`` is a lazy, read-only
    view of the SOMA matrix ``X_name`` on those cells and genes (:class:`SomaX`). :func:`scbranch.tl.fit` reads it
    as backed ``.h5ad`` input: validated, normalized, fitted (blockwise PCA) and projected ``chunk_cells`` cells at
    a time, as sparse CSR; training minibatches come from the low-dimensional cells. Every pass over the cells
    reads them again (the PCA makes a few), so keep ``experiment`` open until the fit returns. Models that need the
    whole matrix in memory (``representation="scvi"``) need ``adata.X = adata.X.to_memory()`` first.

    Parameters
    ----------
    experiment
        A :class:`tiledbsoma.Experiment` (e.g. ``census["census_data"]["homo_sapiens"]`` from
        ``cellxgene_census.open_soma()``) or its URI (opened here, read-only).
    measurement_name
        The measurement (``experiment.ms``) to read; the Census's is ``"RNA"``.
    X_name
        The matrix of the measurement's ``X`` (the Census's counts are ``"raw"``; ``tiledbsoma.io.from_anndata``
        writes ``"data"`` unless told otherwise).
    obs_value_filter, var_value_filter
        SOMA value filters selecting cells and genes, e.g. ``"tissue_general == 'kidney' and is_primary_data ==
        True"``; ``None``: all.
    obs_column_names
        The ``obs`` columns to load (default all); keep it short for the Census, whose ``obs`` has many.
    obs_index, var_index
        The columns that become ``obs_names`` / ``var_names``. Default: ``"obs_id"`` / ``"var_id"`` (what
        ``tiledbsoma.io`` writes) or, for the Census's genes, ``"feature_id"``; else the ``soma_joinid``.
    chunk_cells
        The most cells read (and held in gene space) at once.

    Returns
    -------
    AnnData with ``obs`` in ``soma_joinid`` order, ``var`` and a :class:`SomaX` as ``.X``.
    """
    import anndata as ad

    soma = _tiledbsoma()
    if _CSRDataset is None:
        msg = "read_soma needs anndata >= 0.11 (anndata.abc.CSRDataset): pip install -U anndata"
        raise ImportError(msg)
    if isinstance(chunk_cells, bool) or not isinstance(chunk_cells, int | np.integer) or chunk_cells < 1:
        msg = f"chunk_cells must be a positive integer; got {chunk_cells!r}"
        raise ValueError(msg)
    opened = isinstance(experiment, str) or hasattr(experiment, "__fspath__")
    exp = soma.Experiment.open(str(experiment)) if opened else experiment
    if not isinstance(exp, soma.Experiment):
        msg = f"experiment must be a tiledbsoma.Experiment or its URI; got {type(experiment).__name__}"
        raise TypeError(msg)
    if measurement_name not in exp.ms:
        msg = f"measurement {measurement_name!r} not in the experiment; it has {sorted(exp.ms.keys())}"
        raise KeyError(msg)
    ms = exp.ms[measurement_name]
    layers = sorted(ms.X.keys()) if "X" in ms else []
    if X_name not in layers:
        msg = f"X_name={X_name!r} is not a matrix of measurement {measurement_name!r}; it has {layers}"
        raise KeyError(msg)
    array = ms.X[X_name]
    if not isinstance(array, soma.SparseNDArray):
        msg = f"X {X_name!r} is a {type(array).__name__}; read_soma reads a SparseNDArray (as the Census's)"
        raise TypeError(msg)

    obs = _frame(exp.obs, obs_value_filter, obs_column_names, "obs", ("obs_id",), obs_index)
    var = _frame(ms.var, var_value_filter, None, "var", ("var_id", "feature_id"), var_index)
    obs_ids, var_ids = obs.pop(SOMA_JOINID).to_numpy(np.int64), var.pop(SOMA_JOINID).to_numpy(np.int64)
    X = SomaX(array, obs_ids, var_ids, chunk_cells=int(chunk_cells), experiment=exp)
    return ad.AnnData(X=X, obs=obs, var=var)


def _frame(df, value_filter, column_names, axis: str, index_names, index: str | None) -> pd.DataFrame:
    """An obs/var SOMA DataFrame, filtered, as pandas in soma_joinid order, one column as its index."""
    schema = df.schema.names
    if index is None:
        index = next((c for c in index_names if c in schema), None)
    elif index not in schema:
        msg = f"{axis}_index={index!r} is not a column of {axis}; it has {schema}"
        raise KeyError(msg)
    columns = None
    if column_names is not None:
        unknown = [c for c in column_names if c not in schema]
        if unknown:
            msg = f"{axis} has no columns {unknown}; it has {schema}"
            raise KeyError(msg)
        columns = list(dict.fromkeys([SOMA_JOINID, *column_names, *([index] if index else [])]))
    try:
        table = df.read(value_filter=value_filter, column_names=columns).concat()
    except Exception as err:  # tiledbsoma reports a bad filter as SOMAError/ValueError/TileDBError, by version
        if value_filter is None:
            raise
        why = (str(err).strip().splitlines() or [type(err).__name__])[0]  # not the native library's traceback
        msg = f"{axis}_value_filter={value_filter!r} could not be applied ({why}); {axis} has columns {schema}"
        raise ValueError(msg) from err
    frame = table.to_pandas().sort_values(SOMA_JOINID, kind="stable")
    if columns is not None:  # tiledbsoma adds the columns the filter names
        frame = frame[columns]
    for col in frame.columns:  # as subsetting an AnnData does: only the categories the selected rows hold
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].cat.remove_unused_categories()
    names = frame[SOMA_JOINID] if index is None else frame.pop(index)
    frame.index = pd.Index(names.astype(str).to_numpy(), name=None)
    return frame


class SomaX(_CSRDataset or object):
    """A SOMA ``SparseNDArray``'s cells ``obs_joinids`` × genes ``var_joinids`` as a read-only CSR dataset:
    ``X[rows]`` / ``X[rows, cols]`` read those cells (``chunk_cells`` at a time) into a CSR matrix, rows and
    columns in the order asked for; ``X[:, cols]`` (every cell) is another lazy view, on fewer genes."""

    backend = "soma"

    def __init__(self, array, obs_joinids: np.ndarray, var_joinids: np.ndarray, *, chunk_cells: int,
                 experiment=None):
        self.array, self.chunk_cells = array, chunk_cells
        self.experiment = experiment  # held open while the array is read: closing it closes the array
        self.obs_joinids, self.var_joinids = np.asarray(obs_joinids, np.int64), np.asarray(var_joinids, np.int64)
        self.shape = (len(self.obs_joinids), len(self.var_joinids))
        self.dtype = np.dtype(array.schema.field("soma_data").type.to_pandas_dtype())
        self.n_array_genes = array.shape[1]

    def __repr__(self) -> str:
        return f"SomaX({self.shape[0]} cells × {self.shape[1]} genes of {self.array.uri}, {self.dtype})"

    def __getitem__(self, index):
        rows, cols = index if isinstance(index, tuple) else (index, slice(None))
        if np.isscalar(cols):
            msg = "SomaX reads blocks of cells: index genes with a slice or an array"
            raise IndexError(msg)
        if isinstance(rows, slice) and rows == slice(None):  # every cell: a view on fewer genes, read later
            return SomaX(self.array, self.obs_joinids, self.var_joinids[cols], chunk_cells=self.chunk_cells,
                         experiment=self.experiment)
        scalar = np.isscalar(rows)
        rows = np.arange(self.shape[0])[rows]
        block = self.read(np.atleast_1d(rows), self.var_joinids[cols])
        return block[0] if scalar else block

    def to_memory(self) -> sparse.csr_matrix:
        """Every cell, in memory (sparse CSR), read ``chunk_cells`` at a time."""
        return self.read(np.arange(self.shape[0]), self.var_joinids)

    def read(self, rows: np.ndarray, var_ids: np.ndarray) -> sparse.csr_matrix:
        """Cells at positions ``rows`` (any order) × genes ``var_ids`` (soma_joinids, any order) as CSR, one SOMA
        read of at most ``chunk_cells`` cells at a time; soma_joinids become positions by ``tiledbsoma.IntIndexer``."""
        soma = _tiledbsoma()
        if len(np.unique(var_ids)) != len(var_ids):
            msg = "SomaX: a gene asked for twice; index genes without repeats"
            raise IndexError(msg)
        uniq, inverse = np.unique(rows, return_inverse=True)
        col_of = soma.IntIndexer(var_ids)
        genes = None if len(var_ids) == self.n_array_genes else var_ids  # every gene: no need to list them
        blocks = []
        for start in range(0, len(uniq), self.chunk_cells):
            ids = self.obs_joinids[uniq[start : start + self.chunk_cells]]
            row_of = soma.IntIndexer(ids)
            r, c, v = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)], [np.zeros(0, self.dtype)]
            for t in self.array.read((ids, genes)).tables():  # arrow tables, freed as they are turned into COO
                r.append(row_of.get_indexer(t["soma_dim_0"].to_numpy()).astype(np.int32))
                c.append(col_of.get_indexer(t["soma_dim_1"].to_numpy()).astype(np.int32))
                v.append(t["soma_data"].to_numpy())
            r, c, v = (np.concatenate(a) for a in (r, c, v))
            blocks.append(sparse.csr_matrix((v, (r, c)), shape=(len(ids), len(var_ids)), dtype=self.dtype))
        if not blocks:
            return sparse.csr_matrix((len(rows), len(var_ids)), dtype=self.dtype)
        out = sparse.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        out.sort_indices()
        return out if np.array_equal(uniq, rows) else out[inverse]


def _register_view() -> None:
    """``adata[:, genes]`` keeps ``.X`` lazy: a view of a read-only SomaX is itself (anndata's view registry)."""
    try:
        from anndata._core.views import as_view
    except ImportError:  # anndata moved it: such views are refused with anndata's NotImplementedError
        return
    as_view.register(SomaX)(lambda x, view_args: x)


if _CSRDataset is not None:
    _register_view()
