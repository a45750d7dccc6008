"""The count decoder's training step reads only the non-zeros; it must be the dense Poisson objective's step."""

import copy

import numpy as np
import pytest
import torch
from scipy import sparse

from scbranch.representation import _nb_decoder
from scbranch.representation._nb_decoder import NBDecoder, _Rows, _step_loss

N_CELLS, N_GENES, N_TYPES, N_FEATURES = 40, 60, 3, 5


def _halved(x: sparse.csr_matrix, k: int = 10) -> sparse.csr_matrix:
    """``x`` with its first ``k`` entries each stored as two halves, and a stored zero (non-canonical CSR)."""
    coo = x.tocoo()
    empty = np.flatnonzero(x[5].toarray().ravel() == 0)[0]
    rows = np.concatenate([coo.row, coo.row[:k], [5]])
    cols = np.concatenate([coo.col, coo.col[:k], [empty]])
    vals = np.concatenate([coo.data[:k] / 2, coo.data[k:], coo.data[:k] / 2, [0.0]])
    by_row = np.argsort(rows, kind="stable")  # the CSR arrays as they are: no summing of the duplicates
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=x.shape[0]))])
    counts = sparse.csr_matrix((vals[by_row], cols[by_row], indptr), shape=x.shape)
    assert np.allclose(counts.toarray(), x.toarray()) and counts.nnz > x.nnz
    return counts


def _problem(n_model: int | None, seed: int = 0):
    """A decoder with random parameters (type bias too) over sparse counts with an empty cell, stored zeros and
    duplicate entries (non-canonical CSR), and a batch that draws some cells twice."""
    rng = np.random.default_rng(seed)
    x = sparse.random(N_CELLS, N_GENES, density=0.2, random_state=seed, dtype=np.float64,
                      data_rvs=lambda k: rng.integers(1, 30, k)).tocsr()
    x = x.tolil()
    x[3, :] = 0  # a cell without counts: its library is clamped to 1, its Σx is 0
    x = x.tocsr()
    counts = _halved(x)
    genes = None if n_model is None else np.sort(rng.choice(N_GENES, n_model, replace=False))
    dec = NBDecoder(N_FEATURES, N_GENES, genes)
    torch.manual_seed(seed)
    dec.net = dec._new_net(N_TYPES, hidden=16)
    if dec.genes is not None:
        dec.net.genes[:] = torch.as_tensor(dec.genes)
        dec.net.rest[:] = torch.as_tensor(np.setdiff1d(np.arange(N_GENES), dec.genes))
    with torch.no_grad():
        for p in dec.net.parameters():
            p.normal_(0, 0.5)
    z = rng.normal(size=(N_CELLS, N_FEATURES)).astype(np.float32)
    codes = rng.integers(N_TYPES, size=N_CELLS)
    idx = np.concatenate([rng.integers(N_CELLS, size=14), [3, 3]])
    return dec, z, counts, codes, idx


def _dense_loss(dec, z, counts, codes, idx, n_total):
    """The objective as it was written before: dense counts in the outputs' order, log_softmax, the prior."""
    order = dec._order()
    x = counts[idx].toarray() if order is None else counts[idx][:, order].toarray()
    lib = torch.as_tensor(np.asarray(counts.sum(1)).ravel(), dtype=torch.float32).clamp_min(1.0)
    net, zt, ct = dec.net, torch.as_tensor(z), torch.as_tensor(codes)
    log_rho = torch.log_softmax(net.logits(zt[idx]) + net.type_bias[ct[idx]], dim=-1)
    nll = (lib[idx, None] * log_rho.exp() - torch.from_numpy(x) * log_rho).sum(1).mean()
    return nll + 0.5 * net.type_bias.pow(2).sum() / n_total


def _sparse_loss(dec, z, counts, codes, idx, n_total):
    """The training step's: the non-zeros only; the prior's gradient is Adam's weight decay (added below)."""
    rows = _Rows(counts, dec._order())
    lib = torch.as_tensor(rows.sums, dtype=torch.float32).clamp_min(1.0)
    net, zt, ct = dec.net, torch.as_tensor(z), torch.as_tensor(codes)
    nll = _step_loss(net, zt[idx], ct[idx], rows(idx), lib[torch.as_tensor(idx)])
    return nll, 0.5 * net.type_bias.detach().pow(2).sum() / n_total


@pytest.mark.parametrize("n_model", [None, 20])
def test_sparse_step_has_the_dense_loss_and_gradients(n_model):
    dec, z, counts, codes, idx = _problem(n_model)
    n_total = N_CELLS
    dense = _dense_loss(dec, z, counts, codes, idx, n_total)
    dense.backward()
    want = {k: p.grad.clone() for k, p in dec.net.named_parameters()}
    dec.net.zero_grad(set_to_none=True)
    nll, prior = _sparse_loss(dec, z, counts, codes, idx, n_total)
    nll.backward()
    torch.testing.assert_close(nll.detach() + prior, dense.detach().float(), rtol=1e-6, atol=1e-4)
    for k, p in dec.net.named_parameters():
        got = p.grad + (p.detach() / n_total if k == "type_bias" else 0)  # Adam's weight_decay = 1 / n_total
        scale = want[k].abs().max()
        torch.testing.assert_close(got, want[k], rtol=0, atol=1e-5 * scale, msg=k)


