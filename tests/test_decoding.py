"""Synthetic cells in gene space: counts recovered from the input, count decoding, normalization as the input's."""

import numpy as np
import pytest
from scipy import sparse

import scbranch as sb
from scbranch import metrics
from scbranch._normalize import recover_counts

from .conftest import dense, fast


def _lognorm(counts, target_sum=1e4):
    return np.log1p(counts / counts.sum(1, keepdims=True) * target_sum).astype(np.float32)


def test_recover_counts_target_sum_and_gene_subset(toy_adata):
    counts = dense(toy_adata.X)
    info = recover_counts(sparse.csr_matrix(_lognorm(counts)))
    np.testing.assert_array_equal(dense(info.counts), counts)
    assert info.scale is None and info.target_sum == pytest.approx(1e4, rel=1e-4)
    # normalized over all genes, then a gene subset kept (the HVG case): per-cell scales, counts still exact
    subset = _lognorm(counts)[:, :30]
    info = recover_counts(subset)
    np.testing.assert_array_equal(dense(info.counts), counts[:, :30])
    assert info.target_sum is None
    np.testing.assert_allclose(info.scale, 1e4 / counts.sum(1), rtol=1e-3)
    # cells whose smallest count is 2 (no 1s, but odd counts) still come back exactly
    shifted = np.where(counts > 0, counts + 1, 0)
    info = recover_counts(_lognorm(shifted))
    np.testing.assert_array_equal(dense(info.counts), shifted)
    # values that are not a scaling of integers: no counts
    rng = np.random.default_rng(0)
    assert recover_counts(_lognorm(counts) + rng.uniform(0, 0.3, counts.shape).astype(np.float32)) is None


def test_pbmc68k_counts_are_recovered():
    adata = sb.datasets.pbmc68k()
    info = recover_counts(adata.X)
    np.testing.assert_array_equal(dense(info.counts), dense(sb.datasets.pbmc68k_counts().X))
    # pbmc68k_reduced's .raw was normalized over more genes than it holds: per-cell scales, not one target sum
    assert info.target_sum is None and np.ptp(np.expm1(dense(adata.X)).sum(1)) > 500


def test_synthetic_counts_are_integers_with_the_types_library_sizes(toy_model):
    model, adata = toy_model
    syn = sb.tl.generate(model, 60, progress=False, random_state=1)
    counts = dense(syn.X)  # counts in, counts out: .X holds counts as the input's .X did
    assert sparse.issparse(syn.X) and sparse.issparse(syn.layers["lognorm"]) and "counts" not in syn.layers
    assert (counts >= 0).all() and np.array_equal(counts, np.round(counts))
    real_lib = dense(adata.X).sum(1)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    for ty in model.types:
        lib, real = counts[syn.obs["cell_type"] == ty].sum(1), real_lib[labels == ty]
        # library sizes are drawn from the type's real cells; the NB draw moves a cell's total only a little
        assert 0.8 * real.min() <= lib.min() and lib.max() <= 1.2 * real.max()
        assert np.median(lib) == pytest.approx(np.median(real), rel=0.15)
    # the log-normalized layer is the input's normalization of those counts (raw counts: scbranch's 1e4 target sum)
    np.testing.assert_allclose(dense(syn.layers["lognorm"]), _lognorm(counts), rtol=1e-5, atol=1e-6)


def test_log_normalized_in_log_normalized_out(toy_adata):
    adata = toy_adata.copy()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sparse.csr_matrix(_lognorm(dense(adata.X)))
    on_x = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast(max_steps=60))
    syn = sb.tl.generate(on_x, 10, progress=False)
    assert dense(syn.X).max() < 15 and set(syn.layers) == {"counts"}  # recovered counts beside, in their layer
    on_layer = sb.tl.fit(adata, groupby="cell_type", layer="counts", random_state=0, **fast(max_steps=60))
    syn = sb.tl.generate(on_layer, 10, progress=False)  # fitted on the counts layer: counts there, .X log-normalized
    counts = dense(syn.layers["counts"])
    assert np.array_equal(counts, np.round(counts)) and counts.max() > 15
    np.testing.assert_allclose(dense(syn.X), _lognorm(counts), rtol=1e-5, atol=1e-6)


