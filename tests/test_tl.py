import numpy as np
import pytest
from scipy import sparse

import scbranch as sb

from .conftest import TOY_TREE, dense, fast


def test_fit_writes_documented_keys(toy_model, toy_adata):
    model, adata = toy_model
    uns = adata.uns["scbranch"]
    assert set(uns) == {"hierarchy", "hierarchy_table", "branches", "branch_points", "separation", "params",
                        "training"}
    assert adata.obsm["X_scbranch"].shape == (adata.n_obs, model.representation.n_features)
    assert set(sb.Hierarchy.from_newick(uns["hierarchy"]).leaves) == {"A", "B", "C"}
    br = uns["branches"]
    assert list(br.columns) == ["branch", "node", "t_start", "t_end", "cell_types", "head"]
    assert (br.t_start < br.t_end).all() and br.t_end.max() == 1.0 and br.t_start.min() == 0.0
    bp = uns["branch_points"]
    assert len(bp) == 2 and bp.time.is_monotonic_decreasing
    assert uns["params"]["groupby"] == "cell_type" and uns["params"]["input_kind"] == "counts"
    assert len(uns["training"]["train_loss"]) == len(uns["training"]["step"]) >= 1
    assert uns["training"]["branch_loss"].shape[1] == len(br)
    # the far type C splits from (A, B) before A and B split from each other (later in diffusion time)
    h = model.hierarchy
    ab = [n for n in h.internal_nodes if set(n.leaves()) == {"A", "B"}]
    assert ab and ab[0].time < h.root.time


def test_generate_returns_annotated_cells(toy_model):
    model, adata = toy_model
    syn = sb.tl.generate(model, {"A": 30, "C": 20}, progress=False)
    assert syn.shape == (50, adata.n_vars) and syn.var_names.equals(adata.var_names)
    assert syn.obs["cell_type"].value_counts().to_dict() == {"A": 30, "C": 20}
    assert syn.obs["scbranch_synthetic"].all()
    assert syn.obsm["X_scbranch"].shape == (50, model.representation.n_features)
    assert sparse.issparse(syn.X) and syn.X.min() >= 0 and np.isfinite(syn.X.data).all()
    gen = syn.uns["scbranch"]["generate"]
    assert gen["sampler"] == "euler_maruyama" and gen["nfe_per_trajectory"] == 50
    assert gen["nfe"] > 0 and gen["n_evals"] >= gen["nfe"]
    syn_all = sb.tl.generate(model, 10, progress=False)
    assert syn_all.obs["cell_type"].value_counts().to_dict() == {"A": 10, "B": 10, "C": 10}


def test_same_seed_same_cells_different_seed_different(toy_model):
    model, _ = toy_model
    a = sb.tl.generate(model, 20, sampler="euler_maruyama", n_steps=50, random_state=3, progress=False)
    b = sb.tl.generate(model, 20, sampler="euler_maruyama", n_steps=50, random_state=3, progress=False)
    c = sb.tl.generate(model, 20, sampler="euler_maruyama", n_steps=50, random_state=4, progress=False)
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    np.testing.assert_array_equal(dense(a.layers["lognorm"]), dense(b.layers["lognorm"]))  # counts in .X
    assert not np.allclose(dense(a.X), dense(c.X))


def test_fit_is_reproducible(toy_adata):
    kw = fast(max_steps=60)
    m1 = sb.tl.fit(toy_adata.copy(), groupby="cell_type", random_state=1, **kw)
    m2 = sb.tl.fit(toy_adata.copy(), groupby="cell_type", random_state=1, **kw)
    for p1, p2 in zip(m1.module.parameters(), m2.module.parameters()):
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())


def test_shared_walk_costs_fewer_evaluations(toy_model):
    model, _ = toy_model
    shared = sb.tl.generate(model, 50, progress=False).uns["scbranch"]["generate"]
    alone = sb.tl.generate(model, 50, shared=False, progress=False).uns["scbranch"]["generate"]
    assert shared["n_evals"] < alone["n_evals"] and shared["nfe"] < alone["nfe"]