@pytest.mark.parametrize("n_model", [None, 20])
def test_rows_are_the_dense_batch(n_model):
    dec, _, counts, _, idx = _problem(n_model, seed=1)
    flat, values, sums = _Rows(counts, dec._order())(idx)
    order = dec._order()
    want = counts[idx].toarray() if order is None else counts[idx][:, order].toarray()
    got = torch.zeros(len(idx) * N_GENES, dtype=torch.float64).index_add_(0, flat, values.double())
    np.testing.assert_allclose(got.view(len(idx), N_GENES).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(sums.numpy(), want.sum(1), rtol=1e-6)


def test_training_follows_the_dense_steps(monkeypatch):
    """A few Adam steps of ``_train`` against the same steps of the dense objective (plain Adam, prior in the
    loss): the same batches and the same parameters, to float tolerance."""
    monkeypatch.setattr(_nb_decoder, "STEP_RANGE", (5, 5))
    dec, z, counts, codes, _ = _problem(20, seed=2)
    ref = NBDecoder(N_FEATURES, N_GENES, dec.genes)
    ref.net = copy.deepcopy(dec.net)
    dec._train(z, counts, codes, list(dec.net.parameters()), n_total=N_CELLS, random_state=4)
    gen = torch.Generator().manual_seed(4)
    opt = torch.optim.Adam(ref.net.parameters(), lr=_nb_decoder.LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5)
    for _ in range(5):
        idx = torch.randint(N_CELLS, (min(_nb_decoder.BATCH, N_CELLS),), generator=gen).numpy()
        loss = _dense_loss(ref, z, counts, codes, idx, N_CELLS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    for (k, p), q in zip(dec.net.named_parameters(), ref.net.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-5, msg=k)  # measured: ≤ 6e-8


def test_frozen_network_trains_only_the_type_bias():
    """As ``add_types`` trains: the shared layers frozen, the type bias's gradient the dense one's."""
    dec, z, counts, codes, idx = _problem(20, seed=3)
    _dense_loss(dec, z, counts, codes, idx, N_CELLS).backward()
    want = dec.net.type_bias.grad.clone()
    dec.net.zero_grad(set_to_none=True)
    for k, p in dec.net.named_parameters():
        p.requires_grad_(k == "type_bias")
    nll, _ = _sparse_loss(dec, z, counts, codes, idx, N_CELLS)
    nll.backward()
    assert all(p.grad is None for k, p in dec.net.named_parameters() if k != "type_bias")
    got = dec.net.type_bias.grad + dec.net.type_bias.detach() / N_CELLS
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max())


@torch.no_grad()
def _dense_dispersion(dec, z, counts, codes, types):
    """The dispersion's moments as they were computed before: every block's counts and means dense, per gene
    Σμ² and Σ((x − μ)² − μ); returns the pooled 1/θ and each type's log θ the decoder derives from them."""
    lib = np.asarray(counts.sum(1)).ravel()
    a, b, n = [], [], []
    for k in types:
        rows = np.flatnonzero(codes == k)
        mu = dec.net.rho(torch.as_tensor(z[rows]), torch.full((len(rows),), k)).double().numpy() * lib[rows, None]
        x = counts[rows].toarray().astype(np.float64)
        a.append((mu**2).sum(0))
        b.append(((x - mu) ** 2 - mu).sum(0))
        n.append(len(rows))
    a, b, n = np.stack(a), np.stack(b), np.asarray(n, np.float64)[:, None]
    phi_gene = np.clip(b.sum(0) / np.maximum(a.sum(0), 1e-12), 0, None)
    phi = (b + _nb_decoder.PRIOR_CELLS * phi_gene * a / n) / (a + _nb_decoder.PRIOR_CELLS * a / n + 1e-12)
    lo, hi = _nb_decoder.LOG_THETA
    return phi_gene, -np.log(np.clip(phi, np.exp(-hi), np.exp(-lo)))


@pytest.mark.parametrize("n_model", [None, 20])
def test_dispersion_from_the_non_zeros_is_the_dense_one(n_model, monkeypatch):
    monkeypatch.setattr(_nb_decoder, "BLOCK_VALUES", 7 * N_GENES)  # several blocks a type
    dec, z, _, codes, _ = _problem(n_model, seed=4)
    with torch.no_grad():  # counts from the decoder's own means, NB with θ = 2: most θ estimates not clipped
        dec.net.type_bias.mul_(0.2)
        mu = dec.net.rho(torch.as_tensor(z), torch.as_tensor(codes)).double().numpy() * 300
    rng = np.random.default_rng(4)
    counts = _halved(sparse.csr_matrix(rng.poisson(rng.gamma(2.0, mu / 2.0))))
    phi_gene, log_theta = _dense_dispersion(dec, z, counts, codes, list(range(N_TYPES)))
    dec._set_dispersion(z, counts, codes, list(range(N_TYPES)), pool=True)
    np.testing.assert_allclose(dec.net.phi_gene.numpy(), phi_gene, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dec.net.log_theta.numpy(), log_theta, rtol=1e-5, atol=1e-4)
