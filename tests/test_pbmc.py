"""Real cells: pbmc68k_reduced (ships with scanpy)."""

import numpy as np
import pytest

import scbranch as sb


@pytest.fixture(scope="module")
def pbmc_fit():
    adata = sb.datasets.pbmc68k()
    model = sb.tl.fit(
        adata, groupby="bulk_labels", max_steps=1500, progress=False, random_state=0, model_kwargs={"width": 128}
    )
    return model, adata


def test_pbmc_dataset_is_lognormalized_raw():
    adata = sb.datasets.pbmc68k()
    assert adata.shape == (700, 765) and adata.obs["bulk_labels"].nunique() == 10
    assert adata.X.min() >= 0 and not np.allclose(adata.X.data % 1, 0)


def test_synthetic_cells_closest_to_own_type(pbmc_fit):
    model, adata = pbmc_fit
    syn = sb.tl.generate(model, 150, progress=False)
    table = sb.metrics.centroid_table(adata.obsm["X_scbranch"], adata.obs["bulk_labels"],
                                      syn.obsm["X_scbranch"], syn.obs["bulk_labels"])
    big = table[table.n_real >= 40]
    assert len(big) == 6
    assert big["ok"].all(), big
    assert (big["frac_nearest_own"] > 0.3).all(), big  # chance level is 0.1
    assert syn.uns["scbranch"]["generate"]["n_evals"] < 10 * 150 * 200  # the tree walk shared steps


def test_pbmc_hierarchy_times_monotone(pbmc_fit):
    model, adata = pbmc_fit
    for node in model.hierarchy.internal_nodes:
        assert all(c.time <= node.time for c in node.children)
    assert sorted(model.hierarchy.leaves) == sorted(adata.obs["bulk_labels"].unique())