def test_expressing_fraction_of_simulated_cells_is_recovered():
    # sparse counts (library 300 over 200 genes: ~half the entries are zero), as in real single cells
    adata = sb.simulate.simulate_tree({"AB": {"A": None, "B": None}, "C": None}, n_cells=150, n_genes=200,
                                      library_size=300, random_state=3)
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    syn = sb.tl.generate(model, 150, progress=False)
    x_real, y_real = _lognorm(dense(adata.X)), adata.obs["cell_type"].astype(str).to_numpy()
    y_syn = syn.obs["cell_type"].astype(str).to_numpy()
    x_syn = syn.layers["lognorm"]
    mae = metrics.expressing_fraction_mae(x_real, y_real, x_syn, y_syn)
    assert 0.3 < (x_real > 0).mean() < 0.7
    assert mae.max() < 0.06, mae  # per gene, per type; the old Gaussian decoding was off by ~0.5
    assert abs((dense(x_syn) > 0).mean() - (x_real > 0).mean()) < 0.04


def test_scaled_subset_input_is_reproduced_with_per_cell_scales(toy_adata):
    adata = toy_adata.copy()
    full = _lognorm(dense(adata.X))
    adata = adata[:, :40].copy()
    adata.X = sparse.csr_matrix(full[:, :40])  # log-normalized over 60 genes, 40 kept
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    syn = sb.tl.generate(model, 50, progress=False)
    sums_syn = np.expm1(dense(syn.X)).sum(1)
    sums_real = np.expm1(full[:, :40]).sum(1)
    # real per-cell sums vary (normalized over more genes than kept); synthetic ones follow them
    assert np.quantile(sums_syn, 0.5) == pytest.approx(np.quantile(sums_real, 0.5), rel=0.1)
    assert np.std(sums_syn) > 0.3 * np.std(sums_real)
    # and each synthetic cell is a per-cell scaling of its integer counts
    counts = dense(syn.layers["counts"])
    scale = np.expm1(dense(syn.X)).sum(1) / np.maximum(counts.sum(1), 1)
    np.testing.assert_allclose(np.expm1(dense(syn.X)), counts * scale[:, None], rtol=1e-3, atol=1e-3)


def test_input_without_counts_uses_the_hurdle_decoder(toy_adata):
    adata = toy_adata.copy()
    rng = np.random.default_rng(0)
    x = _lognorm(dense(adata.X))
    x[x > 0] += rng.uniform(0.01, 0.2, (x > 0).sum()).astype(np.float32)  # no longer a scaling of counts
    adata.X = x
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    syn = sb.tl.generate(model, 100, progress=False)
    assert "counts" not in syn.layers and syn.X.min() >= 0
    y, y_syn = adata.obs["cell_type"].astype(str).to_numpy(), syn.obs["cell_type"].astype(str).to_numpy()
    # the hurdle puts exact zeros where the type's real cells have them
    assert metrics.expressing_fraction_mae(x, y, syn.X, y_syn).max() < 0.08


def test_new_type_without_counts_is_refused_before_the_model_changes(toy_adata):
    lognorm = toy_adata.copy()
    lognorm.X = _lognorm(dense(toy_adata.X))  # log-normalized with recoverable counts: the count decoder
    adata = lognorm[lognorm.obs["cell_type"] != "C"].copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    assert model.representation.counts_decoder is not None
    new = toy_adata[toy_adata.obs["cell_type"] == "C"].copy()
    x = _lognorm(dense(new.X))
    x[x > 0] += 0.05  # log-normalized, but no longer a scaling of counts
    new.X = x
    table, heads = model.hierarchy.to_table(), dict(model.state.heads)
    with pytest.raises(ValueError, match="decodes counts"):
        sb.tl.add_cell_type(new, model, max_steps=50, progress=False)
    assert model.types == ["A", "B"] and model.hierarchy.to_table().equals(table) and model.state.heads == heads


def test_added_type_dispersion_shrinks_toward_the_training_types(toy_model):
    """A new type of 3 cells gets dispersions near the training types' pooled ones, not its own noisy moments."""
    model, adata = toy_model
    dec = model.representation.counts_decoder
    before = {k: v.clone() for k, v in dec.net.state_dict().items()}
    import copy

    grown = copy.deepcopy(dec)
    cells = dense(adata.X)[:3]
    grown.add_types(model.representation.transform(_lognorm(cells)), cells, ["new"] * 3)
    pooled = -np.log(np.clip(grown.net.phi_gene.numpy(), np.exp(-8), np.exp(4)))
    new = grown.net.log_theta[-1].numpy()
    assert np.median(np.abs(new - pooled)) < 1.0
    for k, v in before.items():  # the original decoder is untouched, and the old types keep their values
        torch_equal = np.array_equal(dec.net.state_dict()[k].numpy(), v.numpy())
        assert torch_equal
    np.testing.assert_array_equal(grown.net.log_theta[:-1].numpy(), before["log_theta"].numpy())


def test_model_saved_in_an_older_format_is_a_clear_error(toy_model, tmp_path):
    import json

    model, _ = toy_model
    model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["format"] = 1
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format 1"):
        sb.BranchedDiffusion.load(tmp_path / "m")
