"""Real and synthetic cells in one AnnData: one scale, the origin flagged on both, coarse levels, no NaN rows."""

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

import scbranch as sb

from .conftest import dense, fast


@pytest.fixture(scope="module")
def levels_model(toy_adata):
    adata = toy_adata.copy()
    adata.obs["coarse"] = adata.obs["cell_type"].map({"A": "AB", "B": "AB", "C": "far"}).astype("category")
    adata.obs["donor"] = "d1"
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    model = sb.tl.fit(adata, groupby="cell_type", hierarchy=["coarse", "cell_type"], **fast(max_steps=80))
    return model, adata


def test_counts_with_counts_flag_levels_and_no_nan(levels_model):
    model, adata = levels_model
    syn = sb.tl.generate(model, 20, progress=False)
    assert (syn.obs["coarse"].astype(str) == syn.obs["cell_type"].map({"A": "AB", "B": "AB", "C": "far"})).all()
    both = sb.tl.concat_real_synthetic(adata, syn, model)
    assert both.n_obs == adata.n_obs + 60 and both.var_names.equals(adata.var_names)
    flag = both.obs["scbranch_synthetic"]
    assert flag.dtype == bool and flag.sum() == 60 and not flag.iloc[: adata.n_obs].any()
    # one scale: counts beside counts (the real ones unchanged), both log-normalized in a layer
    x = dense(both.X)
    np.testing.assert_array_equal(x[~flag.to_numpy()], dense(adata.X))
    assert np.array_equal(x, np.round(x)) and x[flag.to_numpy()].max() > 20
    np.testing.assert_allclose(dense(both.layers["lognorm"])[flag.to_numpy()], dense(syn.layers["lognorm"]))
    # the groupby and coarse columns are complete; columns the synthetic cells cannot have are NaN, not dropped
    assert not both.obs[["cell_type", "coarse"]].isna().any().any()
    assert both.obs.loc[~flag, "donor"].eq("d1").all() and both.obs.loc[flag, "donor"].isna().all()
    assert list(both.obs["cell_type"].cat.categories) == ["A", "B", "C"]
    # embeddings of the real cells only are left out; model space is there for all cells
    assert set(both.obsm) == {"X_scbranch"} and np.isfinite(both.obsm["X_scbranch"]).all()
    sc.pp.neighbors(both, use_rep="X_scbranch", n_neighbors=10)
    sc.tl.umap(both, maxiter=20)
    assert np.isfinite(both.obsm["X_umap"]).all()


def test_without_the_model_reads_the_fit_record(levels_model):
    model, adata = levels_model
    syn = sb.tl.generate(model, 5, progress=False)
    a, b = sb.tl.concat_real_synthetic(adata, syn, model), sb.tl.concat_real_synthetic(adata, syn)
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    pd.testing.assert_frame_equal(a.obs, b.obs)


def test_log_normalized_with_log_normalized_from_raw(toy_adata):
    adata = toy_adata.copy()
    lognorm = sb._normalize.to_lognorm(adata.X, "counts")
    raw = adata.copy()
    raw.X = sparse.csr_matrix(lognorm)
    adata.raw = raw  # log-normalized in .raw; .X scaled, as scanpy's pbmc68k_reduced
    adata.X = (lognorm - lognorm.mean(0)) / (lognorm.std(0) + 1e-3)
    model = sb.tl.fit(adata, groupby="cell_type", model_kwargs={"use_raw": True, "width": 32, "n_blocks": 1},
                      max_steps=60, progress=False)
    syn = sb.tl.generate(model, 10, progress=False)
    assert dense(syn.X).max() < 15 and "counts" in syn.layers
    both = sb.tl.concat_real_synthetic(adata, syn, model)
    np.testing.assert_allclose(dense(both.X)[: adata.n_obs], lognorm, rtol=1e-6)  # from .raw, not the scaled .X
    assert "lognorm" not in both.layers and dense(both.X).max() < 15


def test_errors(levels_model):
    model, adata = levels_model
    syn = sb.tl.generate(model, 3, progress=False)
    with pytest.raises(KeyError, match="groupby"):
        sb.tl.concat_real_synthetic(adata, syn, groupby="nope")
    with pytest.raises(ValueError, match="obs_names"):
        sb.tl.concat_real_synthetic(syn, syn, model)
    with pytest.raises(TypeError, match="AnnData"):
        sb.tl.concat_real_synthetic(adata, model)
