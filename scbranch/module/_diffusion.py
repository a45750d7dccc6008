"""The pure-torch branched diffusion module: SDE + score network + the (type, t) -> branch lookup + the loss.

No AnnData here (scvi-tools' model/module split): it works on tensors of model-space cells and integer
type codes. The branch layout comes in as plain arrays so the module can be rebuilt from a saved config.
"""

from __future__ import annotations

import torch
from torch import nn

from ._network import DROPOUT, N_BLOCKS, WIDTH, BranchedScoreNet
from ._sde import BETA_MAX, BETA_MIN, T_EPS, VPSDE, make_sde


def branch_paths(type_paths: list[list[tuple[int, float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad each type's leaf-to-root path [(branch id, t_start), ...] into two (n_types, depth) tensors."""
    depth = max(len(p) for p in type_paths)
    t_lo = torch.full((len(type_paths), depth), float("inf"))
    ids = torch.full((len(type_paths), depth), -1, dtype=torch.long)
    for k, path in enumerate(type_paths):
        path = sorted(path, key=lambda bt: bt[1])
        if path[0][1] != 0.0:
            msg = f"the path of type {k} does not start at t=0: {path}"
            raise ValueError(msg)
        for j, (b, t) in enumerate(path):
            ids[k, j], t_lo[k, j] = b, t
    return t_lo, ids


class BranchedDiffusionModule(nn.Module):
    """ε-prediction VP diffusion whose network is conditioned on the branch that holds (t, type)."""

    def __init__(
        self,
        n_features: int,
        type_paths: list[list[tuple[int, float]]],
        *,
        n_branches: int | list[int],
        width: int = WIDTH,
        n_blocks: int = N_BLOCKS,
        dropout: float = DROPOUT,
        beta_min: float = BETA_MIN,
        beta_max: float = BETA_MAX,
        softness: float | None = None,
        variances=None,
        n_conditions: list[int] | None = None,
        condition_dropout: float = 0.15,
    ):
        super().__init__()
        self.sde: VPSDE = make_sde(beta_min, beta_max, softness=softness, variances=variances)
        self.net = BranchedScoreNet(n_features, n_branches, width=width, n_blocks=n_blocks, dropout=dropout,
                                    n_conditions=n_conditions)
        self.condition_dropout = condition_dropout
        self.set_paths(type_paths)

    def set_paths(self, type_paths: list[list[tuple[int, float]]]) -> None:
        """(Re)set each type's (branch, t_start) path, e.g. after a cell type was added."""
        t_lo, ids = branch_paths(type_paths)
        self.register_buffer("path_t_lo", t_lo, persistent=False)
        self.register_buffer("path_ids", ids, persistent=False)

    def branch_of(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Branch id for each (type code, time): the last branch on the type's path starting at or before t."""
        idx = (self.path_t_lo[y] <= t[:, None]).sum(1) - 1
        return self.path_ids[y, idx]

    def forward(self, x: torch.Tensor, t: torch.Tensor, branch: int | torch.Tensor,
                condition: torch.Tensor | None = None) -> torch.Tensor:
        """The sampler contract: predicted noise ε̂(x_t, t) under ``branch`` (and covariate codes, if any)."""
        return self.net(x, t, branch, condition)

    def loss(
        self, x0: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None, t=None, noise=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoising score matching (ε-parametrisation) per row; returns (loss per row, branch per row).

        ``y``: type codes (n,), or (n, 1 + K) with the covariate codes after the type. ``t`` and ``noise`` may be
        given (fixed validation draws); else they are drawn from ``generator``, and each covariate is replaced
        by "not given" with probability ``condition_dropout`` (so generation can leave it out).
        """
        n = x0.shape[0]
        condition = None
        if y.ndim == 2:
            y, condition = y[:, 0], y[:, 1:]
            if t is None and self.condition_dropout > 0:
                drop = torch.rand(condition.shape, generator=generator, device=x0.device) < self.condition_dropout
                condition = torch.where(drop, self.net.null_condition().to(condition.device), condition)
        if t is None:
            t = torch.rand(n, generator=generator, device=x0.device) * (1 - T_EPS) + T_EPS
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        xt, _, _ = self.sde.marginal(x0, t, noise)
        branch = self.branch_of(y, t)
        pred = self.net(xt, t, branch, condition)
        err = (pred - noise) ** 2
        active = self.sde.active(t)
        if active is None:
            return err.mean(dim=1), branch
        # component-wise schedule: a feature outside its window is frozen (clean or pure noise) and never
        # updated by a sampler, so its ε is not learned; average over the features being noised at t
        active = active.to(err.dtype)
        return (err * active).sum(1) / active.sum(1).clamp_min(1.0), branch


def make_module(config: dict) -> BranchedDiffusionModule:
    """Rebuild a module from the JSON-able config the model saves."""
    paths = [[(int(b), float(t)) for b, t in p] for p in config["type_paths"]]
    return BranchedDiffusionModule(
        config["n_features"],
        paths,
        n_branches=config["n_branches"],
        width=config["width"],
        n_blocks=config["n_blocks"],
        dropout=config.get("dropout", DROPOUT),
        beta_min=config["beta_min"],
        beta_max=config["beta_max"],
        softness=config.get("softness"),
        variances=config.get("variances"),
        n_conditions=config.get("n_conditions"),
    )
