"""A noise-level-conditioned type classifier p(type | x_t, t), trained on the noised cells the score net sees.

Two uses: at a branch point the tree walk hands each child the shared rows that belong to it (importance
resampling with weights p(child | x_t) / π(child), so a child starts from its own marginal instead of the
mixture; see :func:`scbranch.sampling.sample_tree`), and a per-cell diagnostic (``sb.tl.score_types``): each
cell's type probabilities and the diffusion time at which its type becomes certain.

A network of its own, not a head on the score net's trunk: training the score network stays exactly as it was,
and a classifier can be added to a model that is already trained. It is trained with every type equally
likely (class-balanced), so its logits are log-likelihoods up to one constant per (x, t); any mixture's
posterior follows by adding log mixture weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ._network import FourierTimeEmbedding
from ._sde import T_EPS, VPSDE


class NoisyTypeClassifier(nn.Module):
    """``net(x_t, t) -> logits`` (n, n_types): an MLP on the cell and a time embedding."""

    def __init__(self, n_features: int, n_types: int, *, width: int = 128, n_layers: int = 2):
        super().__init__()
        self.time_emb = FourierTimeEmbedding(width)
        self.inp = nn.Linear(n_features, width)
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(n_layers)])
        self.out = nn.Linear(width, n_types)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        h = self.inp(x) + self.time_emb(t)
        for layer in self.layers:
            h = h + layer(nn.functional.silu(h))
        return self.out(nn.functional.silu(h))


def train_classifier(net: NoisyTypeClassifier, sde: VPSDE, x: torch.Tensor, y: torch.Tensor, *, steps: int = 1500,
                     batch_size: int = 256, lr: float = 2e-3, generator: torch.Generator | None = None) -> list[float]:
    """Cross-entropy on (α(t) x + σ(t) ε, type) with t ~ U(T_EPS, 1) and types drawn equally often.

    Returns the loss per 100 steps. Plain torch: a small network trained for a few seconds.
    """
    n_types = net.out.out_features
    counts = torch.bincount(y, minlength=n_types).double()
    weights = (1.0 / counts.clamp_min(1))[y]  # every type equally often
    cdf = torch.cumsum(weights, 0)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    net.train()
    losses, running = [], 0.0
    for step in range(steps):
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64) * cdf[-1]
        idx = torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)
        t = torch.rand(batch_size, generator=generator) * (1 - T_EPS) + T_EPS
        xt, _, _ = sde.marginal(x[idx], t, torch.randn(x[idx].shape, generator=generator))
        loss = nn.functional.cross_entropy(net(xt, t), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(running / 100)
            running = 0.0
    net.eval()
    return losses


@torch.no_grad()
def mixture_weights(net: NoisyTypeClassifier, x: torch.Tensor, t: float, child: list[int], parent: list[int],
                    log_prior: torch.Tensor) -> torch.Tensor:
    """Importance weights p_child(x) / p_parent(x) of rows ``x`` drawn from the parent's mixture at time ``t``.

    ``child`` ⊂ ``parent`` are type codes; ``log_prior`` (n_types,) the log mixture weights the score net was
    trained with. Each mixture is normalized over its own types, so the weights have mean ≈ 1 under the parent.
    """
    logits = net(x, torch.tensor(float(t))) + log_prior
    log_child = torch.logsumexp(logits[:, child], 1) - torch.logsumexp(log_prior[child], 0)
    log_parent = torch.logsumexp(logits[:, parent], 1) - torch.logsumexp(log_prior[parent], 0)
    return torch.exp(log_child - log_parent)
