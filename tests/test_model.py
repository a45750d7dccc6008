"""The model object on its own (setup → train → generate → add_cell_type), its typed options, and the
conventions of the tl wrappers around it (argument order, deprecated keywords, scanpy's save rule)."""

import inspect

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pytest
import scanpy as sc
import torch

import scbranch as sb
from scbranch.model import ModelConfig, SetupConfig, TrainConfig

from .conftest import assert_adata_equal, fast

SMALL = {"width": 32, "n_blocks": 1}
TRAIN = {"max_steps": 40, "min_steps": 20, "progress": False}


def test_model_set_up_trained_and_sampled_on_its_own(toy_adata):
    adata = toy_adata.copy()
    snapshot = adata.copy()
    model = sb.BranchedDiffusion(adata, groupby="cell_type", progress=False, **SMALL)
    assert_adata_equal(adata, snapshot)  # setting up only reads the AnnData
    assert not model.is_trained and model.state.width == 32
    assert sorted(model.types) == ["A", "B", "C"] and sorted(model.hierarchy.leaves) == ["A", "B", "C"]
    with pytest.raises(RuntimeError, match="not trained"):
        model.generate(3, progress=False)
    hist = model.train(**TRAIN)
    assert model.is_trained and hist["n_steps"] <= 40 and model.train_options.max_steps == 40
    syn = model.generate({"A": 4, "C": 2}, progress=False)
    assert syn.n_obs == 6 and list(syn.obs["cell_type"].value_counts().sort_index()) == [4, 2]
    assert model.classifier is not None  # type_classifier=True by default


def test_fit_is_setup_plus_train(toy_adata):
    """tl.fit = BranchedDiffusion(...) + .train(...) + the .uns record: the same seed gives the same weights."""
    a = toy_adata.copy()
    fitted = sb.tl.fit(a, groupby="cell_type", random_state=3, max_steps=40, progress=False, model_kwargs=SMALL,
                       train_kwargs={"min_steps": 20})
    built = sb.BranchedDiffusion(toy_adata.copy(), groupby="cell_type", random_state=3, progress=False, **SMALL)
    built.train(**TRAIN)
    for k, v in fitted.module.state_dict().items():
        torch.testing.assert_close(v, built.module.state_dict()[k])
    params = a.uns["scbranch"]["params"]
    assert params["width"] == 32 and params["max_steps"] == 40 and params["min_steps"] == 20
    assert params["random_state"] == 3 and params["hierarchy_source"] == "data"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model_kwargs": {"widht": 32}}, TypeError, r"unknown model_kwargs \['widht'\]; choose from"),
        ({"train_kwargs": {"patience": 3}}, TypeError, r"unknown train_kwargs \['patience'\]"),
        ({"model_kwargs": {"sharing": 0.2}}, TypeError, "arguments of fit itself"),
        ({"model_kwargs": {"width": 0}}, ValueError, "width must be an integer >= 1"),
        ({"model_kwargs": {"dropout": 1.0}}, ValueError, "dropout must be in"),
        ({"model_kwargs": {"representation": "umap"}}, TypeError, "arguments of fit itself"),
        ({"representation": "umap"}, ValueError, "representation must be one of"),
        ({"train_kwargs": {"schedule": "cosine"}}, ValueError, "schedule must be one of"),
        ({"train_kwargs": {"lr": -1.0}}, ValueError, "need lr > 0"),
        ({"model_kwargs": {"input_kind": "raw"}}, ValueError, "input_kind must be one of"),
        ({"colour": "red"}, TypeError, "unexpected keyword"),
    ],
)
def test_bad_options_fail_before_any_work(toy_adata, kwargs, error, match):
    adata = toy_adata.copy()
    snapshot = adata.copy()
    with pytest.raises(error, match=match):
        sb.tl.fit(adata, groupby="cell_type", progress=False, **kwargs)
    assert_adata_equal(adata, snapshot)


def test_configs_are_typed_and_checked():
    assert ModelConfig().sharing == 0.5 and TrainConfig().stop_tol == 0.002 and SetupConfig().min_cells == 5
    with pytest.raises(ValueError, match="sharing must be"):
        ModelConfig(sharing=True)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 20"):
        TrainConfig(max_steps=5)
    with pytest.raises(TypeError, match="unknown train options"):
        sb.model.split_options({"max_step": 5}, TrainConfig, where="train options")
    with pytest.raises(ValueError, match="min_cells must be"):
        SetupConfig(min_cells=0)
    model, train, rest = sb.model.route({"width": 8, "lr": 1e-3, "groupby": "x", "sharing": 0.1},
                                        own=inspect.signature(sb.tl.fit).parameters)
    assert model == {"width": 8} and train == {"lr": 1e-3} and rest == {"groupby": "x", "sharing": 0.1}


