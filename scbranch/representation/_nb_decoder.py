"""Model space → counts: a small decoder with a negative-binomial likelihood, fitted on the training counts.

Why: decoding PCA space through the loadings plus Gaussian noise cannot make the exact zeros and the count
noise of single cells (measured on pbmc68k: 82 % of synthetic entries > 0 vs 33 % real; per-gene variances off
by ~4×). Here each cell's expected expression is ``library × softmax(MLP(z) + b_type)`` and its counts are drawn
from NB(mean, θ_type,gene): the zeros and the over-dispersion come from the likelihood, as in scVI's decoder,
while the cell state z stays the diffusion model's. The MLP is fitted on real cells' z (their projection) and
counts, so the dispersion also absorbs the within-type variation the representation drops.

Fitting: the mean by Poisson quasi-likelihood (the NB mean's estimating equation without the dispersion, and
without the log-gamma terms that made a full NB step ~8× slower on CPU: 46 ms vs ~5 ms per 256 cells × 765
genes), then each type's dispersion by the method of moments on the residuals, Var = μ + μ²/θ, shrunk toward the
gene's pooled dispersion by ``PRIOR_CELLS`` pseudo-cells so a type of 8 cells falls back to the shared value.
Both read the counts' non-zeros only: since the means' shares sum to 1, a cell's Poisson loss is
lib − Σ x·logit + (Σ x)·logsumexp(logits) (:class:`_PoissonNLL`), and the moments' Σ(x − μ)² is
Σx² − 2Σxμ + Σμ².

The type bias ``b_type`` restores genes the representation cannot hold (above all for a type added later, whose
own directions a PCA fitted without it lacks); it has a Gaussian prior around 0. New types get their own bias
and dispersion with the network frozen: the old types decode exactly as before.

Model genes and the others: when the representation was fitted on highly variable genes (``genes``), those get
the full output layer of the hidden units; every other gene's logit comes from the same hidden units through a
rank-``REST_RANK`` map (``rest_out``), in the same softmax. A 512 → 20,000 output layer was 1,097 of the 1,122 s
of a fit at 5,000 × 20,000; with 3,000 model genes the output weights are 512 × 3,000 + 512 × 64 + 64 × 17,000
instead of 512 × 20,000 (a quarter), and the cost follows the model genes. Zeisel with 2,000 of its 4,000 genes as
model genes (seed 0, decode(encode(training cells)) against held-out cells, per-type MMD / kNN AUC): rank 64 from
the hidden units 0.019 / 0.570; the full output layer over every gene 0.018 / 0.582; every gene in the model
space 0.022 / 0.580. Cheaper models of the other genes lost the cells' state: a linear map of the coordinates
0.017 / 0.597, each type's pooled proportions 0.154 / 0.795, proportions of ~30-cell neighbourhoods in model space
0.115 / 0.776 — what the mean misses comes back as independent per-gene noise, which over thousands of genes moves
cells off the real ones.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy import sparse
from torch import nn

from ..module._shapes import check_shapes
from ._conditioned import negative_binomial

HIDDEN = 512  # older saved models used 128 (no "hidden" in their meta): rebuilt as they were
BATCH, LR = 128, 3e-3
# Cell by cell, an under-fitted mean is what kept decoded cells off the real ones: decode(encode(real cells)) on
# held-out human_kidney / zeisel cells, per-type MMD 0.0241 / 0.0260 with 128 hidden units and ≤ 1,000 steps,
# 0.0171 / 0.0185 with 3,000 steps, 0.0122 / 0.0172 with 512 units (each cell at its own depth; real floor
# 0.0065 / 0.0135): the within-type structure a weak mean misses came back only as independent per-gene noise.
# Batches of 128 instead of 256 cost ~+0.002 there and a third of the time (zeisel's 4,000 genes: 53 s instead
# of 80 s); a rank-128 output layer scored the same at about the same time. Steps: ~200 passes
# over the cells within STEP_RANGE, the learning rate decayed to 0 (cosine) so the last steps settle the mean.
# A step reads only its batch's non-zeros, with the output layers, softmax and loss in one autograd Function and a
# fused Adam: the dense step's loss and gradients to float tolerance (tests/test_nb_decoder.py), at 0.51-0.52×
# its time at 20,000 genes (3,000 model genes + rank 64, 11 types, 12 % non-zero; ~35 instead of ~69 ms a step)
# and 0.78-0.84× at 2,000 (one thread, interleaved on the same batches, median of 10-16 blocks). human_kidney
# (seed 0, decode(encode(training cells)) vs held-out): MMD / kNN AUC 0.0070 / 0.522 (dense step 0.0070 / 0.523),
# per-gene mean counts within 0.8 Poisson SE of the dense step's model. What a step still costs at 20,000 genes:
# the matrix products, ~3/4 (the 3,000 genes' layer at ~90 GFLOP/s and the rank-64 map, memory-bound at ~55,
# each ~13 ms), the softmax ~8 %, Adam ~4 % (type_bias is 8 % of its values: a sparse update would save < 0.5 %).
STEP_RANGE, PASSES = (500, 3000), 200
PRIOR_CELLS = 20.0  # weight of the gene's pooled dispersion in a type's estimate, in cells
MAX_CELLS = 2000  # cells per type the dispersion is estimated from
BLOCK_VALUES = 2**23  # of those, this many (cells × genes) values dense at a time: 64 MB in float64
REST_RANK = 64  # the genes outside the model space: logits through a rank-64 map of the hidden layer
LOG_THETA = (-4.0, 8.0)  # θ between ~0.02 (very over-dispersed) and ~3000 (≈ Poisson)


class _Net(nn.Module):
    """The mean over every gene: the hidden units' full output layer for ``n_model`` genes (all ``n_genes`` when
    ``None``) and a rank-``REST_RANK`` map of them for the others (see the module docstring); the per-type
    dispersions of every gene."""

    def __init__(self, n_features: int, n_genes: int, n_types: int, hidden: int = HIDDEN,
                 n_model: int | None = None):
        super().__init__()
        split = n_model is not None and n_model < n_genes
        n_hidden_genes = n_model if split else n_genes
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, n_hidden_genes))
        self.type_bias = nn.Parameter(torch.zeros(n_types, n_genes))  # with a split: model genes first, then others
        # set by moments, not by gradient (buffers: saved with the state, untouched by the optimizer); the
        # pooled per-gene dispersion of the training types is kept to shrink types added later toward it
        self.register_buffer("log_theta", torch.full((n_types, n_genes), LOG_THETA[1]))
        self.register_buffer("phi_gene", torch.zeros(n_genes))
        self.split = split
        if split:  # registered only then: models over all genes keep the state they always had
            self.rest_out = nn.Sequential(nn.Linear(hidden, REST_RANK), nn.Linear(REST_RANK, n_genes - n_model))
            self.register_buffer("genes", torch.zeros(n_model, dtype=torch.int64))
            self.register_buffer("rest", torch.zeros(n_genes - n_model, dtype=torch.int64))

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Without the type bias; with a split, in the order model genes, then the others."""
        if not self.split:
            return self.mlp(z)
        h = self.mlp[1](self.mlp[0](z))  # the hidden layer, shared
        return torch.cat([self.mlp[2](h), self.rest_out(h)], 1)

    def rho(self, z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Each cell's expected share of its library on every gene (in the genes' order)."""
        p = torch.softmax(self.logits(z) + self.type_bias[codes], dim=-1)
        if not self.split:
            return p
        out = torch.empty_like(p)
        out[:, self.genes], out[:, self.rest] = p[:, : len(self.genes)], p[:, len(self.genes) :]
        return out


class NBDecoder:
    """See the module docstring. ``fit`` once on the training cells; ``add_types`` for types added later."""

    def __init__(self, n_features: int, n_genes: int, genes: np.ndarray | None = None):
        self.n_features, self.n_genes = n_features, n_genes
        # the genes with the full output layer (sorted indices; None: all); the others through the rank-64 map
        self.genes = None if genes is None or len(genes) >= n_genes else np.asarray(genes, np.int64)
        self.type_names: list[str] = []
        self.net: _Net | None = None

    def _new_net(self, n_types: int, hidden: int = HIDDEN) -> _Net:
        return _Net(self.n_features, self.n_genes, n_types, hidden, None if self.genes is None else len(self.genes))

    def _order(self) -> np.ndarray | None:
        """The gene of each network output (with a split: the model genes first); ``None``: the genes' order."""
        return None if self.genes is None else np.concatenate([self.genes, self.net.rest.numpy()])

    def _train(self, z, counts, codes, params, *, n_total: int, random_state: int) -> float:
        """Minimise the Poisson negative log-likelihood of the means (per cell) plus the type-bias prior.

        ``counts`` in the genes' order (CSR). Each step reads only the batch's non-zeros (:class:`_Rows`,
        :class:`_PoissonNLL`); the prior ½‖b‖²/n is Adam's L2 term on ``type_bias`` (``weight_decay`` adds
        b/n to its gradient, the prior's gradient)."""
        gen = torch.Generator().manual_seed(int(random_state))
        z, codes = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(codes, dtype=torch.int64)
        rows = _Rows(counts, self._order())
        lib = torch.as_tensor(rows.sums, dtype=torch.float32).clamp_min(1.0)
        net = self.net
        others = [p for p in params if p is not net.type_bias]
        assert len(others) == len(params) - 1, "type_bias is always trained"
        groups = [{"params": others}] if others else []
        groups.append({"params": [net.type_bias], "weight_decay": 1.0 / n_total})  # MAP: the prior once per data set
        opt = _adam(groups)
        n_steps = int(np.clip(PASSES * len(z) / BATCH, *STEP_RANGE))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps)
        loss = 0.0
        for step in range(n_steps):
            idx = torch.randint(len(z), (min(BATCH, len(z)),), generator=gen)
            nll = _step_loss(net, z[idx], codes[idx], rows(idx.numpy()), lib[idx])
            opt.zero_grad()
            nll.backward()
            if step == n_steps - 1:  # the last step's loss, prior included, at the parameters it saw
                loss = float(nll.detach()) + float(0.5 * net.type_bias.detach().pow(2).sum() / n_total)
            opt.step()
            sched.step()
        return loss

    @torch.no_grad()
    def _set_dispersion(self, z, counts, codes, types: list[int], *, pool: bool, random_state: int = 0) -> None:
        """θ of ``types`` by moments: Σμ² / Σ((x − μ)² − μ) per gene, shrunk toward the gene's pooled value
        (pooled over ``types`` with ``pool``, at the first fit; else the stored one: new types shrink toward the
        training types' dispersion, not toward themselves). Over the non-zeros, Σ((x − μ)² − μ) is
        Σx² − 2Σxμ + Σμ² − Σμ (float64); μ stays in the network's output order, its sums are put in the genes'."""
        lib = np.asarray(counts.sum(1), np.float64).ravel()
        order = self._order()
        column = np.arange(self.n_genes) if order is None else _gene_to_output(order)
        rng = np.random.default_rng(random_state)
        a, b, n = [], [], []
        for k in types:  # a block of one type's cells dense at a time (BLOCK_VALUES values)
            rows = np.flatnonzero(codes == k)
            if len(rows) > MAX_CELLS:
                rows = np.sort(rng.choice(rows, MAX_CELLS, replace=False))
            ak, bk = np.zeros(self.n_genes), np.zeros(self.n_genes)
            step = max(1, BLOCK_VALUES // self.n_genes)
            for lo in range(0, len(rows), step):
                r = rows[lo : lo + step]
                x = counts[r]
                x.sum_duplicates()  # Σx² needs each entry once
                cell = np.repeat(np.arange(len(r)), np.diff(x.indptr))
                logits = self.net.logits(torch.as_tensor(z[r], dtype=torch.float32)) + self.net.type_bias[k]
                rho = torch.softmax(logits, 1).double()  # in the outputs' order
                mu_x = rho[torch.as_tensor(cell), torch.as_tensor(column[x.indices])].numpy() * lib[r][cell]
                w = torch.as_tensor(lib[r])
                mu = (w @ rho).numpy()[column]  # Σμ per gene
                mu2 = (w.square() @ rho.square_()).numpy()[column]  # Σμ²
                ak += mu2
                bk += np.bincount(x.indices, x.data * (x.data - 2 * mu_x), minlength=self.n_genes) + mu2 - mu
            a.append(ak)
            b.append(bk)
            n.append(len(rows))
        a, b, n = np.stack(a), np.stack(b), np.asarray(n, np.float64)[:, None]
        if pool:
            self.net.phi_gene[:] = torch.as_tensor(np.clip(b.sum(0) / np.maximum(a.sum(0), 1e-12), 0, None))
        phi_gene = self.net.phi_gene.double().numpy()  # pooled 1/θ
        phi = (b + PRIOR_CELLS * phi_gene * a / n) / (a + PRIOR_CELLS * a / n + 1e-12)
        log_theta = -np.log(np.clip(phi, np.exp(-LOG_THETA[1]), np.exp(-LOG_THETA[0])))
        self.net.log_theta[types] = torch.as_tensor(log_theta, dtype=torch.float32)

    def fit(self, z: np.ndarray, counts, labels, *, random_state: int = 0) -> NBDecoder:
        labels = np.asarray(labels, dtype=str)
        counts = _csr(counts)
        self.type_names = list(dict.fromkeys(labels))
        codes = np.array([self.type_names.index(t) for t in labels])
        with torch.random.fork_rng():
            torch.manual_seed(int(random_state))
            self.net = self._new_net(len(self.type_names))
            if self.genes is not None:
                self.net.genes[:] = torch.as_tensor(self.genes)
                self.net.rest[:] = torch.as_tensor(np.setdiff1d(np.arange(self.n_genes), self.genes))
            self.loss_ = self._train(z, counts, codes, list(self.net.parameters()), n_total=len(z),
                                     random_state=random_state)
        self._set_dispersion(z, counts, codes, list(range(len(self.type_names))), pool=True,
                             random_state=random_state)
        return self

    def add_types(self, z: np.ndarray, counts, labels, *, random_state: int = 0) -> None:
        """Bias and dispersion for the new types in ``labels``; the network and the old types stay as they are."""
        labels, counts = np.asarray(labels, dtype=str), _csr(counts)
        new = [t for t in dict.fromkeys(labels) if t not in self.type_names]
        if not new:
            return
        # fit a copy and swap it in at the end: an interrupted call leaves the decoder as it was
        old, net = len(self.type_names), copy.deepcopy(self.net)
        frozen = net.type_bias.data.clone()
        shared = [*net.mlp.parameters(), *(net.rest_out.parameters() if net.split else [])]
        for p in shared:
            p.requires_grad_(False)
        net.type_bias = nn.Parameter(torch.cat([frozen, torch.zeros(len(new), self.n_genes)]))
        net.log_theta = torch.cat([net.log_theta, torch.full((len(new), self.n_genes), LOG_THETA[1])])
        names = self.type_names + new
        keep = np.isin(labels, new)
        z, counts = z[keep], counts[np.flatnonzero(keep)]
        codes = np.array([names.index(t) for t in labels[keep]])
        grown = NBDecoder(self.n_features, self.n_genes, self.genes)
        grown.type_names, grown.net = names, net
        grown._train(z, counts, codes, [net.type_bias], n_total=len(z), random_state=random_state)
        with torch.no_grad():  # the prior's gradient moved the old rows too: restore them exactly
            net.type_bias[:old] = frozen
        grown._set_dispersion(z, counts, codes, list(range(old, len(names))), pool=False, random_state=random_state)
        for p in shared:
            p.requires_grad_(True)
        self.type_names, self.net = names, net

    @torch.no_grad()
    def params(self, z: np.ndarray, labels, lib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The negative binomial of each cell and gene: means and inverse dispersions (cells × genes, float64)
        for model-space cells ``z`` of types ``labels`` with library sizes ``lib``."""
        labels = np.asarray(labels, dtype=str)
        missing = sorted(set(labels) - set(self.type_names))
        if missing:
            msg = f"the count decoder has no types {missing}"
            raise ValueError(msg)
        codes = torch.as_tensor([self.type_names.index(t) for t in labels], dtype=torch.int64)
        rho = self.net.rho(torch.as_tensor(z, dtype=torch.float32), codes).double().numpy()
        return rho * np.asarray(lib, np.float64)[:, None], self.net.log_theta[codes].exp().double().numpy()

    def sample(self, z: np.ndarray, labels, lib: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Counts for model-space cells ``z`` of types ``labels`` with library sizes ``lib`` (Gamma–Poisson)."""
        mu, theta = self.params(z, labels, lib)
        return negative_binomial(mu, theta, rng).astype(np.float32)

    # ---- state ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"nb.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}

    def meta(self) -> dict:
        out = {"type_names": list(self.type_names), "n_features": self.n_features, "n_genes": self.n_genes,
               "hidden": int(self.net.mlp[0].out_features)}
        if self.genes is not None:  # older saved models have no "n_model": every gene in the network
            out["n_model"] = len(self.genes)
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict) -> NBDecoder:
        dec = cls(meta["n_features"], meta["n_genes"])
        dec.type_names = list(meta["type_names"])
        weights = {k[3:]: v for k, v in state.items() if k.startswith("nb.")}
        shape = (dec.n_features, dec.n_genes, len(dec.type_names), meta.get("hidden", 128), meta.get("n_model"))
        check_shapes(lambda: _Net(*shape), weights, "the count decoder")  # before allocating it
        with torch.random.fork_rng():  # the init is overwritten below: leave the user's RNG as it was
            dec.net = _Net(*shape)
        dec.net.load_state_dict(weights)
        if dec.net.split:
            genes, rest = dec.net.genes.numpy(), dec.net.rest.numpy()
            if not np.array_equal(np.sort(np.concatenate([genes, rest])), np.arange(dec.n_genes)):
                msg = "the count decoder's model genes and other genes do not partition its genes"
                raise ValueError(msg)
            dec.genes = genes.copy()
        return dec


class _Rows:
    """The non-zeros of a batch of CSR rows as flat positions in a (batch × outputs) matrix whose columns are the
    network's outputs (``order``: the gene of each output; ``None``: the genes' order), and their values. The
    matrix itself is never made: the dense step densified 128 × 20,000 values a step (and first a column-permuted
    copy of all the counts; the outputs' columns here, ``cols``, are 4 bytes a non-zero, and only with a split)."""

    def __init__(self, counts: sparse.csr_matrix, order: np.ndarray | None):
        self.indptr, self.data, self.n_out = counts.indptr, counts.data, counts.shape[1]
        self.cols = counts.indices
        if order is not None:
            self.cols = _gene_to_output(order)[counts.indices]
        self.sums = np.asarray(counts.sum(1), np.float64).ravel()  # Σ_g x_g of each cell

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat positions (row-major), values (float32) and each row's total (float32) of rows ``idx``."""
        start, stop = self.indptr[idx].tolist(), self.indptr[idx + 1].tolist()
        cols = np.concatenate([self.cols[a:b] for a, b in zip(start, stop, strict=True)])
        values = np.concatenate([self.data[a:b] for a, b in zip(start, stop, strict=True)])
        kind = np.int32 if len(idx) * self.n_out < 2**31 else np.int64
        flat = np.repeat(np.arange(len(idx), dtype=kind) * self.n_out, np.subtract(stop, start)) + cols.astype(kind)
        return (torch.from_numpy(flat), torch.from_numpy(values.astype(np.float32, copy=False)),
                torch.from_numpy(self.sums[idx].astype(np.float32)))


class _PoissonNLL(torch.autograd.Function):
    """The output layers and the loss of a training step in one: the mean over the batch of each cell's Poisson
    negative log-likelihood (without log x!), Σ_g lib·ρ_g − x_g·log ρ_g, with ρ = softmax(logits) and logits
    ``h @ weight.T + bias`` (the model genes; all genes without a split) and ``r @ rest_weight.T + rest_bias``
    (the others), plus ``type_bias[codes]``; from the non-zeros of x only.

    Σ_g ρ_g = 1, so the first term is lib, a constant (its gradient, lib·ρ·(1 − Σρ), is 0); and
    log ρ_g = logit_g − logsumexp(logits), so the second is −Σ_g x_g·logit_g + (Σ_g x_g)·logsumexp: a sum over the
    non-zeros and one logsumexp per cell. The gradient in the logits is ((Σx)·ρ − x) / n, as the dense form's
    through log_softmax. One dense (batch × genes) buffer holds the logits (the output biases folded into the type
    bias, the products added in place), another ρ and then the gradient; the output biases' gradients are the
    type bias's summed over the types."""

    @staticmethod
    def forward(ctx, h, r, weight, bias, rest_weight, rest_bias, type_bias, codes, flat, values, sums, lib):
        n_model, n = weight.shape[0], len(h)
        shifted = type_bias.clone()
        shifted[:, :n_model] += bias
        if r is not None:
            shifted[:, n_model:] += rest_bias
        logits = shifted.index_select(0, codes)
        logits[:, :n_model].addmm_(h, weight.T)
        if r is not None:
            logits[:, n_model:].addmm_(r, rest_weight.T)
        dot = torch.dot(logits.view(-1).index_select(0, flat), values)  # Σ x·logit over the non-zeros
        rho = torch.softmax(logits, 1)
        lse = logits.amax(1) - rho.amax(1).log()  # the largest ρ is exp(max − logsumexp)
        ctx.save_for_backward(h, r, weight, rest_weight, codes, flat, values, sums, rho)
        ctx.n_types = len(type_bias)
        return (lib.sum() - dot + torch.dot(sums, lse)) / n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        h, r, weight, rest_weight, codes, flat, values, sums, rho = ctx.saved_tensors
        n_model, n = weight.shape[0], len(h)
        g = rho.mul_((grad * sums / n)[:, None])  # ρ is this step's own: it becomes the gradient in the logits
        g.view(-1).index_add_(0, flat, values * (-grad / n))
        need = ctx.needs_input_grad
        d_type = g.new_zeros(ctx.n_types, g.shape[1]).index_add_(0, codes, g)
        d_bias = d_type[:, :n_model].sum(0) if need[3] else None
        d_rest_bias = d_type[:, n_model:].sum(0) if need[5] else None
        gm, gr = g[:, :n_model], g[:, n_model:]
        return (gm @ weight if need[0] else None, gr @ rest_weight if need[1] else None,
                gm.T @ h if need[2] else None, d_bias, gr.T @ r if need[4] else None, d_rest_bias,
                d_type if need[6] else None, None, None, None, None, None)


def _gene_to_output(order: np.ndarray) -> np.ndarray:
    """The network output of each gene: the inverse of ``order`` (the gene of each output)."""
    column = np.empty(len(order), np.int32)
    column[order] = np.arange(len(order), dtype=np.int32)
    return column


def _step_loss(net: _Net, z: torch.Tensor, codes: torch.Tensor, batch, lib: torch.Tensor) -> torch.Tensor:
    """:class:`_PoissonNLL` of the network for cells ``z`` of types ``codes`` (``batch``: :class:`_Rows`'s)."""
    h = net.mlp[1](net.mlp[0](z))
    out = net.mlp[2]
    if not net.split:
        return _PoissonNLL.apply(h, None, out.weight, out.bias, None, None, net.type_bias, codes, *batch, lib)
    rank, rest = net.rest_out
    return _PoissonNLL.apply(h, rank(h), out.weight, out.bias, rest.weight, rest.bias, net.type_bias, codes,
                             *batch, lib)


def _adam(groups: list[dict]) -> torch.optim.Adam:
    """Adam at ``LR``, fused (one pass over each parameter a step; a third of the unfused update's time at 20,000
    genes) where this torch has it on the CPU (2.4 and later), else the same update unfused."""
    try:
        return torch.optim.Adam(groups, lr=LR, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(groups, lr=LR)


def _csr(counts) -> sparse.csr_matrix:
    return counts.tocsr() if sparse.issparse(counts) else sparse.csr_matrix(np.asarray(counts, np.float32))
