"""Variance-preserving SDEs: the standard one (Song et al. 2021) and a component-wise one (GUD-style).

Forward: dx = -½ β(t) x dt + √β(t) dW,  t ∈ [0, 1].
Marginal: x_t = α(t) x_0 + σ(t) ε,  α(t) = exp(-½ ∫₀ᵗ β),  σ(t)² = 1 - α(t)².

Samplers and the branch-time test only use ``alpha_sigma``, ``beta``, ``log_snr`` and ``midpoint``; in the
component-wise SDE these return one value per feature, which broadcasts against cells × features, so every
sampler works with both without knowing which it got. Pure torch, frozen dataclasses: cheap to rebuild from a
saved config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

BETA_MIN, BETA_MAX = 0.1, 20.0  # the noise schedule β(0), β(1): the defaults of every schedule built here

T_EPS = 1e-3  # smallest diffusion time trained and sampled: σ(T_EPS) ≈ 0.01, below any cell-to-cell spread


@dataclass(frozen=True)
class VPSDE:
    """Linear-β VP SDE; ``beta_min``/``beta_max`` are β(0) and β(1)."""

    beta_min: float = BETA_MIN
    beta_max: float = BETA_MAX

    def __post_init__(self):
        if not 0 < self.beta_min < self.beta_max:
            msg = f"need 0 < beta_min < beta_max, got beta_min={self.beta_min}, beta_max={self.beta_max}"
            raise ValueError(msg)

    # -- the scalar schedule (shared by both SDEs) ------------------------------------------------------
    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_a = -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)  # -½ ∫₀ᵗ β
        # expm1 keeps σ accurate for tiny t, where 1 - α² cancels catastrophically
        return log_a.exp(), (-torch.expm1(2 * log_a)).clamp_min(1e-12).sqrt()

    def _log_snr(self, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = self._alpha_sigma(t)
        return alpha.log() - sigma.log()

    def t_of_log_snr(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of the scalar λ(t) = log(α/σ) (closed form for the linear schedule)."""
        log_alpha = -0.5 * torch.nn.functional.softplus(-2 * lam)  # log α = -½ log(1 + e^{-2λ})
        delta = self.beta_max - self.beta_min
        return (-self.beta_min + (self.beta_min**2 - 4 * delta * log_alpha).sqrt()) / delta

    def midpoint(self, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
        """The time halfway between ``t`` and ``t_next`` in scalar log-SNR (DPM-Solver-2's midpoint)."""
        return self.t_of_log_snr((self._log_snr(t) + self._log_snr(t_next)) / 2)

    # -- what samplers and the loss use: per feature in subclasses --------------------------------------
    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self._beta(t)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._alpha_sigma(t)

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """λ(t) = log(α/σ), the half log signal-to-noise ratio; decreasing in t."""
        return self._log_snr(t)

    def marginal(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise ``x0`` (n, d) to times ``t`` (n,) with given ``noise``; returns x_t, α, σ (broadcastable)."""
        alpha, sigma = self.alpha_sigma(t)
        if alpha.ndim == 1:
            alpha, sigma = alpha[:, None], sigma[:, None]
        return alpha * x0 + sigma * noise, alpha, sigma

    def active(self, t: torch.Tensor) -> torch.Tensor | None:
        """Which features are being noised at ``t`` (``None``: all of them, always)."""
        return None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ComponentwiseVPSDE(VPSDE):
    """Each feature diffuses on its own clock (GUD, Gerdes et al. 2024): coarse-to-fine over PCA components.

    Feature i runs the full scalar schedule inside its own window of diffusion time, of width
    w = softness / (1 + softness), placed by ``order[i]`` ∈ [0, 1] (0 = highest variance): the highest-variance
    component is noised last going forward, so it is generated *first* in reverse, and finer components follow.
    softness → ∞ gives w = 1 (all windows [0, 1]: standard diffusion); softness → 0 gives disjoint windows
    (one component at a time: autoregressive over components). Before its window a feature is clean (τ = T_EPS),
    after it pure noise (τ = 1); in between τ_i(t) is linear in t, so β_i(t) = β(τ_i)·dτ_i/dt.
    """

    softness: float = math.inf
    order: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        super().__post_init__()
        if not self.softness > 0:
            msg = f"softness must be > 0 (inf = standard diffusion), got {self.softness}"
            raise ValueError(msg)
        if not all(0.0 <= u <= 1.0 for u in self.order):
            msg = "order must lie in [0, 1] (0 = first generated)"
            raise ValueError(msg)

    @property
    def width(self) -> float:
        return 1.0 if math.isinf(self.softness) else self.softness / (1.0 + self.softness)

    def _window(self, t: torch.Tensor) -> torch.Tensor:
        """r_i(t) ∈ [0, 1]: how far feature i is through its window; shape t.shape + (d,)."""
        w = self.width
        start = (1.0 - torch.tensor(self.order, dtype=t.dtype, device=t.device)) * (1.0 - w)
        s = (t[..., None] - T_EPS) / (1.0 - T_EPS)
        return ((s - start) / w).clamp(0.0, 1.0)

    def _tau(self, t: torch.Tensor) -> torch.Tensor:
        return T_EPS + (1.0 - T_EPS) * self._window(t)

    def active(self, t: torch.Tensor) -> torch.Tensor:
        r = self._window(t)
        return (r > 0) & (r < 1)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self._beta(self._tau(t)) * self.active(t) / self.width

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._alpha_sigma(self._tau(t))

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        return self._log_snr(self._tau(t))


def make_sde(beta_min: float = BETA_MIN, beta_max: float = BETA_MAX, *, softness: float | None = None,
             variances=None) -> VPSDE:
    """The standard VP SDE, or (``softness`` given) the component-wise one ordered by ``variances``."""
    if softness is None or math.isinf(softness):
        return VPSDE(beta_min, beta_max)
    if variances is None:
        msg = "a component-wise schedule needs the features' variances to order them"
        raise ValueError(msg)
    # numpy, not torch: the network may be built on the meta device (load checks shapes first), where a tensor
    # has no values to rank
    rank = np.argsort(np.argsort(-np.asarray(variances, dtype=np.float64), kind="stable"), kind="stable")
    order = tuple(float(r) / max(len(rank) - 1, 1) for r in rank)
    return ComponentwiseVPSDE(beta_min, beta_max, softness=float(softness), order=order)
