"""Small things a scanpy user notices: the label column chosen, the model's repr."""

import pytest

import scbranch as sb

from .conftest import fast


def test_default_label_column_is_named_and_clusters_are_never_taken(toy_adata, scanpy_log):
    import scanpy as sc

    adata = toy_adata.copy()
    adata.obs["labels"] = adata.obs.pop("cell_type")
    before, sc.settings.verbosity = sc.settings.verbosity, 1  # scanpy's default: warnings only
    try:
        model = sb.tl.fit(adata, **fast(max_steps=30))
        assert model.groupby == "labels" and "adata.obs['labels']" in scanpy_log.getvalue()
        clusters = toy_adata.copy()
        clusters.obs["leiden"] = clusters.obs.pop("cell_type")
        with pytest.raises(KeyError, match="hold clusters, not cell types"):
            sb.tl.fit(clusters, **fast(max_steps=30))
    finally:
        sc.settings.verbosity = before


def test_repr_is_three_lines_with_groupby_cells_genes_types(toy_model):
    model, adata = toy_model
    text = repr(model)
    assert len(text.splitlines()) <= 3, text
    assert "3 cell types" in text and "'cell_type'" in text and f"{adata.n_obs} cells" in text
    assert f"{adata.n_vars} genes" in text and model.hierarchy.to_newick() not in text


def test_plots_default_groupby_to_the_models_and_follow_scanpys_show(toy_model, tmp_path):
    import matplotlib.pyplot as plt
    import scanpy as sc

    model, adata = toy_model
    syn = sb.tl.generate(model, 10, progress=False)
    assert len(sb.pl.synthetic_vs_real(adata, syn, show=False)) == 2  # groupby from .uns, as recorded by generate
    before, sc.settings.autoshow = sc.settings.autoshow, False
    try:
        fig = sb.pl.realism(adata, syn, return_fig=True)  # show=None: scanpy's autoshow
        assert len(fig.axes) >= 2
    finally:
        sc.settings.autoshow = before
    with pytest.raises(KeyError, match="pass groupby="):
        sb.pl.synthetic_vs_real(adata, syn, groupby="nope")
    plt.close("all")
