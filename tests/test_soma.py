"""TileDB-SOMA input (``sb.read_soma``): a small experiment written here from an AnnData (no network), read with an
obs filter a block of cells at a time, fitted as the same cells in memory and as a backed ``.h5ad`` are."""

import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import scbranch as sb
from scbranch import _chunks

from .conftest import fast

TREE = {"AB": {"A": None, "B": None}, "C": None, "D": None}
CHUNK = 64  # cells per read: several reads even for these 300 cells


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A SOMA experiment of simulated counts (sparse X named "raw", as the Census's) and the AnnData it holds."""
    soma_io = pytest.importorskip("tiledbsoma.io")
    adata = sb.simulate.simulate_tree(TREE, n_cells={"A": 120, "B": 100, "C": 80, "D": 60}, n_genes=60,
                                      random_state=0)
    adata.X = sparse.csr_matrix(adata.X)
    adata.obs["donor"] = np.where(np.arange(adata.n_obs) % 2, "d1", "d2")
    uri = str(tmp_path_factory.mktemp("soma") / "exp")
    soma_io.from_anndata(uri, adata, "RNA", X_layer_name="raw")
    return uri, adata


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_chunks, "CHUNK_CELLS", CHUNK)  # the backed .h5ad read in the same blocks


@pytest.fixture
def reads(monkeypatch):
    """The number of cells of every SOMA X read (the reader's own calls)."""
    import tiledbsoma

    sizes, read = [], tiledbsoma.SparseNDArray.read

    def spy(self, coords=(), **kw):
        sizes.append(len(coords[0]))
        return read(self, coords, **kw)

    monkeypatch.setattr(tiledbsoma.SparseNDArray, "read", spy)
    return sizes


def test_read_soma_filters_cells_and_reads_blocks_as_in_memory(experiment, reads):
    uri, full = experiment
    want = full[full.obs["cell_type"] != "D"].copy()
    adata = sb.read_soma(uri, obs_value_filter="cell_type != 'D'", chunk_cells=CHUNK)
    pd.testing.assert_frame_equal(adata.obs, want.obs)  # rows in order, unused categories dropped
    pd.testing.assert_frame_equal(adata.var, want.var)
    assert isinstance(adata.X, sb._soma.SomaX) and adata.X.shape == want.shape and not reads  # nothing read yet
    X, ref = adata.X, want.X
    for rows in (slice(0, 50), slice(250, 300), np.array([7, 3, 3, 299]), np.arange(300) % 3 == 0):
        block = X[rows]
        assert sparse.isspmatrix_csr(block)
        np.testing.assert_array_equal(block.toarray(), ref[rows].toarray())
    genes = [5, 0, 17]
    np.testing.assert_array_equal(X[10:20, genes].toarray(), ref[10:20][:, genes].toarray())
    lazy = adata[:, genes]  # every cell, fewer genes: still lazy
    assert isinstance(lazy.X, sb._soma.SomaX) and lazy.X.shape == (300, 3)
    np.testing.assert_array_equal(lazy.X[40:45].toarray(), ref[40:45][:, genes].toarray())
    np.testing.assert_array_equal(adata[:4].X.toarray(), ref[:4].toarray())  # a row view reads its rows
    assert max(reads) <= CHUNK
    np.testing.assert_array_equal(X.to_memory().toarray(), ref.toarray())  # read CHUNK cells at a time too
    assert max(reads) <= CHUNK

    some = sb.read_soma(uri, obs_value_filter="donor == 'd1' and cell_type in ['A', 'C']",
                        var_value_filter="var_id in ['g3', 'g1', 'g40']", obs_column_names=["cell_type"])
    mask = (full.obs["donor"] == "d1") & full.obs["cell_type"].isin(["A", "C"])
    assert list(some.obs.columns) == ["cell_type"] and some.obs_names.equals(full.obs_names[mask])
    assert list(some.var_names) == ["g1", "g3", "g40"]  # soma_joinid order
    np.testing.assert_array_equal(some.X[0:30].toarray(), full[mask.to_numpy()][:30, some.var_names].X.toarray())


