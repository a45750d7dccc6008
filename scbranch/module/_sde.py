"""Variance-preserving SDE (Song et al. 2021) with a linear β schedule.

Forward: dx = -½ β(t) x dt + √β(t) dW,  t ∈ [0, 1].
Marginal: x_t = α(t) x_0 + σ(t) ε,  α(t) = exp(-½ ∫₀ᵗ β),  σ(t)² = 1 - α(t)².

Pure torch, no state beyond the two β end points, so it is cheap to rebuild from a saved config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class VPSDE:
    """Linear-β VP SDE; ``beta_min``/``beta_max`` are β(0) and β(1)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not 0 < self.beta_min < self.beta_max:
            msg = f"need 0 < beta_min < beta_max, got beta_min={self.beta_min}, beta_max={self.beta_max}"
            raise ValueError(msg)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        # -½ ∫₀ᵗ β(s) ds for the linear schedule
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_a = self.log_alpha(t)
        alpha = log_a.exp()
        # expm1 keeps σ accurate for tiny t, where 1 - α² cancels catastrophically
        sigma = (-torch.expm1(2 * log_a)).clamp_min(1e-12).sqrt()
        return alpha, sigma

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """λ(t) = log(α/σ), the half log signal-to-noise ratio; decreasing in t."""
        alpha, sigma = self.alpha_sigma(t)
        return alpha.log() - sigma.log()

    def t_of_log_snr(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`log_snr` (closed form for the linear schedule)."""
        log_alpha = -0.5 * torch.nn.functional.softplus(-2 * lam)  # log α = -½ log(1 + e^{-2λ})
        delta = self.beta_max - self.beta_min
        return (-self.beta_min + (self.beta_min**2 - 4 * delta * log_alpha).sqrt()) / delta

    def marginal(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise ``x0`` (n, d) to times ``t`` (n,) with given ``noise``; returns x_t, α, σ as (n, 1) columns."""
        alpha, sigma = self.alpha_sigma(t)
        alpha, sigma = alpha[:, None], sigma[:, None]
        return alpha * x0 + sigma * noise, alpha, sigma

    def to_dict(self) -> dict:
        return asdict(self)
