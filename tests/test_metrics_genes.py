"""Gene-level realism metrics (scbranch.metrics) and the realism plot (scbranch.pl.realism)."""

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import scbranch as sb
from scbranch import metrics

TREE = {"AB": {"A": None, "B": None}, "C": None}


def _lognorm(counts: np.ndarray) -> np.ndarray:
    lib = np.maximum(counts.sum(1, keepdims=True), 1.0)
    return np.log1p(counts / lib * 1e4).astype(np.float32)


@pytest.fixture(scope="module")
def halves():
    """Two independent halves of one simulated data set (sparse-ish Poisson counts, log-normalized)."""
    sim = sb.simulate.simulate_tree(TREE, n_cells=300, n_genes=200, library_size=300, random_state=0)
    x, y = _lognorm(np.asarray(sim.X)), sim.obs["cell_type"].astype(str).to_numpy()
    rng = np.random.default_rng(1)
    first = np.zeros(len(y), bool)
    for t in np.unique(y):  # split every type in half
        idx = np.flatnonzero(y == t)
        first[rng.choice(idx, len(idx) // 2, replace=False)] = True
    return x[first], y[first], x[~first], y[~first]


def test_identical_data_scores_perfectly(halves):
    x, y, _, _ = halves
    xs = sparse.csr_matrix(x)  # sparse input is accepted
    assert np.allclose(metrics.expressing_fraction_mae(x, y, xs, y), 0)
    assert np.allclose(metrics.variance_log2_ratio(x, y, xs, y), 0, atol=1e-5)
    r = metrics.mean_pearson(x, y, xs, y)
    assert list(r.index) == ["A", "B", "C"] and np.allclose(r, 1)
    assert metrics.hvg_overlap(x, xs, n_top=20) == 1.0
    assert metrics.correlation_error(x, xs, n_top=50) == pytest.approx(0, abs=1e-6)


def test_two_draws_of_the_same_data_look_alike(halves):
    xr, yr, xs, ys = halves
    assert (metrics.expressing_fraction_mae(xr, yr, xs, ys) < 0.05).all()
    assert (metrics.variance_log2_ratio(xr, yr, xs, ys) < 0.3).all()
    assert (metrics.mean_pearson(xr, yr, xs, ys) > 0.95).all()
    assert 0.8 < metrics.knn_mixing(xr, xs) < 1.2
    per_type = metrics.knn_mixing_per_type(xr, yr, xs)
    assert list(per_type.index) == ["A", "B", "C"] and ((per_type > 0.7) & (per_type < 1.3)).all()
    assert metrics.hvg_overlap(xr, xs, n_top=50) >= 0.5
    assert metrics.correlation_error(xr, xs) < 0.15


@pytest.mark.parametrize("kind", ["shift", "noise", "denoised"])
def test_synthetic_without_zeros_is_caught(halves, kind):
    xr, yr, _, _ = halves
    rng = np.random.default_rng(2)
    means = np.stack([xr[yr == t].mean(0) for t in yr])
    # dense synthetics: every entry expressed, so the dropout pattern is lost
    xs = {"shift": xr + 0.5,
          "noise": np.clip(xr + rng.normal(0.8, 0.3, xr.shape), 1e-3, None),
          "denoised": means + 0.1 * rng.random(xr.shape)}[kind]  # each type's mean, barely any spread
    assert (metrics.expressing_fraction_mae(xr, yr, xs, yr) > 0.2).all()
    mixing = metrics.knn_mixing(xr, xs)
    if kind == "denoised":
        assert mixing > 1.3  # collapsed synthetic cells are everyone's nearest neighbours (hubs)
    else:
        # a +0.5 offset on every gene is small next to the dropout noise between cells, hence "only" ~0.7
        assert mixing < 0.8 if kind == "shift" else mixing < 0.6


def test_doubled_sd_gives_log2_ratio_of_two(halves):
    xr, yr, _, _ = halves
    xs = xr.copy()
    for t in np.unique(yr):  # sd × 2 around each type's mean
        m = yr == t
        xs[m] = xr[m].mean(0) + 2 * (xr[m] - xr[m].mean(0))
    v = metrics.variance_log2_ratio(xr, yr, xs, yr)
    assert np.allclose(v, 2.0, atol=0.1)
    assert np.allclose(metrics.mean_pearson(xr, yr, xs, yr), 1, atol=1e-5)  # the means did not move


def test_gene_level_quality_is_robust_and_finite(halves):
    xr, yr, xs, ys = halves
    yr = yr.copy()
    yr[:5] = "only_real"  # a type absent from the synthetic cells
    keep = np.flatnonzero(ys != "C")
    keep = np.r_[keep, np.flatnonzero(ys == "C")[:1]]  # a single synthetic C cell
    res = metrics.gene_level_quality(xr, yr, sparse.csr_matrix(xs[keep]), ys[keep],
                                     var_names=[f"gene{i}" for i in range(xr.shape[1])])
    assert set(res) == {"expressing_mae", "var_log2_ratio", "mean_r", "marker_overlap", "hvg_overlap",
                        "corr_error", "knn_mixing", "frac_nonzero_real", "frac_nonzero_syn"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in res.values()), res
    assert res["mean_r"] > 0.9 and res["marker_overlap"] > 0.5 and 0 < res["frac_nonzero_real"] < 1
    with pytest.raises(ValueError, match="share no cell type"):
        metrics.gene_level_quality(xr, yr, xs, np.full(len(xs), "other"))


def test_realism_plot(halves, tmp_path):
    xr, yr, xs, ys = halves
    names = [f"gene{i}" for i in range(xr.shape[1])]
    real = ad.AnnData(xr, obs=pd.DataFrame({"cell_type": pd.Categorical(yr)}, index=[f"r{i}" for i in range(len(yr))]),
                      var=pd.DataFrame(index=names))
    order = np.random.default_rng(0).permutation(len(names))[:80]  # syn: a shuffled subset of the genes
    syn = ad.AnnData(sparse.csr_matrix(xs[:, order]),
                     obs=pd.DataFrame({"cell_type": ys}, index=[f"s{i}" for i in range(len(ys))]),
                     var=pd.DataFrame(index=np.asarray(names)[order]))
    path = tmp_path / "realism.png"
    axes = sb.pl.realism(real, syn, groupby="cell_type", n_genes=2, save=path)
    assert len(axes) == 2 and all(isinstance(a, plt.Axes) for a in axes)
    assert path.exists() and path.stat().st_size > 1000
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == ["A (real)", "A (syn)", "B (real)", "B (syn)", "C (real)", "C (syn)"]
    assert 1 <= len(axes[0].get_xticklabels()) <= 6  # 2 markers per type, deduplicated, all in the shared genes
    assert {t.get_text() for t in axes[0].get_xticklabels()} <= set(syn.var_names)
    plt.close("all")

    fig, given = plt.subplots(1, 2)
    real.layers["lognorm"] = real.X.copy()
    out = sb.pl.realism(real, syn, groupby="cell_type", layer="lognorm", ax=given, return_fig=True)
    assert out is fig
    with pytest.raises(ValueError, match="two Axes"):
        sb.pl.realism(real, syn, groupby="cell_type", ax=[given[0]])
    with pytest.raises(KeyError, match="nope"):
        sb.pl.realism(real, syn, groupby="nope")
    plt.close("all")


def test_plots_return_the_figure_on_request(tmp_path):
    import matplotlib.figure

    import scbranch as sb

    adata = sb.simulate.simulate_tree({"AB": {"A": None, "B": None}, "C": None}, n_cells=40, n_genes=30)
    model = sb.tl.fit(
        adata, groupby="cell_type", max_steps=20, progress=False, model_kwargs={"width": 32, "n_blocks": 1}
    )
    adata.uns["cell_type_colors"] = ["#111111", "#222222", "#333333"]
    syn = sb.tl.generate(model, 10, progress=False)
    for fig in (sb.pl.hierarchy(adata, return_fig=True), sb.pl.branch_points(adata, return_fig=True),
                sb.pl.synthetic_vs_real(adata, syn, groupby="cell_type", return_fig=True)):
        assert isinstance(fig, matplotlib.figure.Figure)
    axes = sb.pl.synthetic_vs_real(adata, syn, groupby="cell_type")
    assert len(axes) == 2 and axes[0].collections[0].get_facecolor()[0][0] == pytest.approx(0x11 / 255)
