"""Score network: one shared residual-MLP trunk, a time embedding, and one output head per branch.

Why both a branch embedding *and* per-branch heads: the embedding (added to the time embedding and fed to
every block through FiLM) lets the trunk compute branch-specific nonlinear features, which a linear head on
branch-agnostic features could not; the per-branch heads give every branch parameters of its own, so a new
cell type can be added later by training new embeddings+heads with the trunk and old heads frozen, which
leaves the old types' scores bit-for-bit unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# the score network's defaults, defined here once (ModelConfig and the module take them): a trunk of N_BLOCKS
# residual blocks of WIDTH units
WIDTH, N_BLOCKS, DROPOUT = 128, 3, 0.0


class FourierTimeEmbedding(nn.Module):
    """Sinusoidal features of t ∈ [0, 1] at geometrically spaced frequencies, then a small MLP."""

    def __init__(self, width: int, n_freqs: int = 32, max_freq: float = 1000.0):
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), n_freqs))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freqs, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([arg.sin(), arg.cos()], dim=-1))


class ResBlock(nn.Module):
    """Pre-norm residual MLP block, modulated by the (time + branch) conditioning vector via FiLM."""

    def __init__(self, width: int, expansion: int = 2, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(width, 2 * width)
        self.fc1 = nn.Linear(width, expansion * width)
        self.fc2 = nn.Linear(expansion * width, width)
        # start as the identity map: stabler early training of deep residual stacks
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        y = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(self.dropout(nn.functional.silu(self.fc1(y))))


class BranchedScoreNet(nn.Module):
    """ε-prediction network ``net(x, t, branch) -> ε̂`` with shape (n, n_features).

    ``branch`` is either an int (all rows in one branch: the sampler's fast path) or a long tensor (n,).

    Branch parameters (an embedding vector and a linear head per branch) live in *blocks*: one tensor per block
    for all its branches, one block at construction and one more per :meth:`add_branches` call. A mixed batch
    gathers each row's head with one ``index_select`` and applies it with one batched matmul, so a step costs the
    same whatever the number of branches (one small matmul per branch present cost ~60 % of a step at 10 types
    and grew with the types). Training some branches only (continual learning) trains whole blocks: new
    branches are always added as a new block, so older blocks can stay frozen, bit for bit.
    """

    def __init__(self, n_features: int, n_branches: int | list[int], *, width: int = WIDTH, n_blocks: int = N_BLOCKS,
                 dropout: float = DROPOUT, n_conditions: list[int] | None = None):
        super().__init__()
        self.n_features, self.width = n_features, width
        # covariates (donor, batch, …): one embedding table per key, added to the conditioning like the branch;
        # the last row of each is "not given" (trained by condition dropout), so a condition can be left out
        self.n_conditions = list(n_conditions or [])
        self.cond_emb = nn.ModuleList([nn.Embedding(n + 1, width) for n in self.n_conditions])
        for emb in self.cond_emb:
            nn.init.normal_(emb.weight, std=0.02)
        self.inp = nn.Linear(n_features, width)
        self.time_emb = FourierTimeEmbedding(width)
        self.blocks = nn.ModuleList([ResBlock(width, dropout=dropout) for _ in range(n_blocks)])
        self.branch_emb = nn.ParameterList()
        self.head_weight = nn.ParameterList()  # (branches, width, n_features) per block
        self.head_bias = nn.ParameterList()
        for size in [n_branches] if isinstance(n_branches, int) else n_branches:
            self._append_block(*self._fresh(int(size)))

    @property
    def block_sizes(self) -> list[int]:
        return [int(e.shape[0]) for e in self.branch_emb]

    @property
    def n_branches(self) -> int:
        return sum(self.block_sizes)

    def _fresh(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (0.02 * torch.randn(n, self.width), 1e-3 * torch.randn(n, self.width, self.n_features),
                torch.zeros(n, self.n_features))

    def _append_block(self, emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.branch_emb.append(nn.Parameter(emb))
        self.head_weight.append(nn.Parameter(weight))
        self.head_bias.append(nn.Parameter(bias))

    def _all(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every branch's embedding, head weight and bias (one tensor each; a copy only with several blocks)."""
        if len(self.branch_emb) == 1:
            return self.branch_emb[0], self.head_weight[0], self.head_bias[0]
        return tuple(torch.cat(list(p)) for p in (self.branch_emb, self.head_weight, self.head_bias))

    def add_branches(self, copy_from: list[int | None]) -> list[int]:
        """Append one block with a branch per entry: fresh (None) or a copy of branch ``i``; returns the new indices."""
        emb, weight, bias = self._fresh(len(copy_from))
        with torch.no_grad():
            all_emb, all_w, all_b = self._all()
            for j, src in enumerate(copy_from):
                if src is not None:
                    emb[j], weight[j], bias[j] = all_emb[src], all_w[src], all_b[src]
        first = self.n_branches
        self._append_block(emb.to(all_emb), weight.to(all_w), bias.to(all_b))
        return list(range(first, first + len(copy_from)))

    def branch_parameters(self, branches: list[int]) -> list[nn.Parameter]:
        """The parameters of exactly these branches: whole blocks (branches are trained block by block)."""
        wanted, out, start = set(branches), [], 0
        for k, size in enumerate(self.block_sizes):
            ids = set(range(start, start + size))
            if ids & wanted:
                if not ids <= wanted:
                    msg = f"branches {sorted(wanted)} cover only part of block {k} ({sorted(ids)})"
                    raise ValueError(msg)
                out += [self.branch_emb[k], self.head_weight[k], self.head_bias[k]]
            start += size
        return out

    def null_condition(self) -> torch.Tensor:
        """The codes of "no condition given" for every key (K,)."""
        return torch.as_tensor(self.n_conditions, dtype=torch.long)

    def _condition(self, condition: torch.Tensor | None) -> torch.Tensor | int:
        """Summed covariate embeddings: (width,) for one condition for all rows, (n, width) per row; 0 if none."""
        if not self.cond_emb:
            return 0
        c = self.null_condition().to(self.inp.weight.device) if condition is None else condition
        return sum(emb(c[..., k]) for k, emb in enumerate(self.cond_emb))

    def forward(self, x: torch.Tensor, t: torch.Tensor, branch: int | torch.Tensor,
                condition: torch.Tensor | None = None) -> torch.Tensor:
        """``condition``: covariate codes, (K,) for every row or (n, K) per row; ``None``: not given."""
        emb_all, w_all, b_all = self._all()
        scalar_branch = isinstance(branch, int)
        c = self._condition(condition)
        shared_c = not torch.is_tensor(c) or c.ndim == 1
        if scalar_branch and shared_c and (t.ndim == 0 or (t.numel() > 0 and bool((t == t[0]).all()))):
            # the sampler's case: every row shares t and branch, so the conditioning (time MLP and FiLM,
            # ~40 % of the per-row work) is computed for one row and broadcast
            cond = nn.functional.silu(self.time_emb(t.reshape(-1)[:1]) + emb_all[branch][None] + c)
        else:
            t = t.expand(x.shape[0]) if t.ndim == 0 else t
            emb = emb_all[branch].expand(x.shape[0], -1) if scalar_branch else emb_all.index_select(0, branch)
            cond = nn.functional.silu(self.time_emb(t) + emb + c)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        # heads read the residual stream directly: a final LayerNorm would erase the norm of x_t, and at high
        # noise the target ε ≈ x_t must keep it (a normalized output cannot represent that identity)
        if scalar_branch:
            return h @ w_all[branch] + b_all[branch]
        return torch.baddbmm(b_all.index_select(0, branch).unsqueeze(1), h.unsqueeze(1),
                             w_all.index_select(0, branch)).squeeze(1)


def upgrade_state_dict(state: dict) -> dict:
    """Per-branch parameters of models saved before blocks (``net.heads.{i}``, ``net.branch_emb.{i}``) → one block."""
    if "net.heads.0.weight" not in state:
        return state
    out = {k: v for k, v in state.items() if not k.startswith(("net.heads.", "net.branch_emb."))}
    n = len([k for k in state if k.startswith("net.branch_emb.")])
    out["net.branch_emb.0"] = torch.stack([state[f"net.branch_emb.{i}"] for i in range(n)])
    out["net.head_weight.0"] = torch.stack([state[f"net.heads.{i}.weight"].T for i in range(n)])
    out["net.head_bias.0"] = torch.stack([state[f"net.heads.{i}.bias"] for i in range(n)])
    return out
