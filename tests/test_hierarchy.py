import ete3
import numpy as np
import pandas as pd
import pytest

import scbranch as sb
from scbranch._normalize import to_lognorm
from scbranch.hierarchy import Hierarchy, SeparationTest, calibrate_times, data_topology
from scbranch.module import VPSDE
from scbranch.representation import PCARepresentation

NAMES = {"lymphoid": {"CD4+/CD45RA+ T": None, "CD19+ B": None}, "myeloid": ["CD14+ Monocyte", "Dendritic: cDC (1)"]}


def timed(h: Hierarchy) -> Hierarchy:
    for node in h.root.traverse("post"):
        if not node.is_leaf:
            node.time = max(c.time for c in node.children) + 0.25
    return h


def test_dict_round_trip():
    h = Hierarchy.from_dict(NAMES)
    assert sorted(h.leaves) == sorted(["CD4+/CD45RA+ T", "CD19+ B", "CD14+ Monocyte", "Dendritic: cDC (1)"])
    assert Hierarchy.from_dict(h.to_dict()).to_dict() == h.to_dict()


def test_newick_round_trip_with_awkward_names_and_times():
    h = timed(Hierarchy.from_dict(NAMES))
    s = h.to_newick()
    parsed = ete3.Tree(s, format=1, quoted_node_names=True)  # readable by ete3 as documented
    assert sorted(parsed.get_leaf_names()) == sorted(h.leaves)
    back = Hierarchy.from_newick(s)
    assert back.to_newick() == s
    assert back.node("lymphoid").time == pytest.approx(0.25)
    assert back.root.time == pytest.approx(0.5)


def test_table_round_trip():
    h = timed(Hierarchy.from_dict(NAMES))
    table = h.to_table()
    assert list(table.columns) == ["node", "parent", "time"] and len(table) == 7
    back = Hierarchy.from_table(table)
    assert back.to_newick() == h.to_newick()
    # any two columns, no times
    t2 = pd.DataFrame({"child": ["x", "y", "z", "xy"], "up": ["xy", "xy", "top", "top"]})
    h2 = Hierarchy.from_table(t2, child="child", parent="up", time=None)
    assert sorted(h2.leaves) == ["x", "y", "z"] and not h2.has_times


def test_times_must_decrease_towards_leaves():
    with pytest.raises(ValueError, match="must not increase"):
        Hierarchy.from_table(pd.DataFrame({"node": ["r", "ab", "a", "b", "c"], "parent": ["", "r", "ab", "ab", "r"],
                                           "time": [0.3, 0.5, 0, 0, 0]}))  # ab at 0.5 under a root at 0.3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Hierarchy.from_newick("((a:0.5,b:0.5):0.7,c:1.2);")


def test_table_rejects_two_parents():
    t = pd.DataFrame({"node": ["a", "a"], "parent": ["p", "q"]})
    with pytest.raises(ValueError, match="two parents"):
        Hierarchy.from_table(t)


def test_prune_collapses_unary_nodes():
    h = Hierarchy.from_dict(NAMES).prune(["CD19+ B", "CD14+ Monocyte", "Dendritic: cDC (1)"])
    # "lymphoid" is left with one child and disappears
    assert [n.name for n in h.internal_nodes] == ["root", "myeloid"]
    with pytest.raises(ValueError, match="not in the hierarchy"):
        h.prune(["NK"])


def test_branches_cover_time_once_per_type():
    h = timed(Hierarchy.from_dict(NAMES))
    df = h.branches()
    assert df.t_start.le(df.t_end).all()
    for ty in h.leaves:
        rows = df[df.cell_types.map(lambda c, ty=ty: ty in c)].sort_values("t_start")
        # contiguous intervals from 0 to 1
        assert rows.t_start.iloc[0] == 0.0 and rows.t_end.iloc[-1] == 1.0
        np.testing.assert_allclose(rows.t_end.to_numpy()[:-1], rows.t_start.to_numpy()[1:])


def _rf(newick_a: str, newick_b: str) -> int:
    ta = ete3.Tree(newick_a, format=1, quoted_node_names=True)
    tb = ete3.Tree(newick_b, format=1, quoted_node_names=True)
    return ta.robinson_foulds(tb, unrooted_trees=False)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_data_topology_recovers_simulated_tree(seed):
    tree = sb.simulate.balanced_tree(6)
    adata = sb.simulate.simulate_tree(tree, n_cells=150, n_genes=100, random_state=seed)
    x = to_lognorm(adata.X, "counts")
    z = PCARepresentation(15).fit(x).transform(x)
    test = SeparationTest(z, adata.obs["cell_type"].astype(str), VPSDE())
    h = data_topology(test, list(adata.obs["cell_type"].cat.categories))
    assert _rf(h.to_newick(), adata.uns["true_hierarchy"]) == 0
    h, table, curves = calibrate_times(h, test)
    # times never increase from root to leaf, and the root (largest separation) splits last
    for node in h.internal_nodes:
        assert all(c.time <= node.time for c in node.children)
    assert h.root.time == table.time.max() and h.root.time > max(c.time for c in h.root.children)
    assert curves["statistic"].shape == (len(h.internal_nodes), len(curves["time"]))


def test_separation_time_orders_with_distance():
    rng = np.random.default_rng(0)
    z = np.vstack([rng.normal(size=(100, 5)), rng.normal(size=(100, 5)) + 2, rng.normal(size=(100, 5)) + 4])
    labels = ["a"] * 100 + ["b"] * 100 + ["c"] * 100
    test = SeparationTest(z, labels, VPSDE())
    near, far = test.curve(["a"], ["b"]), test.curve(["a"], ["c"])
    assert near["statistic"][0] > near["threshold"][0] and near["statistic"][-1] < near["threshold"][-1]
    assert 0.2 < near["time"] < far["time"] < 1.0
    assert np.all(np.diff(far["statistic"]) <= 1e-9)  # monotone: one crossing
    # two samples of the *same* distribution: indistinguishable from (almost) the start
    same = rng.normal(size=(600, 5))
    t_same = SeparationTest(same, ["x"] * 300 + ["y"] * 300, VPSDE()).curve(["x"], ["y"])["time"]
    assert t_same < 0.15


def test_tree_surgery_ancestors_lca_insert_leaf():
    tree = Hierarchy.from_newick("((A:0.2,B:0.2)AB:0.5,C:0.7)root;")
    assert tree.ancestors("A") == ["AB", "root"] and tree.ancestors("root") == []
    assert tree.lca("A", "B") == "AB" and tree.lca("A", "C") == "root" and tree.lca("AB", "A") == "AB"
    grown, cut, cut_from = tree.insert_leaf("D", "B", 0.1)
    assert (cut, cut_from) == ("D + B", "B")
    assert grown.ancestors("D") == ["D + B", "AB", "root"] and grown.node("D + B").time == 0.1
    assert tree.leaves == ["A", "B", "C"]  # the original is untouched
    above, cut, cut_from = tree.insert_leaf("E", "C", 0.9)  # above the root: a new root
    assert above.root.name == cut and cut_from == "root" and above.root.time == 0.9
    with pytest.raises(KeyError):
        tree.ancestors("nope")
    with pytest.raises(ValueError, match="already a node"):
        tree.insert_leaf("A", "B", 0.1)
