"""Completing cells from a partial gene panel with the diffusion model as prior (sb.tl.impute)."""

import anndata as ad
import numpy as np
import pytest

import scbranch as sb

from .conftest import assert_adata_equal


@pytest.fixture(scope="module")
def panel(toy_model):
    model, adata = toy_model
    x = model.get_lognorm(adata)
    rng = np.random.default_rng(0)
    genes = np.sort(rng.choice(x.shape[1], x.shape[1] // 2, replace=False))
    panel = ad.AnnData(x[:, genes], obs=adata.obs[["cell_type"]].copy())
    panel.var_names = model.var_names[genes]
    return model, panel, x, genes


def test_imputed_genes_follow_the_truth(panel):
    model, pan, x, genes = panel
    snapshot = pan.copy()
    out = sb.tl.impute(pan, model, groupby="cell_type", n_samples=4, n_steps=50, progress=False)
    assert_adata_equal(pan, snapshot)
    assert out.shape == (pan.n_obs, len(model.var_names)) and out.var["scbranch_measured"].sum() == len(genes)
    np.testing.assert_allclose(out.X[:, genes], x[:, genes], rtol=1e-6)  # measured values kept as given
    hidden = np.setdiff1d(np.arange(x.shape[1]), genes)
    err = ((out.X[:, hidden] - x[:, hidden]) ** 2).mean()
    err_mean = ((x[:, hidden].mean(0) - x[:, hidden]) ** 2).mean()  # the gene's mean: no information used
    assert err < 0.6 * err_mean
    r = [np.corrcoef(out.X[:, g], x[:, g])[0, 1] for g in hidden if x[:, g].std() > 0]
    assert np.nanmean(r) > 0.4
    # the measurements matter: without their pull (guidance 0) the cells are draws of the type, not these cells
    free = sb.tl.impute(pan, model, groupby="cell_type", n_samples=4, n_steps=50, guidance=0.0, progress=False)
    assert err < ((free.X[:, hidden] - x[:, hidden]) ** 2).mean()


def test_types_are_inferred_when_not_given(panel):
    model, pan, _, _ = panel
    out = sb.tl.impute(pan, model, n_samples=2, n_steps=30, progress=False, random_state=1)
    acc = (out.obs["cell_type"].astype(str).to_numpy() == pan.obs["cell_type"].astype(str).to_numpy()).mean()
    assert acc > 0.85 and out.obs["scbranch_type_probability"].between(0, 1).all()
    assert out.uns["scbranch"]["impute"]["types_inferred"]
    again = sb.tl.impute(pan, model, n_samples=2, n_steps=30, progress=False, random_state=1)
    np.testing.assert_array_equal(out.X, again.X)  # same seed, same cells


def test_impute_errors(panel, toy_model):
    model, pan, _, _ = panel
    other = pan.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="shares 0 genes with the model"):
        sb.tl.impute(other, model, progress=False)
    bad = pan.copy()
    bad.obs["cell_type"] = "Z"
    with pytest.raises(ValueError, match=r"does not know: \['Z'\]"):
        sb.tl.impute(bad, model, groupby="cell_type", progress=False)
    _, adata = toy_model
    counts = adata[:, pan.var_names].copy()
    with pytest.raises(ValueError, match="the panel holds counts"):
        sb.tl.impute(counts, model, groupby="cell_type", progress=False)
