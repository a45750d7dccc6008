"""The sharing knob, the noisy type classifier, resampling at branch points, and score_types."""

import warnings

import anndata as ad
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import scbranch as sb
from scbranch.module import VPSDE
from scbranch.sampling import get_sampler, get_times, sample_tree

from .conftest import assert_adata_equal, fast

MU = {1: torch.tensor([3.0, 0.0]), 2: torch.tensor([-3.0, 0.0])}
S = 0.5


class ExactGaussianMixture(torch.nn.Module):
    """ε̂ of two Gaussians under the VP SDE, exactly: branch 0 the equal mixture, 1 and 2 one component each."""

    def __init__(self, sde):
        super().__init__()
        self.sde = sde

    def log_weights(self, x, t):
        alpha, sigma = self.sde.alpha_sigma(t.reshape(-1)[:1])
        var = alpha**2 * S**2 + sigma**2
        return torch.stack([-((x - alpha * MU[k]) ** 2).sum(1) / (2 * var) for k in (1, 2)], 1)

    def forward(self, x, t, branch):
        alpha, sigma = self.sde.alpha_sigma(t.reshape(-1)[:1])
        var = alpha**2 * S**2 + sigma**2
        scores = {k: -(x - alpha * MU[k]) / var for k in (1, 2)}
        if branch == 0:
            r = torch.softmax(self.log_weights(x, t), 1)
            score = r[:, :1] * scores[1] + r[:, 1:] * scores[2]
        else:
            score = scores[branch]
        return -sigma * score


@pytest.mark.parametrize("resample", [False, True])
def test_resampling_at_a_late_branch_point_recovers_each_component(resample):
    """A known mixture split at t_b = 0.15, where the components no longer overlap: handed the shared rows as
    they are, each child inherits the mixture; resampled by the exact posterior, each recovers its component."""
    sde, t_b, n = VPSDE(), 0.15, 3000
    model = ExactGaussianMixture(sde)

    def exact_resample(x, t, child, parent, n_rows, generator):
        w = 2 * torch.softmax(model.log_weights(x, torch.tensor([t])), 1)[:, child - 1]
        return torch.multinomial(w / w.sum(), n_rows, replacement=True, generator=generator)

    out, _ = sample_tree(model, get_sampler("euler_maruyama"), {"A": [0, 1], "B": [0, 2]},
                         {0: (t_b, 1.0), 1: (0.0, t_b), 2: (0.0, t_b)}, {"A": n, "B": n}, get_times(100), sde=sde,
                         n_features=2, generator=torch.Generator().manual_seed(0), progress=False,
                         resample=exact_resample if resample else None)
    for ty, k in (("A", 1), ("B", 2)):
        frac_right_side = float((torch.sign(out[ty][:, 0]) == torch.sign(MU[k][0])).float().mean())
        if resample:
            assert frac_right_side > 0.99
            np.testing.assert_allclose(out[ty].mean(0).numpy(), MU[k].numpy(), atol=0.1)
            np.testing.assert_allclose(out[ty].std(0).numpy(), [S, S], rtol=0.1)
        else:
            assert frac_right_side < 0.9  # without resampling, rows from the other component stay stranded


@pytest.fixture(scope="module")
def typed_model(toy_adata):
    adata = toy_adata.copy()
    return sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast()), adata


