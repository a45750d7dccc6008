"""Backed (on-disk) AnnData: validated, fitted (incremental PCA) and projected in row chunks; Lightning options."""

import copy

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import scbranch as sb
from scbranch import _chunks

from .conftest import fast


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_chunks, "CHUNK_CELLS", 64)  # several chunks even for the toy data


def test_fit_on_backed_file_matches_in_memory(toy_adata, tmp_path, small_chunks):
    path = tmp_path / "toy.h5ad"
    toy_adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    assert backed.isbacked and _chunks.is_chunked(backed.X)
    model = sb.tl.fit(backed, groupby="cell_type", random_state=0, **fast(max_steps=100))
    z = backed.obsm["X_scbranch"]
    assert z.shape == (toy_adata.n_obs, model.representation.n_features)
    np.testing.assert_allclose(model.get_latent(backed), z, atol=1e-5)  # chunked projection, read again
    mem = sb.tl.fit(toy_adata.copy(), groupby="cell_type", random_state=0, **fast(max_steps=100))
    # incremental PCA over 64-cell chunks spans the same leading subspace as the full PCA
    cos = np.linalg.svd(model.representation.components_[:3] @ mem.representation.components_[:3].T,
                        compute_uv=False)
    assert cos.min() > 0.95, cos
    assert set(model.hierarchy.leaves) == {"A", "B", "C"}
    syn = sb.tl.generate(model, 10, progress=False)
    assert syn.shape == (30, toy_adata.n_vars) and np.isfinite(syn.X.data).all()
    assert ad.read_h5ad(path).obsm.keys() == toy_adata.obsm.keys()  # the file on disk is untouched


def test_backed_rejects_bad_values_in_a_later_chunk(toy_adata, tmp_path, small_chunks):
    bad = toy_adata.copy()
    X = np.asarray(bad.X.todense() if hasattr(bad.X, "todense") else bad.X, dtype=np.float32)
    X[-1, 0] = np.nan  # in the last chunk only
    bad.X = X
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(ValueError, match="NaN"):
        sb.tl.fit(ad.read_h5ad(tmp_path / "bad.h5ad", backed="r"), groupby="cell_type", **fast())


def test_lightning_checkpoints_and_trainer_options(toy_adata, tmp_path):
    model = sb.tl.fit(
        toy_adata.copy(),
        groupby="cell_type",
        **fast(max_steps=120, accelerator="cpu", devices=1, checkpoint_dir=str(tmp_path / "ckpt")),
    )
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "last.ckpt" in files and len(files) >= 2, files
    assert model.history["n_steps"] == 120 and len(model.history["step"]) >= 1


def test_minibatches_follow_the_weights_and_validation_is_capped():
    from scbranch.model._training import MAX_VAL_CELLS, WeightedBatches, validation_mask

    x, y = torch.arange(3.0)[:, None], torch.arange(3)
    batches = WeightedBatches(x, y, torch.tensor([0.0, 1.0, 3.0]), batch_size=256, n_batches=40, seed=0)
    drawn = torch.cat([b[1] for b in batches])
    freq = torch.bincount(drawn, minlength=3).double() / len(drawn)
    assert freq[0] == 0 and abs(freq[1] - 0.25) < 0.02 and abs(freq[2] - 0.75) < 0.02
    again = torch.cat([b[1] for b in WeightedBatches(x, y, torch.tensor([0.0, 1.0, 3.0]), 256, 40, seed=0)])
    assert torch.equal(drawn, again)
    codes = np.repeat(np.arange(4), 25_000)  # 100k cells: 10 % would be 10,000 validation cells
    mask = validation_mask(codes, 0.1, np.random.default_rng(0))
    assert 4000 <= mask.sum() <= MAX_VAL_CELLS and all(mask[codes == k].sum() == mask.sum() // 4 for k in range(4))


def _sparse_file(adata, path):
    """``adata`` written with sparse (CSR) ``.X`` and opened backed: anndata's backed sparse dataset."""
    from scipy import sparse

    mem = adata.copy()
    mem.X = sparse.csr_matrix(mem.X)
    mem.write_h5ad(path)
    return mem, ad.read_h5ad(path, backed="r")


def test_augment_on_a_backed_sparse_file_matches_in_memory(toy_model, tmp_path, small_chunks):
    model, fitted = toy_model
    rare = fitted[np.r_[0:120, 120:130, 220:300]].copy()  # B has 10 cells
    del rare.obsm["X_scbranch"]  # as a file from elsewhere would be: projected here, chunk by chunk
    mem, backed = _sparse_file(rare, tmp_path / "rare.h5ad")
    assert backed.isbacked and not isinstance(backed.X, np.ndarray)
    a = sb.tl.augment(backed, model, min_cells=40, progress=False)
    b = sb.tl.augment(mem, model, min_cells=40, progress=False)
    assert a.shape == b.shape and a.obs["scbranch_synthetic"].sum() == 30
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_allclose(a.obsm["X_scbranch"], b.obsm["X_scbranch"], atol=1e-5)


def test_add_cell_type_on_a_backed_sparse_file_matches_in_memory(tmp_path, small_chunks):
    four = sb.simulate.simulate_tree({"AB": {"A": None, "B": None}, "CD": {"C": None, "D": None}}, n_cells=80,
                                     n_genes=40, random_state=1)
    old, new = four[four.obs["cell_type"] != "D"].copy(), four[four.obs["cell_type"] == "D"].copy()
    model = sb.tl.fit(old, groupby="cell_type", random_state=0, **fast(max_steps=100))
    mem, backed = _sparse_file(new, tmp_path / "new.h5ad")
    a = sb.tl.add_cell_type(backed, copy.deepcopy(model), max_steps=40, progress=False)
    b = sb.tl.add_cell_type(mem, copy.deepcopy(model), max_steps=40, progress=False)
    assert "D" in a.types and a.hierarchy.to_newick() == b.hierarchy.to_newick()
    np.testing.assert_allclose(backed.obsm["X_scbranch"], mem.obsm["X_scbranch"], atol=1e-5)
    np.testing.assert_array_equal(sb.tl.generate(a, {"D": 5}, progress=False).X.toarray(),
                                  sb.tl.generate(b, {"D": 5}, progress=False).X.toarray())