def test_synthetic_cells_land_near_their_own_type(toy_model):
    model, adata = toy_model
    syn = sb.tl.generate(model, 100, progress=False)
    table = sb.metrics.centroid_table(adata.obsm["X_scbranch"], adata.obs["cell_type"],
                                      syn.obsm["X_scbranch"], syn.obs["cell_type"])
    assert table["ok"].all(), table


@pytest.mark.parametrize("sampler", ["ddim", "heun", "euler_maruyama", "pc", "dpm_solver_2"])
def test_every_sampler_runs_through_the_tree(toy_model, sampler):
    model, _ = toy_model
    syn = sb.tl.generate(model, 5, sampler=sampler, n_steps=20, spacing="logsnr", progress=False)
    per_step = 2 if sampler in ("heun", "pc", "dpm_solver_2") else 1
    assert syn.n_obs == 15 and syn.uns["scbranch"]["generate"]["nfe_per_trajectory"] == 20 * per_step


def test_save_load_round_trip(toy_model, tmp_path):
    model, adata = toy_model
    model.save(tmp_path / "m")
    loaded = sb.BranchedDiffusion.load(tmp_path / "m", adata)
    a = sb.tl.generate(model, 15, random_state=7, progress=False)
    b = sb.tl.generate(loaded, 15, random_state=7, progress=False)
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    assert loaded.types == model.types and loaded.hierarchy.to_newick() == model.hierarchy.to_newick()
    np.testing.assert_allclose(loaded.get_latent(adata), adata.obsm["X_scbranch"], atol=1e-5)
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="genes are missing"):
        sb.BranchedDiffusion.load(tmp_path / "m", adata[:, :10].copy())


@pytest.mark.parametrize("form", ["dict", "newick", "table"])
def test_given_tree_sets_topology(toy_adata, form):
    h = sb.Hierarchy.from_dict(TOY_TREE)
    tree = {"dict": TOY_TREE, "newick": h.to_newick(), "table": h.to_table().drop(columns="time")}[form]
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", hierarchy=tree, **fast(max_steps=30))
    assert {frozenset(n.leaves()) for n in model.hierarchy.internal_nodes} == {
        frozenset({"A", "B"}), frozenset({"A", "B", "C"})}
    assert adata.uns["scbranch"]["params"]["hierarchy_source"] == "given"


def test_lognormalized_input_is_detected(toy_adata):
    adata = toy_adata.copy()
    adata.layers["lognorm"] = np.log1p(adata.X / adata.X.sum(1, keepdims=True) * 1e4)
    sb.tl.fit(adata, groupby="cell_type", layer="lognorm", **fast(max_steps=20))
    assert adata.uns["scbranch"]["params"]["input_kind"] == "lognorm"


def test_drop_small_skips_rare_types(toy_adata):
    adata = toy_adata[np.r_[0:100, 120:220, 220:223]].copy()  # C has 3 cells
    model = sb.tl.fit(adata, groupby="cell_type", **fast(max_steps=20, min_cells=5, drop_small=True))
    assert model.types == ["A", "B"] and adata.obsm["X_scbranch"].shape[0] == adata.n_obs


def test_componentwise_schedule_fits_calibrates_and_round_trips(toy_adata, tmp_path):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast(max_steps=100, softness=1.0))
    sde = model.module.sde
    assert isinstance(sde, sb.module.ComponentwiseVPSDE) and sde.softness == 1.0
    assert sde.order[0] == 0.0  # PC1 has the most variance: generated first
    # branch times come from the same per-component SDE: ((A, B), C) still joins in that order
    ab = [n for n in model.hierarchy.internal_nodes if set(n.leaves()) == {"A", "B"}]
    assert ab and 0 < ab[0].time < model.hierarchy.root.time
    syn = sb.tl.generate(model, 15, progress=False, random_state=0)
    assert syn.n_obs == 45 and np.isfinite(syn.X.data).all()
    model.save(tmp_path / "m")
    again = sb.BranchedDiffusion.load(tmp_path / "m")
    assert again.module.sde == sde
    np.testing.assert_allclose(dense(sb.tl.generate(again, 15, progress=False, random_state=0).X), dense(syn.X),
                               atol=1e-5)
    with pytest.raises(ValueError, match="softness"):
        sb.tl.fit(toy_adata.copy(), groupby="cell_type", **fast(softness=0.0))
