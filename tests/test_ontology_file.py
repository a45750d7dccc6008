"""fit(hierarchy="path.obo"): any ontology file, labels mapped as for the Cell Ontology (ids, names, synonyms)."""

import pytest

import scbranch as sb
from scbranch.hierarchy._ontology import map_labels, ontology_hierarchy, read_ontology

from .conftest import assert_adata_equal, fast

OBO = """format-version: 1.2
ontology: toy

[Term]
id: TOY:0000001
name: cell

[Term]
id: TOY:0000002
name: lymphoid cell
is_a: TOY:0000001 ! cell

[Term]
id: TOY:0000003
name: alpha cell
synonym: "A" EXACT []
is_a: TOY:0000002 ! lymphoid cell

[Term]
id: TOY:0000004
name: beta cell
synonym: "B" EXACT []
is_a: TOY:0000002 ! lymphoid cell

[Term]
id: TOY:0000005
name: gamma cell
is_a: TOY:0000001 ! cell

[Term]
id: TOY:0000006
name: old gamma cell
is_obsolete: true
replaced_by: TOY:0000005
"""


@pytest.fixture
def obo(tmp_path):
    path = tmp_path / "toy.obo"
    path.write_text(OBO)
    return path


def test_fit_with_an_obo_file(toy_adata, obo):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", hierarchy=str(obo),
                      **fast(max_steps=30, ontology_mapping={"C": "TOY:0000006"}))  # obsolete → its replacement
    tree = model.hierarchy
    assert adata.uns["scbranch"]["params"]["hierarchy_source"] == "ontology file"
    assert tree.root.name == "cell" and sorted(c.name for c in tree.root.children) == ["C", "lymphoid cell"]
    assert sorted(tree.node("lymphoid cell").leaves()) == ["A", "B"]
    assert all(n.time > 0 for n in tree.internal_nodes)


def test_ontology_file_mapping_and_errors(toy_adata, obo):
    onto = read_ontology(obo)
    assert onto["TOY:0000003"]["ancestors"] == {"TOY:0000002": 1, "TOY:0000001": 2}
    terms = map_labels(["A", "beta cell", "TOY:0000005"], onto=onto)  # synonym, name, id
    assert terms == {"A": "TOY:0000003", "beta cell": "TOY:0000004", "TOY:0000005": "TOY:0000005"}
    assert ontology_hierarchy(terms, onto).root.name == "cell"
    adata = toy_adata.copy()
    snapshot = adata.copy()
    with pytest.raises(ValueError, match=r"(?s)could not map these labels to ontology terms.*'C': closest ontology"):
        sb.tl.fit(adata, groupby="cell_type", hierarchy=str(obo), **fast(max_steps=30))
    assert_adata_equal(adata, snapshot)
