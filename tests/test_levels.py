"""A hierarchy from nested annotation columns (coarse → fine), on pbmc68k with a compartment column."""

import pandas as pd
import pytest

import scbranch as sb
from scbranch.hierarchy._levels import from_obs_columns

from .conftest import assert_adata_equal, fast

LINEAGE = {"CD14+ Monocyte": "myeloid", "Dendritic": "myeloid", "CD34+": "progenitor", "CD19+ B": "B",
           "CD56+ NK": "NK", "CD4+/CD25 T Reg": "T", "CD8+ Cytotoxic T": "T", "CD8+/CD45RA+ Naive Cytotoxic": "T",
           "CD4+/CD45RO+ Memory": "T", "CD4+/CD45RA+/CD25- Naive T": "T"}
COMPARTMENT = {"myeloid": "myeloid", "progenitor": "progenitor", "B": "lymphoid", "NK": "lymphoid", "T": "lymphoid"}


@pytest.fixture(scope="module")
def pbmc():
    adata = sb.datasets.pbmc68k()
    adata.obs["lineage"] = adata.obs["bulk_labels"].astype(str).map(LINEAGE).astype("category")
    adata.obs["compartment"] = adata.obs["lineage"].astype(str).map(COMPARTMENT).astype("category")
    return adata


def test_nested_columns_give_the_tree(pbmc):
    adata = pbmc.copy()
    model = sb.tl.fit(adata, groupby="bulk_labels", hierarchy=["compartment", "lineage"], **fast(max_steps=30))
    tree = model.hierarchy
    assert adata.uns["scbranch"]["params"]["hierarchy_source"] == "levels"
    assert sorted(tree.leaves) == sorted(LINEAGE)
    # single-child nodes collapse: "progenitor" holds only CD34+, "B" only CD19+ B, "NK" only CD56+ NK; the
    # "myeloid" compartment holds one lineage of the same name, which is the node kept
    names = {n.name for n in tree.internal_nodes}
    assert names == {"root", "lymphoid", "T", "myeloid"}
    assert sorted(tree.node("T").leaves()) == sorted(k for k, v in LINEAGE.items() if v == "T")
    assert {c.name for c in tree.node("lymphoid").children} == {"T", "CD19+ B", "CD56+ NK"}
    assert {c.name for c in tree.root.children} == {"lymphoid", "myeloid", "CD34+"}
    assert all(n.time > 0 for n in tree.internal_nodes)  # branch times calibrated from the data


def test_levels_that_are_not_nested_are_an_error_naming_the_labels(pbmc):
    adata = pbmc.copy()
    adata.obs["lineage"] = adata.obs["lineage"].astype(str)
    adata.obs.loc[adata.obs_names[adata.obs["bulk_labels"] == "Dendritic"][:3], "lineage"] = "T"
    snapshot = adata.copy()
    with pytest.raises(ValueError, match=r"not nested.*'Dendritic' under \['T', 'myeloid'\]"):
        sb.tl.fit(adata, groupby="bulk_labels", hierarchy=["lineage"], **fast(max_steps=30))
    assert_adata_equal(adata, snapshot)
    with pytest.raises(KeyError, match=r"not columns of adata\.obs"):
        sb.tl.fit(adata, groupby="bulk_labels", hierarchy=["tissue"], **fast(max_steps=30))


def test_level_names_that_repeat_across_levels_are_disambiguated():
    obs = pd.DataFrame({"coarse": ["B", "B", "T", "T"], "fine": ["B", "plasma", "CD4", "CD8"]})
    tree = from_obs_columns(obs, ["coarse", "fine"])
    assert {n.name for n in tree.internal_nodes} == {"root", "B (coarse)", "T"}
    obs.loc[0, "coarse"] = None
    with pytest.raises(ValueError, match=r"1 cells have no label in the hierarchy level\(s\) \['coarse'\]"):
        from_obs_columns(obs, ["coarse", "fine"])
