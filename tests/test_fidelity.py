"""Cell-level fidelity pieces: decode(encode(cells)) as a diagnostic, library sizes that follow the cell state,
MMD with fixed bandwidths, benchmark data read from a local copy checked against its manifest."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import scbranch as sb
from scbranch import metrics
from scbranch.representation import Libraries

from .conftest import assert_adata_equal, dense


def test_reconstruct_decodes_every_cell_near_itself(toy_model):
    model, adata = toy_model
    before = adata.copy()
    rec = model.reconstruct(adata, random_state=3)
    assert_adata_equal(adata, before)  # only read
    assert rec.shape == adata.shape and list(rec.obs_names) == list(adata.obs_names)
    np.testing.assert_array_equal(rec.obs["cell_type"].astype(str), adata.obs["cell_type"].astype(str))
    counts = dense(rec.X)  # counts in, counts out: the toy cells are counts in .X
    assert "lognorm" in rec.layers
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    # each type's reconstructed cells sit on its own real cells, in model space
    z_real = model.get_latent(adata)
    z_rec = model.get_latent(ad.AnnData(rec.X, obs=rec.obs, var=rec.var))
    y = adata.obs["cell_type"].astype(str).to_numpy()
    cent = {t: z_real[y == t].mean(0) for t in np.unique(y)}
    for t in cent:
        own = np.linalg.norm(z_rec[y == t].mean(0) - cent[t])
        other = min(np.linalg.norm(z_rec[y == t].mean(0) - cent[u]) for u in cent if u != t)
        assert own < 0.3 * other
    # same seed, same cells; another seed, other counts
    np.testing.assert_array_equal(dense(model.reconstruct(adata, random_state=3).X), counts)
    assert not np.array_equal(dense(model.reconstruct(adata, random_state=4).X), counts)


def test_reconstruct_needs_known_labels(toy_model):
    model, adata = toy_model
    with pytest.raises(KeyError, match="cell_type"):
        model.reconstruct(ad.AnnData(adata.X, var=adata.var))
    bad = adata[:10].copy()
    bad.obs["cell_type"] = "Z"
    with pytest.raises(ValueError, match="unknown to the model"):
        model.reconstruct(bad)


def _libraries(rng, n=400):
    """One type whose library size grows with its first model-space coordinate."""
    z = rng.normal(size=(n, 3)).astype(np.float32)
    lib = np.exp(6 + 0.8 * z[:, 0])
    counts = np.outer(lib, np.full(4, 0.25))  # any counts with these row sums
    return Libraries(1e4).fit(counts, ["A"] * n, z=z, target_sum=1e4), z, lib


def test_library_sizes_follow_the_cell_state():
    rng = np.random.default_rng(0)
    libs, _, lib = _libraries(rng)
    z_new = rng.normal(size=(500, 3)).astype(np.float32)
    near, _ = libs.draw(["A"] * 500, np.random.default_rng(1), z_new)
    anywhere, _ = libs.draw(["A"] * 500, np.random.default_rng(1))
    assert np.corrcoef(np.log(near), z_new[:, 0])[0, 1] > 0.8
    assert abs(np.corrcoef(np.log(anywhere), z_new[:, 0])[0, 1]) < 0.15
    assert set(np.round(near, 3)) <= set(np.round(lib.astype(np.float32), 3))  # real library sizes only
    # same seed, same draws
    np.testing.assert_array_equal(near, libs.draw(["A"] * 500, np.random.default_rng(1), z_new)[0])


def test_library_state_round_trip_keeps_the_cell_states():
    rng = np.random.default_rng(0)
    libs = _libraries(rng)[0]
    libs.fit(np.ones((5, 4)), ["B"] * 5, target_sum=1e4)  # a type fitted without states: drawn from all its cells
    back = Libraries.from_state(libs.state_dict(), libs.meta())
    np.testing.assert_array_equal(back.z["A"], libs.z["A"])
    assert "B" not in back.z
    z_new = rng.normal(size=(50, 3)).astype(np.float32)
    labels = ["A"] * 25 + ["B"] * 25
    np.testing.assert_array_equal(back.draw(labels, np.random.default_rng(2), z_new)[0],
                                  libs.draw(labels, np.random.default_rng(2), z_new)[0])
    # a state saved before the cell states were kept still loads (draws ignore the state)
    old = {k: v for k, v in libs.state_dict().items() if k != "z"}
    meta = {k: v for k, v in libs.meta().items() if k != "z_types"}
    assert Libraries.from_state(old, meta).z == {}


def test_mmd_with_fixed_bandwidths():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 5))
    y = np.array(["a"] * 100 + ["b"] * 100)
    scales = metrics.mmd_scales(real, y)
    assert set(scales) == {"a", "b"} and all(2.7 < s < 3.2 for s in scales.values())  # median of sqrt(2·chi2_5) ≈ 2.95
    near, far = real + rng.normal(scale=0.1, size=real.shape), real + 1.0
    tab_near = metrics.per_type_quality(real, y, near, y, mmd_scales=scales)
    tab_far = metrics.per_type_quality(real, y, far, y, mmd_scales=scales)
    assert (tab_far["mmd"] > 10 * tab_near["mmd"].abs()).all()
    # the bandwidth is the given one, whatever the synthetic cells are
    a, b = real[:100], far[:100]
    assert metrics.mmd_rbf(a, b, scale=scales["a"]) == pytest.approx(
        metrics.per_type_quality(a, y[:100], b, y[:100], mmd_scales=scales)["mmd"]["a"])


def test_load_reads_a_local_copy_checked_against_its_manifest(tmp_path, monkeypatch):
    small = ad.AnnData(np.ones((3, 2), np.float32), obs=pd.DataFrame({"cell_type": ["a", "b", "a"]},
                                                                      index=["c0", "c1", "c2"]))
    small.write_h5ad(tmp_path / "zeisel.h5ad")
    with pytest.raises(ValueError, match="does not match the sha256"):
        sb.datasets.load("zeisel", data_dir=tmp_path)
    mans = sb.datasets.manifests()
    mans["zeisel"]["sha256"] = sb.datasets.sha256sum(tmp_path / "zeisel.h5ad")
    monkeypatch.setattr(sb.datasets, "manifests", lambda: mans)
    assert sb.datasets.load("zeisel", data_dir=tmp_path).shape == (3, 2)
    with pytest.raises(ValueError, match="no download URL"):
        sb.datasets.load("zeisel", data_dir=tmp_path / "elsewhere")
