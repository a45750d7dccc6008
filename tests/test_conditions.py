"""Conditioning on covariates (condition_keys): generate under a donor, marginalize it, transfer cells."""

import numpy as np
import pytest

import scbranch as sb

from .conftest import assert_adata_equal, dense, fast

SHIFTED = np.arange(10)  # genes with 4× the counts in donor D2


@pytest.fixture(scope="module")
def donors(toy_adata):
    adata = toy_adata.copy()
    rng = np.random.default_rng(0)
    donor = rng.choice(["D1", "D2"], adata.n_obs)
    x = dense(adata.X).copy()
    x[np.ix_(donor == "D2", SHIFTED)] *= 4
    adata.X = x
    adata.obs["donor"] = donor
    model = sb.tl.fit(adata, groupby="cell_type", condition_keys=["donor"], random_state=0,
                      **fast(max_steps=1500, min_steps=1500))
    return model, adata


def _shift(model, syn) -> float:
    """Mean log-expression difference of the shifted genes minus that of the others."""
    return float(dense(syn.layers["lognorm"])[:, SHIFTED].mean() - dense(syn.layers["lognorm"])[:, 10:].mean())


def test_generation_follows_the_condition(donors):
    model, adata = donors
    assert model.state.conditions == {"keys": ["donor"], "categories": [["D1", "D2"]]}
    d1 = sb.tl.generate(model, 150, condition={"donor": "D1"}, random_state=1, progress=False)
    d2 = sb.tl.generate(model, 150, condition={"donor": "D2"}, random_state=1, progress=False)
    both = sb.tl.generate(model, 150, random_state=1, progress=False)  # marginal over donors
    x = model.get_lognorm(adata)
    real = {d: x[(adata.obs["donor"] == d).to_numpy()] for d in ("D1", "D2")}
    gap_real = real["D2"][:, SHIFTED].mean() - real["D1"][:, SHIFTED].mean()
    gap_syn = dense(d2.layers["lognorm"])[:, SHIFTED].mean() - dense(d1.layers["lognorm"])[:, SHIFTED].mean()
    assert gap_real > 0.5 and 0.5 * gap_real < gap_syn < 1.5 * gap_real
    assert _shift(model, d1) < _shift(model, both) < _shift(model, d2)
    assert (d2.obs["donor"] == "D2").all() and list(d2.obs["donor"].cat.categories) == ["D1", "D2"]
    assert '"donor": "D2"' in d2.uns["scbranch"]["generate"]["condition"]


def test_transfer_moves_cells_to_the_other_donor(donors):
    model, adata = donors
    d1 = adata[adata.obs["donor"] == "D1"].copy()
    snapshot = d1.copy()
    out = sb.tl.transfer(d1, model, condition={"donor": "D2"}, time=0.6, n_steps=60)
    assert_adata_equal(d1, snapshot)
    assert out.n_obs == d1.n_obs and (out.obs["donor"] == "D2").all() and (out.obs["donor_original"] == "D1").all()
    assert (out.obs["cell_type"].to_numpy() == d1.obs["cell_type"].to_numpy()).all()
    x1, x2 = model.get_lognorm(d1), model.get_lognorm(adata[adata.obs["donor"] == "D2"])
    x_out = dense(out.layers["lognorm"])  # counts in .X, as the input
    assert x_out[:, SHIFTED].mean() - x1[:, SHIFTED].mean() > 0.4  # the donor effect appears
    # the other genes follow D2's normalization (its larger libraries lower them), as real D2 cells do
    assert abs(x_out[:, 10:].mean() - x2[:, 10:].mean()) < 0.3 * abs(x1[:, 10:].mean() - x2[:, 10:].mean())
    # time trades the change for identity: noised less, each cell stays nearer its own origin than another
    # D1 cell of its type is (at 0.6 the toy's isotropic within-type state is mostly redrawn)
    z1, types, rng = model.get_latent(d1), d1.obs["cell_type"].to_numpy(), np.random.default_rng(0)
    perm = np.arange(len(z1))
    for t in set(types):
        rows = np.flatnonzero(types == t)
        perm[rows] = rng.permutation(rows)
    near = sb.tl.transfer(d1, model, condition={"donor": "D2"}, time=0.2, n_steps=60).obsm["X_scbranch"]
    assert np.linalg.norm(near - z1, axis=1).mean() < 0.7 * np.linalg.norm(near - z1[perm], axis=1).mean()


def test_condition_errors_and_round_trip(donors, toy_model, tmp_path):
    model, adata = donors
    with pytest.raises(KeyError, match=r"unknown donor 'D9'; the model knows \['D1', 'D2'\]"):
        sb.tl.generate(model, 3, condition={"donor": "D9"})
    with pytest.raises(KeyError, match=r"unknown condition keys \['batch'\]"):
        sb.tl.generate(model, 3, condition={"batch": "x"})
    plain, _ = toy_model
    with pytest.raises(ValueError, match="has no covariates"):
        sb.tl.generate(plain, 3, condition={"donor": "D1"})
    with pytest.raises(ValueError, match="must not include groupby"):
        sb.tl.fit(adata.copy(), groupby="cell_type", condition_keys=["cell_type"], **fast())
    with pytest.raises(KeyError, match="condition_keys='nope' is not a column"):
        sb.tl.fit(adata.copy(), groupby="cell_type", condition_keys=["nope"], **fast())
    model.save(tmp_path / "m")
    back = sb.BranchedDiffusion.load(tmp_path / "m")
    a = sb.tl.generate(model, 5, condition={"donor": "D2"}, random_state=3, progress=False)
    b = sb.tl.generate(back, 5, condition={"donor": "D2"}, random_state=3, progress=False)
    np.testing.assert_array_equal(a.obsm["X_scbranch"], b.obsm["X_scbranch"])
