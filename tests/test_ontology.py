"""Cell Ontology hierarchies (offline, cellxgene-ontology-guide)."""


import anndata as ad
import numpy as np
import pandas as pd
import pytest

import scbranch as sb
from scbranch.hierarchy._ontology import KNOWN_LABELS, map_labels, ontology_hierarchy

from .conftest import fast


def _join(h, a, b):
    """Name of the lowest node holding both leaves."""
    best = None
    for node in h.root.traverse():
        if {a, b} <= set(node.leaves()):
            best = node.name
    return best


def test_pbmc_labels_map_to_a_readable_tree():
    terms = map_labels(list(KNOWN_LABELS))
    assert terms["CD19+ B"] == "CL:0000236" and terms["CD14+ Monocyte"] == "CL:0001054"
    h = ontology_hierarchy(terms)
    assert sorted(h.leaves) == sorted(KNOWN_LABELS)
    assert _join(h, "CD19+ B", "CD8+ Cytotoxic T") == "lymphocyte"
    assert _join(h, "CD14+ Monocyte", "Dendritic") == "mononuclear phagocyte"
    assert _join(h, "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic") == "CD8-positive, alpha-beta T cell"
    assert _join(h, "CD4+/CD45RO+ Memory", "CD4+/CD25 T Reg") == "T cell"


def test_exact_synonym_normalized_and_id_matches():
    terms = map_labels(["B lymphocyte", "CD14+ monocyte", "natural killer cell", "CL:0000084"])
    assert terms == {"B lymphocyte": "CL:0000236", "CD14+ monocyte": "CL:0001054",
                     "natural killer cell": "CL:0000623", "CL:0000084": "CL:0000084"}
    assert map_labels(["my B cells"], mapping={"my B cells": "CL:0000236"}) == {"my B cells": "CL:0000236"}


def test_unmatched_labels_listed_with_closest_names():
    with pytest.raises(ValueError, match="could not map") as err:
        map_labels(["B cell", "B cel", "Foo bar cell"])
    text = str(err.value)
    assert "'B cel': closest CL names ['B cell'" in text and "'Foo bar cell'" in text
    assert "'B cell':" not in text


def test_deprecated_term_follows_replacement(scanpy_log):
    assert map_labels(["CL:0000054"]) == {"CL:0000054": "CL:0000062"}
    assert "deprecated" in scanpy_log.getvalue()


def test_label_at_an_internal_ontology_node():
    h = ontology_hierarchy(map_labels(["T cell", "CD8-positive, alpha-beta T cell", "CD4-positive, alpha-beta T cell",
                                       "B cell"]))
    node = next(n for n in h.internal_nodes if "T cell" in [c.name for c in n.children])
    # the generic "T cell" type is a leaf beside its subtypes, under the node for its own term
    assert node.name == "T cell [CL:0000084]"
    assert set(node.leaves()) == {"T cell", "CD8-positive, alpha-beta T cell", "CD4-positive, alpha-beta T cell"}


def test_fit_with_cell_ontology_on_pbmc(tmp_path):
    adata = sb.datasets.pbmc68k()
    model = sb.tl.fit(adata, groupby="bulk_labels", hierarchy="cl", **fast(max_steps=30))
    uns = adata.uns["scbranch"]
    assert uns["params"]["hierarchy_source"] == "cl"
    assert "lymphocyte" in [n.name for n in model.hierarchy.internal_nodes]
    bp = uns["branch_points"]
    assert {"conflict", "monotone_adjusted", "raw_time"} <= set(bp.columns)
    assert (bp.loc[bp.monotone_adjusted, "conflict"] != "").all() and (
        bp.loc[~bp.monotone_adjusted, "conflict"] == ""
    ).all()
    ax = sb.pl.hierarchy(adata, save=tmp_path / "h.png")
    assert len(ax.get_yticklabels()) == 10 and "(240)" in ax.get_yticklabels()[-1].get_text() + "".join(
        t.get_text() for t in ax.get_yticklabels())
    boxes = [t.get_window_extent(ax.figure.canvas.get_renderer()) for t in ax.texts]  # node names readable
    assert len(boxes) >= 5 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    sb.pl.branch_points(adata, save=tmp_path / "bp.png")
    assert (tmp_path / "h.png").stat().st_size > 5000 and (tmp_path / "bp.png").stat().st_size > 5000


@pytest.fixture
def cellxgene_like():
    """Free-text labels CL cannot match, with CELLxGENE's ID column beside them."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["my B", "my CD8 T", "my CD4 T", "my monocytes"], 40)
    ids = {"my B": "CL:0000236", "my CD8 T": "CL:0000625", "my CD4 T": "CL:0000624", "my monocytes": "CL:0000576"}
    means = rng.normal(size=(4, 30)) * 3
    x = np.vstack([rng.poisson(np.exp(1 + m / 3), size=(40, 30)) for m in means]).astype(np.float32)
    obs = pd.DataFrame({"cell_type": labels, "cell_type_ontology_term_id": [ids[lab] for lab in labels]},
                       index=[f"c{i}" for i in range(len(labels))])
    return ad.AnnData(x, obs=obs)


def test_cellxgene_style_ontology_column(cellxgene_like):
    adata = cellxgene_like
    with pytest.raises(ValueError, match="could not map"):
        sb.tl.fit(adata.copy(), groupby="cell_type", hierarchy="cl", **fast())
    model = sb.tl.fit(
        adata, groupby="cell_type", hierarchy="cl", **fast(max_steps=20, ontology_key="cell_type_ontology_term_id")
    )
    assert _join(model.hierarchy, "my B", "my CD8 T") == "lymphocyte"
    assert _join(model.hierarchy, "my CD8 T", "my CD4 T") != "lymphocyte"
    by_id = sb.tl.fit(adata.copy(), groupby="cell_type_ontology_term_id", hierarchy="cl", **fast(max_steps=20))
    assert set(by_id.types) == {"CL:0000236", "CL:0000625", "CL:0000624", "CL:0000576"}


def test_label_with_two_ontology_ids_is_an_error(cellxgene_like):
    adata = cellxgene_like.copy()
    adata.obs.loc[adata.obs_names[0], "cell_type_ontology_term_id"] = "CL:0000084"
    before = adata.copy()
    with pytest.raises(ValueError, match="more than one ID"):
        sb.tl.fit(adata, groupby="cell_type", hierarchy="cl", **fast(ontology_key="cell_type_ontology_term_id"))
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    assert "scbranch" not in adata.uns
