import numpy as np
import pytest
import torch

from scbranch.module import VPSDE, BranchedDiffusionModule, ComponentwiseVPSDE, make_sde
from scbranch.sampling import SAMPLERS, get_times, sample_tree

SDE = VPSDE()
MU = {0: torch.tensor([3.0, -2.0]), 1: torch.tensor([-3.0, 1.0]), 2: torch.tensor([0.0, 0.0])}
S0 = 0.5


def gaussian_eps(x, t, branch):
    """Exact ε for data N(MU[branch], S0² I): a 'network' with a known right answer."""
    a, s = SDE.alpha_sigma(t)
    a, s = a[:, None], s[:, None]
    score = -(x - a * MU[branch]) / (a**2 * S0**2 + s**2)
    return -score * s


def test_vp_sde_marginal_is_variance_preserving():
    t = torch.linspace(0, 1, 11)
    a, s = SDE.alpha_sigma(t)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t))
    assert a[0] == 1 and a[-1] < 0.01
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=5, beta_max=1)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_recover_known_gaussian(name):
    x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    out = SAMPLERS[name](gaussian_eps, x, get_times(200), sde=SDE, extra_args={"branch": 0},
                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.mean(0), MU[0], atol=0.05, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), S0), atol=0.03, rtol=0)


def test_log_snr_round_trip_and_logsnr_grid():
    t = torch.linspace(0.01, 1, 7)
    torch.testing.assert_close(SDE.t_of_log_snr(SDE.log_snr(t)), t, atol=1e-5, rtol=0)
    ts = get_times(20, spacing="logsnr")
    assert ts[0] == 1 and ts[-1] == pytest.approx(1e-3) and (ts.diff() < 0).all()
    assert (ts[:-1] - ts[1:])[-5:].mean() < (ts[:-1] - ts[1:])[:5].mean()  # finer steps at low noise