def test_fit_on_soma_streams_and_matches_backed_and_in_memory(experiment, reads, small_chunks, tmp_path,
                                                              monkeypatch):
    uri, full = experiment
    keep = (full.obs["cell_type"] != "D").to_numpy()
    mem = full[keep].copy()
    mem.write_h5ad(tmp_path / "same.h5ad")
    backed = ad.read_h5ad(tmp_path / "same.h5ad", backed="r")
    soma = sb.read_soma(uri, obs_value_filter="cell_type != 'D'", chunk_cells=CHUNK)
    assert _chunks.is_chunked(soma.X) and _chunks.is_sparse(soma.X)
    monkeypatch.setattr(sb._soma.SomaX, "to_memory", lambda self: pytest.fail("the whole matrix was read"))

    model = sb.tl.fit(soma, groupby="cell_type", random_state=0, **fast(max_steps=100))
    assert reads and max(reads) <= CHUNK, max(reads)  # a block at a time, never every cell at once
    ref = sb.tl.fit(backed, groupby="cell_type", random_state=0, **fast(max_steps=100))
    np.testing.assert_allclose(model.representation.components_, ref.representation.components_, atol=1e-5)
    np.testing.assert_allclose(soma.obsm["X_scbranch"], backed.obsm["X_scbranch"], atol=1e-5)
    np.testing.assert_allclose(model.get_latent(soma), soma.obsm["X_scbranch"], atol=1e-5)  # read again
    inmem = sb.tl.fit(mem, groupby="cell_type", random_state=0, **fast(max_steps=100))
    np.testing.assert_allclose(soma.obsm["X_scbranch"], mem.obsm["X_scbranch"], atol=1e-4)
    assert model.hierarchy.to_newick() == inmem.hierarchy.to_newick() and set(model.types) == {"A", "B", "C"}

    syn = sb.tl.generate(model, 10, progress=False)
    assert syn.shape == (30, soma.n_vars) and list(syn.var_names) == list(soma.var_names)
    assert np.isfinite(syn.X.data).all() and np.equal(np.mod(syn.X.data, 1), 0).all()  # counts, as the input
    model.save(tmp_path / "model")
    back = sb.BranchedDiffusion.load(tmp_path / "model", adata=soma)  # checks soma[:1] against the model
    np.testing.assert_array_equal(sb.tl.generate(back, 10, progress=False).X.toarray(), syn.X.toarray())
    assert max(reads) <= CHUNK


def test_read_soma_errors_are_clear(experiment):
    uri, _ = experiment
    with pytest.raises(ValueError, match=r"obs_value_filter=\"nope == 'x'\" could not be applied.*has columns"):
        sb.read_soma(uri, obs_value_filter="nope == 'x'")
    with pytest.raises(KeyError, match=r"measurement 'ATAC' not in the experiment; it has \['RNA'\]"):
        sb.read_soma(uri, measurement_name="ATAC")
    with pytest.raises(KeyError, match=r"X_name='data' is not a matrix .* it has \['raw'\]"):
        sb.read_soma(uri, X_name="data")
    with pytest.raises(KeyError, match=r"obs has no columns \['tissue'\]"):
        sb.read_soma(uri, obs_column_names=["tissue"])
    with pytest.raises(ValueError, match="chunk_cells"):
        sb.read_soma(uri, chunk_cells=0)
    soma = sb.read_soma(uri)
    with pytest.raises(ValueError, match=r"adata.X = adata.X.to_memory\(\)"):  # scVI reads counts in memory
        sb.tl.fit(soma, groupby="cell_type", representation="scvi", **fast(max_steps=20))
    assert "X_scbranch" not in soma.obsm


def test_tiledbsoma_is_optional(monkeypatch):
    code = "import sys, scbranch as sb; sb.read_soma; assert 'tiledbsoma' not in sys.modules, 'imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    monkeypatch.setitem(sys.modules, "tiledbsoma", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'scbranch\[atlas\]'"):
        sb.read_soma("any/uri")
