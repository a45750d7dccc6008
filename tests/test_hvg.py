"""Genes for the model vs genes for the output: the model space on highly variable genes, counts for every gene."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import torch
from scipy import sparse

import scbranch as sb
from scbranch.representation import _hvg, _pca

from .conftest import fast

N_TOP = 120


@pytest.fixture(scope="module")
def wide():
    """Sparse counts, 3 types over 400 genes: fitted on its 120 most variable genes."""
    adata = sb.simulate.simulate_tree({"AB": {"A": None, "B": None}, "C": None},
                                      n_cells={"A": 100, "B": 90, "C": 80}, n_genes=400, random_state=1)
    adata.X = sparse.csr_matrix(adata.X, dtype=np.float32)
    before = adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast(max_steps=20, n_top_genes=N_TOP))
    return model, adata, before


def _scanpy_hvgs(X, flavor: str, n: int) -> set:
    df = sc.pp.highly_variable_genes(ad.AnnData(X), flavor=flavor, n_top_genes=n, inplace=False)
    return set(np.flatnonzero(df["highly_variable"].to_numpy()))


@pytest.mark.parametrize("kind", ["counts", "lognorm"])
def test_selection_is_scanpys(kind):
    """seurat_v3 on counts, scanpy's default flavour on log-normalized values: the same genes, from blocks."""
    rng = np.random.default_rng(0)
    mu = rng.lognormal(-1, 1.5, 500) * rng.lognormal(0, 0.5, (300, 1))
    X = sparse.csr_matrix(rng.negative_binomial(2, 2 / (2 + mu)).astype(np.float32))
    if kind == "lognorm":
        X = sb._normalize.lognorm(X, "counts")
    blocks = [X[lo : lo + 128] for lo in range(0, 300, 128)]
    got = _hvg.select(blocks, 500, 100, kind)
    assert set(got) == _scanpy_hvgs(X, "seurat_v3" if kind == "counts" else "seurat", 100)


def test_auto_threshold():
    assert _pca.n_model_genes("auto", 4000) is None  # every gene up to 5,000
    assert _pca.n_model_genes("auto", 20000) == _pca.AUTO_TOP_GENES
    assert _pca.n_model_genes(None, 20000) is None and _pca.n_model_genes("all", 20000) is None
    assert _pca.n_model_genes(0, 20000) is None and _pca.n_model_genes(500, 400) is None
    assert _pca.n_model_genes(300, 400) == 300


def test_model_space_on_hvgs_counts_for_all_genes(wide):
    model, adata, before = wide
    rep = model.representation
    assert set(rep.genes_) == _scanpy_hvgs(before.X, "seurat_v3", N_TOP)
    others = np.setdiff1d(np.arange(adata.n_vars), rep.genes_)
    assert not rep.components_[:, others].any()  # the model space reads only the HVGs
    assert adata.uns["scbranch"]["params"]["n_top_genes"] == N_TOP
    syn = sb.tl.generate(model, 30, random_state=0, progress=False)
    assert list(syn.var_names) == list(adata.var_names) and sparse.issparse(syn.X)
    counts = syn.X.toarray()
    np.testing.assert_array_equal(counts, np.round(counts))
    assert (counts[:, others] > 0).any()  # the genes outside the model space are decoded too
    # ... at the real cells' level per gene: the real cells decoded from their own coordinates (the score network
    # is barely trained here, so generated coordinates would say little)
    real, rec = before.X.toarray(), model.reconstruct(before, random_state=0)
    rec = rec.X.toarray()  # counts in, counts out
    r = np.corrcoef(np.log1p(real[:, others].mean(0)), np.log1p(rec[:, others].mean(0)))[0, 1]
    assert r > 0.9


def test_save_load_round_trip(wide, tmp_path):
    model, _, _ = wide
    model.save(tmp_path / "m")
    loaded = sb.BranchedDiffusion.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.representation.genes_, model.representation.genes_)
    np.testing.assert_array_equal(loaded.representation.counts_decoder.genes, model.representation.genes_)
    a = sb.tl.generate(model, 10, random_state=3, progress=False)
    b = sb.tl.generate(loaded, 10, random_state=3, progress=False)
    assert (a.X != b.X).nnz == 0


def test_models_over_all_genes_keep_their_format(toy_model, tmp_path):
    """A model over every gene saves exactly the tensors and metadata it did before n_top_genes existed, so
    models saved by older versions (which have none of the new keys) load as they did."""
    model, _ = toy_model
    model.save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)["representation"]
    assert "genes" not in state and not any(k.endswith((".genes", ".rest")) or "rest_out" in k for k in state)
    assert "n_model" not in model.representation.meta()["counts_decoder"]
    loaded = sb.BranchedDiffusion.load(tmp_path / "m")
    assert loaded.representation.genes_ is None and loaded.representation.counts_decoder.genes is None
    a = sb.tl.generate(model, 5, random_state=1, progress=False)
    b = sb.tl.generate(loaded, 5, random_state=1, progress=False)
    assert (a.X != b.X).nnz == 0


def test_backed_input_selects_the_same_genes(wide, tmp_path):
    """The chunked (backed) route reads the same blocks: same HVGs, same model space."""
    model, _, before = wide
    before.write_h5ad(tmp_path / "wide.h5ad")
    backed = ad.read_h5ad(tmp_path / "wide.h5ad", backed="r")
    other = sb.tl.fit(backed, groupby="cell_type", random_state=0, **fast(max_steps=20, n_top_genes=N_TOP))
    np.testing.assert_array_equal(other.representation.genes_, model.representation.genes_)
    np.testing.assert_allclose(other.representation.components_, model.representation.components_, atol=1e-5)
    backed.file.close()


@pytest.mark.parametrize("bad", [-1, 2.5, "some", True])
def test_bad_n_top_genes_is_a_clear_error(toy_adata, bad):
    adata = toy_adata.copy()
    with pytest.raises(ValueError, match="n_top_genes"):
        sb.tl.fit(adata, groupby="cell_type", **fast(n_top_genes=bad))
    assert "scbranch" not in adata.uns


def test_n_top_genes_goes_with_pca(toy_adata):
    with pytest.raises(ValueError, match="representation='pca'"):
        sb.tl.fit(toy_adata.copy(), groupby="cell_type", representation="scvi", **fast(n_top_genes=30))


def test_add_cell_type_keeps_every_gene(wide):
    """A type added to a model over highly variable genes decodes every gene; the old types are unchanged."""
    _, _, before = wide
    old = before[before.obs["cell_type"] != "C"].copy()
    model = sb.tl.fit(old, groupby="cell_type", random_state=0, **fast(max_steps=20, n_top_genes=N_TOP))
    z = np.zeros((4, model.representation.n_features), np.float32)
    a = model.decode(z, ["A"] * 4, random_state=0).counts.toarray()
    grown = sb.tl.add_cell_type(before[before.obs["cell_type"] == "C"].copy(), model, max_steps=20, progress=False)
    np.testing.assert_array_equal(grown.decode(z, ["A"] * 4, random_state=0).counts.toarray(), a)
    c = grown.decode(z, ["C"] * 4, random_state=0).counts.toarray()
    assert c.shape == (4, before.n_vars) and c.sum() > 0