def test_branch_lookup_follows_type_paths():
    # types 0,1 share branch 0 above t=0.6, then branches 1/2; type 2 has branch 3 over all of [0, 1]
    paths = [[(0, 0.6), (1, 0.0)], [(0, 0.6), (2, 0.0)], [(3, 0.0)]]
    mod = BranchedDiffusionModule(2, paths, n_branches=4, width=16, n_blocks=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    t = torch.tensor([0.1, 0.7, 0.59, 0.6, 0.0, 1.0])
    assert mod.branch_of(y, t).tolist() == [1, 0, 2, 0, 3, 3]


def test_tree_walk_shares_upstream_steps_and_matches_per_type_sampling():
    # branch 0 (types a, b) over [0.5, 1]; leaves a -> 1, b -> 2 over [0, 0.5); c alone on branch 3
    paths = {"a": [0, 1], "b": [0, 2], "c": [3]}
    bounds = {0: (0.5, 1.0), 1: (0.0, 0.5), 2: (0.0, 0.5), 3: (0.0, 1.0)}

    def eps(x, t, branch):  # leaves are the known Gaussians; the shared branch uses a's score
        return gaussian_eps(x, t, {0: 0, 1: 0, 2: 1, 3: 2}[branch])

    n = {"a": 500, "b": 300, "c": 200}
    ts = get_times(100)
    kw = {"sde": SDE, "n_features": 2, "progress": False}
    shared, st = sample_tree(
        eps, SAMPLERS["ddim"], paths, bounds, n, ts, generator=torch.Generator().manual_seed(0), **kw
    )
    alone_evals, alone_nfe, alone = 0, 0, {}
    for ty in n:
        out, st1 = sample_tree(eps, SAMPLERS["ddim"], paths, bounds, {ty: n[ty]}, ts,
                               generator=torch.Generator().manual_seed(1), **kw)
        alone.update(out)
        alone_evals, alone_nfe = alone_evals + st1["n_evals"], alone_nfe + st1["nfe"]
    assert {k: len(v) for k, v in shared.items()} == n
    # a and b share the 50 upstream steps: 500 rows there instead of 500 + 300
    assert st["n_evals"] == 500 * 50 + 500 * 50 + 300 * 50 + 200 * 100
    assert st["n_evals"] < alone_evals and st["nfe"] < alone_nfe
    for ty in n:  # same distribution either way
        np.testing.assert_allclose(shared[ty].mean(0), alone[ty].mean(0), atol=0.12)
        np.testing.assert_allclose(shared[ty].std(0), alone[ty].std(0), atol=0.08)


GUD_STD = torch.tensor([2.0, 0.5, 0.2])
GUD_MU = torch.tensor([1.0, -1.0, 0.5])


def test_componentwise_sde_orders_components_coarse_to_fine():
    sde = make_sde(softness=1.0, variances=GUD_STD**2)
    assert isinstance(sde, ComponentwiseVPSDE) and sde.order == (0.0, 0.5, 1.0)
    a, s = sde.alpha_sigma(torch.tensor(0.5))
    torch.testing.assert_close(a**2 + s**2, torch.ones(3))
    assert a[0] > a[1] > a[2]  # halfway, the highest-variance component is the least noised
    a1, _ = sde.alpha_sigma(torch.tensor(1.0))
    assert (a1 < 0.01).all()  # every component reaches the N(0, I) prior at t = 1
    assert sde.active(torch.tensor(0.9)).tolist() == [True, False, False]  # only the coarse one moves late
    # softness → ∞ is standard diffusion
    a_inf, _ = make_sde(softness=1e9, variances=GUD_STD**2).alpha_sigma(torch.tensor(0.3))
    torch.testing.assert_close(a_inf, SDE.alpha_sigma(torch.tensor(0.3))[0].expand(3), atol=1e-4, rtol=0)
    assert isinstance(make_sde(softness=None), VPSDE) and not isinstance(make_sde(), ComponentwiseVPSDE)
    with pytest.raises(ValueError, match="softness"):
        make_sde(softness=-1.0, variances=GUD_STD)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_recover_known_gaussian_under_componentwise_schedule(name):
    sde = make_sde(softness=1.0, variances=GUD_STD**2)

    def eps(x, t, branch):  # exact ε of N(GUD_MU, diag(GUD_STD²)) under each component's own schedule
        a, s = sde.alpha_sigma(t)
        return s * (x - a * GUD_MU) / (a**2 * GUD_STD**2 + s**2)

    x = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    out = SAMPLERS[name](eps, x, get_times(200), sde=sde, extra_args={"branch": 0},
                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.mean(0), GUD_MU, atol=0.08, rtol=0)
    torch.testing.assert_close(out.std(0) / GUD_STD, torch.ones(3), atol=0.06, rtol=0)


def test_network_shared_conditioning_matches_per_row():
    """The sampler's case (one t, one branch for all rows) computes the conditioning once; same ε̂ as per row."""
    from scbranch.module import BranchedScoreNet

    torch.manual_seed(0)
    net = BranchedScoreNet(5, 3, width=32, n_blocks=2).eval()
    for p in net.parameters():  # non-trivial weights (fc2 and heads start near zero)
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(64, 5), torch.full((64,), 0.37)
    with torch.no_grad():
        shared = net(x, t, 2)
        per_row = net(x, t, torch.full((64,), 2, dtype=torch.long))
        other_t = net(x, torch.full((64,), 0.8), 2)
    torch.testing.assert_close(shared, per_row, rtol=1e-4, atol=1e-5)
    assert (shared - other_t).abs().max() > 1e-2


def test_network_evaluates_only_each_rows_own_head():
    """Mixed branches (training): each row's ε̂ equals that row evaluated alone in its branch, and only the
    rows of the branches in the batch receive gradient."""
    from scbranch.module import BranchedScoreNet

    torch.manual_seed(0)
    net = BranchedScoreNet(4, 7, width=16, n_blocks=2)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(40, 4), torch.rand(40)
    b = torch.tensor([0, 2, 5] * 13 + [2])
    out = net(x, t, b)
    with torch.no_grad():
        alone = torch.cat([net(x[i : i + 1], t[i : i + 1], int(b[i])) for i in range(len(b))])
    torch.testing.assert_close(out, alone, rtol=1e-4, atol=1e-5)
    out.pow(2).sum().backward()
    for grad in (net.head_weight[0].grad, net.head_bias[0].grad, net.branch_emb[0].grad):
        rows = {i for i in range(7) if grad[i].abs().sum() > 0}
        assert rows == {0, 2, 5}


def test_added_branches_form_a_block_trained_alone():
    """add_branches appends a block (copies or fresh); its parameters are exactly the new branches', and the
    old block's outputs are unchanged by training it."""
    from scbranch.module._network import BranchedScoreNet, upgrade_state_dict

    torch.manual_seed(0)
    net = BranchedScoreNet(4, 3, width=16, n_blocks=2)
    x, t = torch.randn(8, 4), torch.rand(8)
    before = net(x, t, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])).detach()
    new = net.add_branches([1, None])
    assert new == [3, 4] and net.block_sizes == [3, 2]
    torch.testing.assert_close(net(x, t, 3), net(x, t, 1))  # a copy of branch 1
    params = net.branch_parameters(new)
    assert len(params) == 3 and all(p.shape[0] == 2 for p in params)
    with pytest.raises(ValueError, match="cover only part"):
        net.branch_parameters([3])
    opt = torch.optim.SGD(params, lr=0.1)
    net(x, t, torch.tensor([3, 4] * 4)).pow(2).sum().backward()
    opt.step()
    torch.testing.assert_close(net(x, t, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])), before, rtol=0, atol=0)
    # a state dict from before blocks (one Linear head and one embedding per branch) loads as one block
    legacy = {k: v for k, v in BranchedScoreNet(4, 3, width=16, n_blocks=2).state_dict().items()
              if not k.startswith(("head_", "branch_emb"))}
    for i in range(3):
        legacy[f"heads.{i}.weight"], legacy[f"heads.{i}.bias"] = torch.randn(4, 16), torch.randn(4)
        legacy[f"branch_emb.{i}"] = torch.randn(16)
    up = upgrade_state_dict({f"net.{k}": v for k, v in legacy.items()})
    fresh = BranchedScoreNet(4, 3, width=16, n_blocks=2)
    fresh.load_state_dict({k.removeprefix("net."): v for k, v in up.items()})
    torch.testing.assert_close(fresh.head_weight[0][1], legacy["heads.1.weight"].T)