def test_old_keywords_still_work_with_a_future_warning(toy_adata):
    with pytest.warns(FutureWarning, match=r"fit\(width=...\) is deprecated: pass model_kwargs"):
        model = sb.tl.fit(toy_adata.copy(), groupby="cell_type", width=32, max_steps=20, progress=False)
    assert model.state.width == 32


def test_loaded_model_cannot_retrain_without_data(toy_model, tmp_path):
    model, _ = toy_model
    model.save(tmp_path / "m")
    loaded = sb.BranchedDiffusion.load(tmp_path / "m")
    with pytest.raises(RuntimeError, match="holds no training data"):
        loaded.train(max_steps=20)
    assert loaded.is_trained and loaded.generate(2, progress=False).n_obs == 6


def test_tools_take_the_anndata_first(toy_model):
    model, adata = toy_model
    a = adata.copy()
    sb.tl.score_types(a, model)
    with pytest.warns(FutureWarning, match=r"sb.tl.score_types\(adata, model"):
        b = sb.tl.score_types(model, adata, copy=True)
    np.testing.assert_array_equal(a.obs["scbranch_types"], b.obs["scbranch_types"])
    with pytest.raises(TypeError, match="takes an AnnData first"):
        sb.tl.augment(model, model)


def test_plots_follow_scanpys_save_rule(toy_model, tmp_path):
    _model, adata = toy_model
    figdir, sc.settings.figdir = sc.settings.figdir, tmp_path / "figs"
    try:
        sb.pl.hierarchy(adata, save="_toy.pdf")
        sb.pl.branch_points(adata, save=True)
    finally:
        sc.settings.figdir = figdir
    assert (tmp_path / "figs" / "hierarchy_toy.pdf").stat().st_size > 1000
    assert (tmp_path / "figs" / f"branch_points.{sc.settings.file_format_figs}").exists()
    _fig, ax = plt.subplots()
    assert sb.pl.hierarchy(adata, ax=ax) is ax  # drawn into the caller's Axes
    plt.close("all")


def test_synthetic_vs_real_on_an_existing_embedding(toy_model):
    model, adata = toy_model
    syn = sb.tl.generate(model, 20, progress=False)
    both = ad.concat([adata[:, model.var_names], syn], label="kind", keys=["real", "synthetic"], index_unique="-")
    sc.pp.pca(both, n_comps=5)
    real, fake = both[both.obs["kind"] == "real"], both[both.obs["kind"] == "synthetic"]
    fig = sb.pl.synthetic_vs_real(real, fake, groupby="cell_type", basis="pca", return_fig=True)
    assert fig.axes[0].get_xlabel() == "PCA 1" and len(fig.legends) == 1
    with pytest.raises(KeyError, match="embed both first"):
        sb.pl.synthetic_vs_real(adata, syn, groupby="cell_type", basis="umap")
    plt.close("all")


def test_add_cell_type_method_is_a_transaction(toy_adata):
    old = toy_adata[toy_adata.obs["cell_type"] != "C"].copy()
    new = toy_adata[toy_adata.obs["cell_type"] == "C"].copy()
    model = sb.tl.fit(old, groupby="cell_type", **fast(max_steps=60))
    with pytest.raises(ValueError, match="already in the model"):
        model.add_cell_type(old)
    assert model.add_cell_type(new, max_steps=30, progress=False) is model  # as tl.add_cell_type
    report = model.last_added
    assert model.types == ["A", "B", "C"] and [p[0] for p in report["placements"]] == ["C"]
    assert report["latent"].shape == (new.n_obs, model.representation.n_features)


def test_hierarchy_plot_folds_zero_length_nodes_and_labels_do_not_overlap(toy_adata):
    adata = toy_adata.copy()
    sb.tl.fit(adata, groupby="cell_type", hierarchy="((A:0.3,B:0.3)AB:0.4,C:0.7)top;", **fast(max_steps=20))
    ax = sb.pl.hierarchy(adata)
    assert [t.get_text() for t in ax.texts] == ["AB", "top"]
    zero = toy_adata.copy()  # AB at the root's time: one node on the plot, both names
    sb.tl.fit(zero, groupby="cell_type", hierarchy="((A:0.7,B:0.7)AB:0,C:0.7)top;", **fast(max_steps=20))
    ax = sb.pl.hierarchy(zero)
    assert [t.get_text() for t in ax.texts] == ["top = AB"]
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in sb.pl.hierarchy(adata).texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close("all")