def test_score_types_transfers_labels_and_orders_certainty(typed_model, toy_adata, tmp_path):
    model, adata = typed_model
    target = toy_adata.copy()
    out = sb.tl.score_types(target, model, copy=True)
    assert_adata_equal(target, toy_adata)  # copy=True leaves the input alone
    truth = toy_adata.obs["cell_type"].astype(str).to_numpy()
    acc = float((out.obs["scbranch_types"].astype(str).to_numpy() == truth).mean())
    z = adata.obsm["X_scbranch"]
    lr = LogisticRegression(max_iter=2000).fit(z[::2], truth[::2])
    assert acc > 0.9 and acc >= lr.score(z[1::2], truth[1::2]) - 0.05
    probs = out.obsm["scbranch_types_probabilities"]
    assert probs.shape == (toy_adata.n_obs, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # C splits off far above A and B (toy tree ((A,B),C)): recognisable under more noise
    ct = out.obs["scbranch_types_certain_time"].to_numpy()
    assert np.nanmedian(ct[truth == "C"]) > np.nanmedian(ct[truth == "A"])
    assert list(out.uns["scbranch_types"]["types"]) == model.types
    with warnings.catch_warnings():  # every key written survives write_h5ad / read_h5ad
        warnings.simplefilter("error")
        out.write_h5ad(tmp_path / "scored.h5ad")
        back = ad.read_h5ad(tmp_path / "scored.h5ad")
    np.testing.assert_array_equal(back.obsm["scbranch_types_probabilities"], probs)
    assert back.uns["scbranch_types"]["curves"].shape == (3, 51)


def test_generate_with_resampling_and_the_classifier_round_trips(typed_model, tmp_path):
    model, _ = typed_model
    syn = sb.tl.generate(model, 30, resample=True, progress=False, random_state=3)
    assert syn.n_obs == 90 and syn.uns["scbranch"]["generate"]["resample"]
    again = sb.tl.generate(model, 30, resample=True, progress=False, random_state=3)
    np.testing.assert_array_equal(syn.obsm["X_scbranch"], again.obsm["X_scbranch"])
    model.save(tmp_path / "m")
    loaded = sb.BranchedDiffusion.load(tmp_path / "m")
    np.testing.assert_array_equal(
        sb.tl.generate(loaded, 30, resample=True, progress=False, random_state=3).obsm["X_scbranch"],
        syn.obsm["X_scbranch"])


def test_without_a_classifier_resampling_and_scoring_are_errors(toy_adata):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", **fast(max_steps=40, type_classifier=False))
    with pytest.raises(ValueError, match="type classifier"):
        sb.tl.generate(model, 5, resample=True, progress=False)
    before = adata.copy()
    with pytest.raises(ValueError, match="no type classifier"):
        sb.tl.score_types(adata, model)
    assert_adata_equal(adata, before)


def test_sharing_moves_branch_points_down_and_saves_evaluations(toy_adata):
    models = {
        s: sb.tl.fit(toy_adata.copy(), groupby="cell_type", sharing=s, **fast(max_steps=40, type_classifier=False))
        for s in (0.0, 1.0)
    }
    times = {s: sorted(n.time for n in m.hierarchy.internal_nodes) for s, m in models.items()}
    assert all(a < b for a, b in zip(times[1.0], times[0.0]))
    evals = {s: sb.tl.generate(m, 50, progress=False).uns["scbranch"]["generate"]["n_evals"] for s, m in models.items()}
    assert evals[1.0] < evals[0.0]
    with pytest.raises(ValueError, match="sharing must be"):
        sb.tl.fit(toy_adata.copy(), groupby="cell_type", sharing=1.5, **fast())


def test_systematic_resampling_keeps_each_row_its_share():
    from scbranch.model._types import systematic_resample

    gen = torch.Generator().manual_seed(0)
    idx = systematic_resample(torch.ones(500), 500, gen)  # equal weights: every row exactly once
    np.testing.assert_array_equal(np.sort(idx.numpy()), np.arange(500))
    w = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0])
    counts = np.bincount(systematic_resample(w, 40, gen).numpy(), minlength=5)
    np.testing.assert_array_equal(counts, [20, 10, 5, 5, 0])  # n·w̄ exactly when it is an integer
    counts = np.bincount(systematic_resample(w, 7, gen).numpy(), minlength=5)
    assert counts.sum() == 7 and np.all(np.abs(counts - 7 * w.numpy() / w.sum().numpy()) < 1)


def test_a_late_split_sized_by_ess_hands_each_child_distinct_rows():
    """The known mixture split at t_b = 0.15, where the components barely overlap (each child keeps about half
    of the parent's rows): told so (``ess``), the walk carries more shared rows, and each child recovers its
    component from distinct rows instead of duplicating half of them; without ``ess`` the cost is the old one."""
    sde, t_b, n = VPSDE(), 0.15, 2000
    model = ExactGaussianMixture(sde)

    distinct = []

    def exact_resample(x, t, child, parent, n_rows, generator):
        w = 2 * torch.softmax(model.log_weights(x, torch.tensor([t])), 1)[:, child - 1]
        idx = sb.model._types.systematic_resample(w, n_rows, generator)
        distinct.append(len(torch.unique(idx)) / n_rows)
        return idx

    def walk(ess, n_steps=50):
        return sample_tree(model, get_sampler("euler_maruyama"), {"A": [0, 1], "B": [0, 2]},
                           {0: (t_b, 1.0), 1: (0.0, t_b), 2: (0.0, t_b)}, {"A": n, "B": n}, get_times(n_steps),
                           sde=sde, n_features=2, generator=torch.Generator().manual_seed(0), progress=False,
                           resample=exact_resample, ess=ess)

    (_, st_plain), (sized, st_sized) = walk(None), walk({1: 0.5, 2: 0.5})
    alpha2 = float(sde.alpha_sigma(torch.tensor(t_b))[0] ** 2)
    shared_steps = int((get_times(50) - t_b).abs().argmin())  # the branch point snaps to the nearest grid time
    assert st_plain["n_evals"] == n * shared_steps + 2 * n * (50 - shared_steps)
    # the shared branch carried n·α²/0.5 rows: the children's rows are worth α² of fresh ones at t_b
    assert st_sized["n_evals"] == int(np.ceil(n * alpha2 / 0.5)) * shared_steps + 2 * n * (50 - shared_steps)
    for ty, k in (("A", 1), ("B", 2)):
        np.testing.assert_allclose(sized[ty].mean(0).numpy(), MU[k].numpy(), atol=0.1)
        np.testing.assert_allclose(sized[ty].std(0).numpy(), [S, S], rtol=0.1)
    # without sizing, each child duplicates about half its rows; sized, it draws ≥ α² of them distinct
    assert max(distinct[:2]) < 0.65 and min(distinct[2:]) > 0.75


def test_branch_ess_is_measured_at_fit_and_late_splits_are_floored(typed_model):
    from scbranch.hierarchy._data import MIN_BRANCH_TIME

    model, _ = typed_model
    ess = model.state.branch_ess
    paths, _, _ = model.walk_layout()
    node = dict(zip(model.branches["branch"], model.branches["node"]))
    children = {node[c] for p in paths.values() for c in p[1:]}
    assert set(ess) == children and all(0 < f <= 1 for f in ess.values())
    assert all(n.time >= MIN_BRANCH_TIME for n in model.hierarchy.internal_nodes)
