"""Generating at an internal node of the hierarchy: the node's types in their training proportions (or given
ones), in one tree walk, each cell labelled with its type and the node asked for."""

import numpy as np
import pytest
from scipy import stats

import scbranch as sb

from .conftest import fast

TREE = "((A:0.2,B:0.2)AB:0.5,(C:0.3,D:0.3)CD:0.4)top;"
SIZES = {"A": 150, "B": 50, "C": 100, "D": 100}


@pytest.fixture(scope="module")
def four():
    adata = sb.simulate.simulate_tree({"AB": {"A": None, "B": None}, "CD": {"C": None, "D": None}},
                                      n_cells=SIZES, n_genes=60, random_state=1)
    model = sb.tl.fit(adata, groupby="cell_type", hierarchy=TREE, random_state=0, **fast(max_steps=400))
    return model, adata


def test_node_cells_follow_the_training_proportions_and_their_types(four):
    model, adata = four
    syn = sb.tl.generate(model, {"AB": 5000}, random_state=2, progress=False)
    assert syn.n_obs == 5000 and set(syn.obs["scbranch_node"]) == {"AB"}
    counts = syn.obs["cell_type"].value_counts()
    assert set(counts[counts > 0].index) == {"A", "B"}
    expected = 5000 * np.array([150, 50]) / 200
    assert stats.chisquare([counts["A"], counts["B"]], expected).pvalue > 1e-3
    # each type's generated cells sit at that type's real cells, not at the sibling's
    z_real, y_real = adata.obsm["X_scbranch"], adata.obs["cell_type"].astype(str).to_numpy()
    z_syn, y_syn = syn.obsm["X_scbranch"], syn.obs["cell_type"].astype(str).to_numpy()
    cent = {t: z_real[y_real == t].mean(0) for t in SIZES}
    for t, other in (("A", "B"), ("B", "A")):
        mine = z_syn[y_syn == t].mean(0)
        assert np.linalg.norm(mine - cent[t]) < 0.5 * np.linalg.norm(mine - cent[other])


def test_given_proportions_mixed_requests_and_errors(four):
    model, _ = four
    syn = sb.tl.generate(model, {"CD": 300, "A": 20}, proportions={"C": 1, "D": 3}, progress=False)
    node = syn.obs["scbranch_node"].astype(str)
    assert (node == "A").sum() == 20 and (syn.obs["cell_type"][node == "A"] == "A").all()
    cd = syn.obs["cell_type"][node == "CD"].value_counts()
    assert cd["A"] == 0 and 40 < cd["C"] < 110 and cd["C"] + cd["D"] == 300  # 75 expected
    only = sb.tl.generate(model, {"top": 50}, proportions={"B": 1}, progress=False)
    assert set(only.obs["cell_type"]) == {"B"}
    plain = sb.tl.generate(model, {"A": 3}, progress=False)
    assert "scbranch_node" not in plain.obs  # only when a node was asked for
    with pytest.raises(KeyError, match=r"unknown cell types or nodes \['EF'\].*nodes \['AB', 'CD', 'top'\]"):
        sb.tl.generate(model, {"EF": 3})
    with pytest.raises(KeyError, match="not below 'AB'"):
        sb.tl.generate(model, {"AB": 3}, proportions={"C": 1})
    with pytest.raises(ValueError, match="applies to internal nodes"):
        sb.tl.generate(model, {"A": 3}, proportions={"A": 1})
    with pytest.raises(ValueError, match="not all zero"):
        sb.tl.generate(model, {"AB": 3}, proportions={"A": 0})


def test_node_generation_is_reproducible_and_survives_save(four, tmp_path):
    model, _ = four
    a = sb.tl.generate(model, {"CD": 40}, random_state=5, progress=False)
    model.save(tmp_path / "m")
    b = sb.tl.generate(sb.BranchedDiffusion.load(tmp_path / "m"), {"CD": 40}, random_state=5, progress=False)
    np.testing.assert_array_equal(a.obsm["X_scbranch"], b.obsm["X_scbranch"])
    np.testing.assert_array_equal(a.obs["cell_type"], b.obs["cell_type"])
