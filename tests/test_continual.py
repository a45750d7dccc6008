"""Adding cell types, transmutation, augmentation, and the flat baseline."""

import numpy as np
import pytest

import scbranch as sb

from .conftest import assert_adata_equal, dense, fast

TREE4 = {"AB": {"A": None, "B": None}, "CD": {"C": None, "D": None}}


@pytest.fixture(scope="module")
def four_types():
    return sb.simulate.simulate_tree(TREE4, n_cells=120, n_genes=60, random_state=1)


@pytest.fixture(scope="module")
def three_type_model(four_types):
    old = four_types[four_types.obs["cell_type"] != "D"].copy()
    model = sb.tl.fit(old, groupby="cell_type", **fast(max_steps=400))
    return model, old


def _fresh(three_type_model, tmp_path):
    model, old = three_type_model
    model.save(tmp_path / "m", overwrite=True)
    return sb.BranchedDiffusion.load(tmp_path / "m"), old


def _centroids(z, labels):
    labels = np.asarray(labels, dtype=str)
    return {t: z[labels == t].mean(0) for t in np.unique(labels)}


def test_add_type_heads_only_keeps_old_types_identical(three_type_model, four_types, tmp_path):
    model, _old = _fresh(three_type_model, tmp_path)
    new = four_types[four_types.obs["cell_type"] == "D"].copy()
    request = {"A": 25, "B": 25, "C": 25}
    before = sb.tl.generate(model, request, random_state=5, progress=False)
    sb.tl.add_cell_type(new, model, mode="heads", max_steps=400, progress=False)
    assert model.types == ["A", "B", "C", "D"]
    # placed beside its true sibling C
    parent = next(n for n in model.hierarchy.internal_nodes if "D" in [c.name for c in n.children])
    assert set(parent.leaves()) == {"C", "D"}
    placements = new.uns["scbranch"]["continual"]["placements"]
    assert placements.anchor.tolist() == ["C"] and 0 < placements.time.iloc[0] < 1
    after = sb.tl.generate(model, request, random_state=5, progress=False)
    np.testing.assert_array_equal(dense(before.X), dense(after.X))
    # the new type's cells land nearest its own real cells
    syn = sb.tl.generate(model, {"D": 100}, progress=False)
    z_all = model.get_latent(four_types)
    cents = _centroids(z_all, four_types.obs["cell_type"])
    m = syn.obsm["X_scbranch"].mean(0)
    assert min(cents, key=lambda t: np.linalg.norm(cents[t] - m)) == "D"
    # the saved model carries the new type
    model.save(tmp_path / "m2")
    again = sb.BranchedDiffusion.load(tmp_path / "m2")
    np.testing.assert_array_equal(dense(sb.tl.generate(again, {"D": 10}, progress=False).X),
                                  dense(sb.tl.generate(model, {"D": 10}, progress=False).X))


def test_add_type_with_replay_trains_upstream_and_keeps_old_types_close(three_type_model, four_types, tmp_path):
    model, _old = _fresh(three_type_model, tmp_path)
    new = four_types[four_types.obs["cell_type"] == "D"].copy()
    before = sb.tl.generate(model, 150, random_state=2, progress=False)
    sb.tl.add_cell_type(new, model, mode="replay", max_steps=400, progress=False)
    trained = new.uns["scbranch"]["continual"]["trained_heads"]
    assert len(trained) >= 3  # new leaf, new node, and at least the root branch above it
    after = sb.tl.generate(model, {"A": 150, "B": 150, "C": 150}, random_state=2, progress=False)
    cb = _centroids(before.obsm["X_scbranch"], before.obs["cell_type"])
    ca = _centroids(after.obsm["X_scbranch"], after.obs["cell_type"])
    spacing = min(np.linalg.norm(cb[a] - cb[b]) for a in cb for b in cb if a < b)
    for t in ("A", "B", "C"):
        assert np.linalg.norm(cb[t] - ca[t]) < 0.25 * spacing


def test_add_existing_type_is_an_error_and_changes_nothing(three_type_model, tmp_path):
    model, old = _fresh(three_type_model, tmp_path)
    again = old[old.obs["cell_type"] == "A"].copy()
    snapshot = again.copy()
    with pytest.raises(ValueError, match="already in the model"):
        sb.tl.add_cell_type(again, model, progress=False)
    assert_adata_equal(again, snapshot)
    assert model.types == ["A", "B", "C"]


