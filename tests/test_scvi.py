"""representation="scvi": branched diffusion on scVI's latent space, synthetic cells decoded to counts."""

import numpy as np
import pytest

import scbranch as sb

from .conftest import assert_adata_equal, dense, fast
from .test_faults import MARKER_NAME, write_payload

SCVI = fast(max_steps=150, scvi_epochs=15)


@pytest.fixture(scope="module")
def batched(toy_adata):
    adata = toy_adata.copy()
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 3 == 0, "b1", "b2")
    return adata


@pytest.fixture(scope="module")
def scvi_model(batched):
    adata = batched.copy()
    return sb.tl.fit(adata, groupby="cell_type", representation="scvi", batch_key="batch", n_comps=6,
                     random_state=0, **SCVI), adata


def test_scvi_representation_generates_counts_per_type(scvi_model, batched):
    model, adata = scvi_model
    assert model.representation.kind == "scvi" and adata.obsm["X_scbranch"].shape == (adata.n_obs, 6)
    z = adata.obsm["X_scbranch"]
    assert np.sqrt(np.mean(z.var(0))) == pytest.approx(1.0, rel=1e-3)  # one common scale, as for PCA
    syn = sb.tl.generate(model, 60, progress=False)
    counts = dense(syn.X)  # fitted on counts in .X: counts in .X, their log-normalization beside
    assert counts.shape == (180, adata.n_vars) and (counts >= 0).all() and np.array_equal(counts, np.round(counts))
    np.testing.assert_allclose(dense(syn.layers["lognorm"]), sb._normalize.to_lognorm(counts, "counts"), rtol=1e-6)
    # library sizes follow the observed ones (drawn per type, then thinned by scVI's zero inflation, which a
    # 15-epoch scVI still overestimates: ~25 % fewer counts here)
    real_lib = np.asarray(batched.X.sum(1)).ravel()
    assert 0.6 < np.median(counts.sum(1)) / np.median(real_lib) < 1.1
    # in scVI's space the diffused cells of a type sit closest to that type's real cells; decoded to counts
    # and encoded again (decoder noise + a 15-epoch scVI), at least the far type C stays apart from (A, B)
    y, y_syn = adata.obs["cell_type"].astype(str).to_numpy(), syn.obs["cell_type"].astype(str).to_numpy()
    for name, z_syn in (("model", syn.obsm["X_scbranch"]), ("re-encoded", model.get_latent(syn_as_input(syn)))):
        for t in ("A", "B", "C"):
            d = {u: np.linalg.norm(z_syn[y_syn == t].mean(0) - z[y == u].mean(0)) for u in ("A", "B", "C")}
            nearest = min(d, key=d.get)
            assert nearest == t if name == "model" else (nearest == "C") == (t == "C"), (name, t, d)
    assert set(syn.obs["batch"]) == {"b1", "b2"}


def syn_as_input(syn):
    return syn.copy()  # counts in .X, as the real cells


def test_scvi_transform_batch_reproducibility_and_save_load(scvi_model, tmp_path):
    model, adata = scvi_model
    a = sb.tl.generate(model, 10, transform_batch="b1", random_state=2, progress=False)
    b = sb.tl.generate(model, 10, transform_batch="b1", random_state=2, progress=False)
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    with pytest.raises(ValueError, match="transform_batch"):
        sb.tl.generate(model, 10, transform_batch="nope", progress=False)
    model.save(tmp_path / "m")
    # scVI is stored as tensors in model.pt: no pickled scVI checkpoint, and a planted one is never read
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "manifest.json", "model.pt"]
    write_payload(tmp_path / "m" / "scvi" / "model.pt", tmp_path / MARKER_NAME)
    loaded = sb.BranchedDiffusion.load(tmp_path / "m", adata)
    assert not (tmp_path / MARKER_NAME).exists()
    np.testing.assert_allclose(loaded.get_latent(adata), adata.obsm["X_scbranch"], atol=1e-5)
    c = sb.tl.generate(loaded, 10, transform_batch="b1", random_state=2, progress=False)
    np.testing.assert_array_equal(dense(a.X), dense(c.X))


