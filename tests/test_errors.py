"""Bad input gives a clear error and leaves the user's AnnData exactly as it was."""

import numpy as np
import pytest

import scbranch as sb

from .conftest import assert_adata_equal, fast

KW = fast(max_steps=20)


def _check(adata, exc, match, **kwargs):
    before = adata.copy()
    with pytest.raises(exc, match=match):
        sb.tl.fit(adata, **fast(**{"groupby": "cell_type", "max_steps": 20, **kwargs}))
    assert_adata_equal(adata, before)


def test_missing_groupby(toy_adata):
    _check(toy_adata.copy(), KeyError, "not a column of adata.obs", groupby="celltype")


def test_too_few_cells_names_the_type(toy_adata):
    adata = toy_adata[np.r_[0:100, 120:220, 220:223]].copy()
    _check(adata, ValueError, r"'C' \(3 cells\)", min_cells=5)


def test_missing_labels(toy_adata):
    adata = toy_adata.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.add_categories("x")
    adata.obs.iloc[0, adata.obs.columns.get_loc("cell_type")] = np.nan
    _check(adata, ValueError, "have no label")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(toy_adata, bad):
    adata = toy_adata.copy()
    adata.X[3, 4] = bad
    _check(adata, ValueError, "NaN/inf")


def test_negative_values_point_to_raw(toy_adata):
    adata = toy_adata.copy()
    adata.X = adata.X - adata.X.mean(0)
    _check(adata, ValueError, "negative values.*use_raw")


def test_non_numeric_matrix(toy_adata):
    adata = toy_adata.copy()
    adata.layers["text"] = adata.X.astype(str)
    _check(adata, TypeError, "must be numeric", layer="text")


def test_tree_leaves_must_match_labels(toy_adata):
    _check(toy_adata.copy(), ValueError, "not leaves of the hierarchy", hierarchy={"X": {"A": None, "B": None}})


def test_bad_layer_and_raw(toy_adata):
    _check(toy_adata.copy(), KeyError, "not in adata.layers", layer="nope")
    _check(toy_adata.copy(), ValueError, "adata.raw is None", use_raw=True)


def test_counts_expected_but_not_given(toy_adata):
    adata = toy_adata.copy()
    adata.X = adata.X + 0.5
    _check(adata, ValueError, "expected to hold counts", input_kind="counts")


def test_generate_unknown_type_and_bad_sampler(toy_model):
    model, _ = toy_model
    with pytest.raises(KeyError, match="unknown cell types"):
        sb.tl.generate(model, {"Z": 3}, progress=False)
    with pytest.raises(ValueError, match="unknown sampler"):
        sb.tl.generate(model, 3, sampler="rk45", progress=False)
    with pytest.raises(ValueError, match="at least one cell"):
        sb.tl.generate(model, 0, progress=False)


@pytest.mark.parametrize("steps", [0, 10, -1, 2.5, True])
def test_training_budget_too_small_is_a_clear_error(toy_adata, toy_model, steps):
    _check(toy_adata.copy(), ValueError, "max_steps must be an integer >= 20", max_steps=steps)
    model, _ = toy_model
    n_types, table = len(model.types), model.hierarchy.to_table()
    new = toy_adata[toy_adata.obs["cell_type"] == "C"].copy()
    new.obs["cell_type"] = "D"
    with pytest.raises(ValueError, match="max_steps must be an integer >= 20"):
        sb.tl.add_cell_type(new, model, max_steps=steps, progress=False)
    assert len(model.types) == n_types and model.hierarchy.to_table().equals(table)  # the model is unchanged


def test_groupby_defaults_to_a_usual_label_column(toy_adata):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, **KW)  # obs["cell_type"]
    assert model.groupby == "cell_type" and adata.uns["scbranch"]["params"]["groupby"] == "cell_type"
    other = toy_adata.copy()
    other.obs = other.obs.rename(columns={"cell_type": "annotation"})
    _check(other, KeyError, "pass groupby=.*'annotation'", groupby=None)