def test_transmute_moves_cells_toward_target(three_type_model, tmp_path):
    model, old = three_type_model
    adata = old.copy()
    snapshot = adata.copy()
    out = sb.tl.transmute(adata, model, source="A", target="C")
    assert_adata_equal(adata, snapshot)  # the input is only read: the result is a new AnnData
    is_a = (adata.obs["cell_type"] == "A").to_numpy()
    assert out.n_obs == is_a.sum() and (out.obs["cell_type"] == "C").all()
    assert (out.obs["transmuted_from"] == "A").all()
    assert list(out.obs_names) == [f"{n}-transmuted" for n in adata.obs_names[is_a]]
    assert list(out.obs["cell_type"].cat.categories) == model.type_order
    assert "lognorm" in out.layers and out.shape[1] == len(model.var_names)  # counts in .X, as the input
    z = out.obsm["X_scbranch"]
    np.testing.assert_allclose(out.obsm["X_scbranch_source"], model.get_latent(adata[is_a]), atol=1e-5)
    cents = _centroids(model.get_latent(adata), adata.obs["cell_type"])
    moved = z.mean(0)
    assert np.linalg.norm(moved - cents["C"]) < 0.5 * np.linalg.norm(cents["A"] - cents["C"])
    t_shared = out.uns["scbranch"]["transmute"]["time"]
    assert t_shared == pytest.approx(model.hierarchy.root.time)  # A and C only meet at the root
    axes = sb.pl.transmutation(adata, out, model, save=tmp_path / "tr.png")
    assert len(axes) == 2 and (tmp_path / "tr.png").stat().st_size > 5000
    with pytest.warns(FutureWarning, match="AnnData first"):  # the order before 0.3
        again = sb.tl.transmute(model, adata, source="A", target="C")
    np.testing.assert_array_equal(again.obsm["X_scbranch"], z)


def test_transmute_errors_leave_adata_unchanged(three_type_model):
    model, old = three_type_model
    adata = old.copy()
    snapshot = adata.copy()
    with pytest.raises(KeyError, match="unknown target"):
        sb.tl.transmute(adata, model, source="A", target="Z")
    with pytest.raises(KeyError, match="unknown source"):
        sb.tl.transmute(adata, model, source="Z", target="A")
    with pytest.raises(ValueError, match="same type"):
        sb.tl.transmute(adata, model, source="A", target="A")
    assert_adata_equal(adata, snapshot)


def test_augment_tops_up_rare_types(three_type_model):
    model, old = three_type_model
    rare = old[np.r_[0:120, 120:130, 240:360]].copy()  # B has 10 cells
    out = sb.tl.augment(rare, model, min_cells=100, progress=False)
    counts = out.obs["cell_type"].value_counts()
    assert counts["B"] == 100 and counts["A"] == 120 and counts["C"] == 120
    assert out.obs["scbranch_synthetic"].sum() == 90
    assert (out.obs.loc[out.obs["scbranch_synthetic"], "cell_type"] == "B").all()
    real = ~out.obs["scbranch_synthetic"].to_numpy()
    np.testing.assert_array_equal(dense(out[real].X), dense(rare.X))  # the real counts as they were
    np.testing.assert_allclose(dense(out[real].layers["lognorm"][:5]), model.get_lognorm(rare)[:5], rtol=1e-6)
    assert out.X[~real].max() > 20  # synthetic counts beside real counts: one scale


def test_flat_baseline_has_one_branch_per_type(four_types):
    adata = four_types.copy()
    model = sb.tl.fit(adata, groupby="cell_type", **fast(max_steps=30, branched=False))
    assert len(model.branches) == 4 and (model.branches.t_start == 0).all() and (model.branches.t_end == 1).all()
    gen = sb.tl.generate(model, 10, n_steps=40, progress=False).uns["scbranch"]["generate"]
    assert gen["nfe"] == 4 * 40 and gen["n_evals"] == 4 * 10 * 40
    with pytest.raises(ValueError, match="no hierarchy"):
        sb.tl.fit(four_types.copy(), groupby="cell_type", hierarchy=TREE4, **fast(branched=False))


def test_augment_keeps_real_annotations_and_embeddings(three_type_model):
    model, old = three_type_model
    rare = old[np.r_[0:120, 120:130, 240:360]].copy()
    rare.obs["donor"] = "d1"
    rare.obsm["X_umap"] = np.random.default_rng(0).normal(size=(rare.n_obs, 2))
    out = sb.tl.augment(rare, model, min_cells=100, progress=False)
    real = ~out.obs["scbranch_synthetic"].to_numpy()
    assert (out.obs.loc[real, "donor"] == "d1").all() and out.obs.loc[~real, "donor"].isna().all()
    # embeddings of the real cells only are left out (NaN rows broke sc.pp.neighbors); model space for all
    assert "X_umap" not in out.obsm and np.isfinite(out.obsm["X_scbranch"]).all()