def test_scvi_accepts_a_trained_scvi_model(batched, tmp_path):
    import scvi

    counts = batched.copy()
    counts.layers["raw"] = counts.X.copy()
    scvi.model.SCVI.setup_anndata(counts, layer="raw", batch_key="batch")
    vae = scvi.model.SCVI(counts, n_latent=5)
    vae.train(max_epochs=5, enable_progress_bar=False, accelerator="cpu")
    adata = batched.copy()
    model = sb.tl.fit(adata, groupby="cell_type", representation="scvi", batch_key="batch",
                      **fast(max_steps=150, scvi_epochs=15, scvi_model=vae))
    assert model.representation.scvi is vae and model.representation.n_features == 5
    assert sb.tl.generate(model, 5, progress=False).X.shape == (15, adata.n_vars)
    model.save(tmp_path / "m")  # rebuilt from its options and tensors: the user's layer and batch order kept
    loaded = sb.BranchedDiffusion.load(tmp_path / "m")
    assert loaded.representation.setup_args["layer"] == "raw" and loaded.representation.batches == ["b1", "b2"]
    np.testing.assert_allclose(loaded.get_latent(adata), adata.obsm["X_scbranch"], atol=1e-5)


def test_scvi_bad_input_errors_leave_adata_untouched(batched, toy_model):
    lognorm = batched.copy()
    x = sb._normalize.to_lognorm(lognorm.X, "counts")
    x[x > 0] += 0.05  # no longer a per-cell scaling of counts
    lognorm.X = x
    before = lognorm.copy()
    with pytest.raises(ValueError, match="not a per-cell scaling of integer counts"):
        sb.tl.fit(lognorm, groupby="cell_type", representation="scvi", **SCVI)
    assert_adata_equal(lognorm, before)
    adata = batched.copy()
    with pytest.raises(KeyError, match="batch_key='donor'"):
        sb.tl.fit(adata, groupby="cell_type", representation="scvi", batch_key="donor", **SCVI)
    assert_adata_equal(adata, batched)
    with pytest.raises(ValueError, match="representation='scvi'"):
        sb.tl.fit(adata, groupby="cell_type", batch_key="batch", **SCVI)
    model, _ = toy_model
    with pytest.raises(ValueError, match="transform_batch"):
        sb.tl.generate(model, 5, transform_batch="b1", progress=False)
    with pytest.raises(ValueError, match="transform_batch"):
        model.decode(np.zeros((2, model.representation.n_features), np.float32), ["A", "A"], transform_batch="b1")


def test_scvi_on_log_normalized_input_reproduces_its_normalization(toy_adata):
    """Log-normalized over more genes than kept (the HVG case): scVI gets the recovered counts, and synthetic
    cells are normalized with per-cell scales drawn from real cells, not to a fixed 1e4."""
    counts = dense(toy_adata.X)
    x = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    adata = toy_adata[:, :40].copy()
    adata.X = x[:, :40]
    model = sb.tl.fit(adata, groupby="cell_type", representation="scvi", n_comps=4, random_state=0, **SCVI)
    syn = sb.tl.generate(model, 40, progress=False)
    c = dense(syn.layers["counts"])
    assert np.array_equal(c, np.round(c))
    # each cell is log1p(counts × s) with s a real cell's scale (1e4 / its library over all 60 genes)
    e = np.expm1(dense(syn.X))
    scale = e.sum(1) / np.maximum(c.sum(1), 1)
    np.testing.assert_allclose(e, c * scale[:, None], rtol=1e-3, atol=1e-3)
    real_scale = 1e4 / counts.sum(1)
    assert real_scale.min() * 0.999 <= scale.min() and scale.max() <= real_scale.max() * 1.001
    assert np.ptp(scale) > 0.2 * np.ptp(real_scale)  # per-cell scales, not one target sum
    np.testing.assert_allclose(model.get_latent(adata), adata.obsm["X_scbranch"], atol=1e-4)
