"""Everything the tools write survives write_h5ad → read_h5ad, with type names that break naive storage."""

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import scbranch as sb
from scbranch.hierarchy import Hierarchy

from .conftest import fast

NAMES = {"A": 'CD4+/CD25 "T" Reg', "B": "B (naïve): 1", "C": "mono's cells | 2"}


@pytest.fixture(scope="module")
def tricky(toy_adata):
    adata = toy_adata.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].map(NAMES).astype("category")
    # a category order that is neither alphabetical nor by size, and colours for it
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.reorder_categories([NAMES["C"], NAMES["A"], NAMES["B"]])
    adata.uns["cell_type_colors"] = ["#ff0000", "#00ff00", "#0000ff"]
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    return model, adata


def round_trip(adata: ad.AnnData, path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FutureWarning on "/" keys, OldFormatWarning on read: all fail here
        adata.write_h5ad(path)
        return ad.read_h5ad(path)


def test_fit_keys_round_trip(tricky, tmp_path):
    _model, adata = tricky
    back = round_trip(adata, tmp_path / "fit.h5ad")
    uns = back.uns["scbranch"]
    assert set(uns) >= {"hierarchy", "hierarchy_table", "branches", "params", "training"}
    tree = Hierarchy.from_table(uns["hierarchy_table"])
    assert sorted(tree.leaves) == sorted(NAMES.values())
    cell_types = {t for v in uns["branches"]["cell_types"] for t in json.loads(v)}
    assert cell_types == set(NAMES.values())
    flat = pd.json_normalize(uns["params"]).iloc[0].astype(str).tolist()
    assert "None" not in flat and "heads" not in uns["params"]
    np.testing.assert_allclose(back.obsm["X_scbranch"], adata.obsm["X_scbranch"])
    assert sb.pl.hierarchy(back) is not None


def test_generate_keeps_order_colours_and_unique_names(tricky, tmp_path):
    model, adata = tricky
    syn = sb.tl.generate(model, 5, progress=False, random_state=1)
    assert list(syn.obs["cell_type"].cat.categories) == list(adata.obs["cell_type"].cat.categories)
    assert syn.uns["cell_type_colors"] == ["#ff0000", "#00ff00", "#0000ff"]
    other = sb.tl.generate(model, 5, progress=False, random_state=2)
    assert not set(syn.obs_names) & set(other.obs_names)
    assert list(sb.tl.generate(model, 2, obs_prefix="x", progress=False).obs_names[:2]) == ["x0", "x1"]
    back = round_trip(syn, tmp_path / "syn.h5ad")
    assert back.uns["scbranch"]["generate"]["sampler"] == "euler_maruyama"
    np.testing.assert_array_equal(back.X.toarray(), syn.X.toarray())  # counts in, counts out
    np.testing.assert_array_equal(back.layers["lognorm"].toarray(), syn.layers["lognorm"].toarray())


def test_augment_and_transmute_round_trip(tricky, tmp_path):
    model, adata = tricky
    rare = adata[np.r_[0:120, 120:130, 220:300]].copy()
    aug = sb.tl.augment(rare, model, min_cells=50, progress=False)
    back = round_trip(aug, tmp_path / "aug.h5ad")
    added = back.uns["scbranch"]["augment"]["added"]
    assert dict(zip(added["cell_type"], added["n_added"])) == {NAMES["B"]: 40}
    assert list(back.obs["cell_type"].cat.categories) == list(adata.obs["cell_type"].cat.categories)
    out = sb.tl.transmute(adata, model, source=NAMES["A"], target=NAMES["C"], n_steps=20)
    back = round_trip(out, tmp_path / "transmuted.h5ad")
    assert back.uns["scbranch"]["transmute"]["target"] == NAMES["C"]
    assert set(back.obs["transmuted_from"]) == {NAMES["A"]}
    np.testing.assert_array_equal(back.obsm["X_scbranch"], out.obsm["X_scbranch"])


def test_add_cell_type_round_trip(toy_adata, tmp_path):
    adata = toy_adata[toy_adata.obs["cell_type"] != "C"].copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    new = toy_adata[toy_adata.obs["cell_type"] == "C"].copy()
    new.obs["cell_type"] = new.obs["cell_type"].astype(str).map({"C": "T/NK (new)"})
    sb.tl.add_cell_type(new, model, max_steps=100, progress=False)
    back = round_trip(new, tmp_path / "new.h5ad")
    assert "T/NK (new)" in Hierarchy.from_table(back.uns["scbranch"]["hierarchy_table"]).leaves
    syn = sb.tl.generate(model, {"T/NK (new)": 5}, progress=False)
    assert syn.obs["cell_type"].tolist() == ["T/NK (new)"] * 5
