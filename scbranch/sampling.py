"""Samplers (k-diffusion style: one short pure function each, one signature) and the branch-tree walk.

Every sampler is registered in one table (:data:`SAMPLERS`, :func:`register_sampler`: a new one is one function
and one registration) and has the signature ``sampler(model, x, ts, *, sde, extra_args=None, generator=None,
callback=None)`` and integrates the reverse process of ``sde`` from ``ts[0]`` down to ``ts[-1]`` (descending).
``model(x, t, **extra_args)`` predicts the noise ε; the branch is passed through ``extra_args`` — samplers know
nothing about trees. :func:`sample_tree` walks the branches from t=1 down: one batch per branch, split at each
branch point, so the steps upstream of a branch point are computed once for all the types below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

from ._progress import sampling_bar
from .module import T_EPS, VPSDE


def _eps(model, x, t, extra_args):
    return model(x, t.expand(x.shape[0]), **(extra_args or {}))


@torch.no_grad()
def sample_euler_maruyama(model, x, ts, *, sde: VPSDE, extra_args=None, generator=None, callback=None):
    """Reverse-SDE Euler–Maruyama: x ← x + [f - g²∇log p] dt + g √|dt| z; no noise on the step to T_EPS."""
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        beta, dt = sde.beta(t), t_next - t
        _, sigma = sde.alpha_sigma(t)
        score = -_eps(model, x, t, extra_args) / sigma
        x = x + (-0.5 * beta * x - beta * score) * dt
        if t_next > T_EPS * (1 + 1e-6):
            x = x + (beta * -dt).sqrt() * torch.randn(x.shape, generator=generator, device=x.device)
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


def _pf_ode_drift(model, x, t, sde, extra_args):
    # probability-flow ODE of the VP SDE: dx/dt = -½ β(t) (x - ε̂/σ(t))
    _, sigma = sde.alpha_sigma(t)
    return -0.5 * sde.beta(t) * (x - _eps(model, x, t, extra_args) / sigma)


@torch.no_grad()
def sample_heun(model, x, ts, *, sde: VPSDE, extra_args=None, generator=None, callback=None):
    """Probability-flow ODE with Heun's 2nd-order method (2 network evaluations per step)."""
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        d1 = _pf_ode_drift(model, x, t, sde, extra_args)
        x_euler = x + d1 * dt
        d2 = _pf_ode_drift(model, x_euler, t_next, sde, extra_args)
        x = x + 0.5 * (d1 + d2) * dt
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


@torch.no_grad()
def sample_ddim(model, x, ts, *, sde: VPSDE, extra_args=None, generator=None, callback=None):
    """Deterministic DDIM (η=0): the first-order exponential integrator of the probability-flow ODE."""
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        (a, s), (a_next, s_next) = sde.alpha_sigma(t), sde.alpha_sigma(t_next)
        eps = _eps(model, x, t, extra_args)
        x = a_next * (x - s * eps) / a + s_next * eps
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


@torch.no_grad()
def sample_dpm_solver_2(model, x, ts, *, sde: VPSDE, extra_args=None, generator=None, callback=None):
    """DPM-Solver-2 (Lu et al. 2022, single-step, midpoint in log-SNR): a second-order exponential
    integrator of the probability-flow ODE for VP SDEs; 2 network evaluations per step."""
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        s = sde.midpoint(t, t_next)
        # per-feature log-SNR steps (a component-wise SDE moves each feature by its own h; frozen ones by 0)
        lam, lam_s, lam_next = sde.log_snr(t), sde.log_snr(s), sde.log_snr(t_next)
        h, h_s = lam_next - lam, lam_s - lam
        (a, _), (a_s, sig_s), (a_next, sig_next) = sde.alpha_sigma(t), sde.alpha_sigma(s), sde.alpha_sigma(t_next)
        eps = _eps(model, x, t, extra_args)
        u = (a_s / a) * x - sig_s * torch.expm1(h_s) * eps
        eps_s = _eps(model, u, s, extra_args)
        x = (a_next / a) * x - sig_next * torch.expm1(h) * eps_s
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


@torch.no_grad()
def sample_pc(model, x, ts, *, sde: VPSDE, extra_args=None, generator=None, callback=None, snr: float = 0.16):
    """Predictor–corrector (Song et al. 2021): a reverse-SDE Euler–Maruyama step, then one Langevin
    corrector step at the new time with step size set by the target signal-to-noise ratio ``snr``."""
    for i in range(len(ts) - 1):
        t_next = ts[i + 1]
        x = sample_euler_maruyama(model, x, ts[i : i + 2], sde=sde, extra_args=extra_args, generator=generator)
        if t_next > T_EPS * (1 + 1e-6):
            _, sigma = sde.alpha_sigma(t_next)
            score = -_eps(model, x, t_next, extra_args) / sigma
            z = torch.randn(x.shape, generator=generator, device=x.device)
            active = sde.active(t_next)
            if active is not None:  # correct only the features being noised at t_next; the rest are frozen
                score, z = score * active, z * active
            step = 2 * (snr * z.norm(dim=1).mean() / score.norm(dim=1).mean().clamp_min(1e-8)) ** 2
            x = x + step * score + (2 * step).sqrt() * z
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x})
    return x


SAMPLERS: dict[str, Callable] = {}  # the one table: name → sampler, each with .evals_per_step and .default_steps


def register_sampler(name: str, sampler: Callable, *, evals_per_step: int, default_steps: int) -> Callable:
    """Make ``sampler`` (the signature above) available by ``name`` to ``generate``, ``transmute``, … and the CLI.

    ``evals_per_step``: network evaluations per step (reported as NFE); ``default_steps``: its steps when none are
    given. Returns the sampler, marked with both."""
    if not callable(sampler) or not isinstance(name, str) or not name:
        msg = f"register_sampler takes a name and a sampler function, got {name!r}, {sampler!r}"
        raise TypeError(msg)
    sampler.evals_per_step, sampler.default_steps = int(evals_per_step), int(default_steps)
    SAMPLERS[name] = sampler
    return sampler


# 50 network evaluations per trajectory for every sampler (benchmarks/schedules.py): at this budget the
# stochastic samplers (Euler–Maruyama, PC) matched 1,000-step Euler–Maruyama on MMD on both datasets, the
# deterministic ones only on the simulated tree; Euler–Maruyama was best overall, hence the default.
register_sampler("euler_maruyama", sample_euler_maruyama, evals_per_step=1, default_steps=50)
register_sampler("pc", sample_pc, evals_per_step=2, default_steps=25)
register_sampler("heun", sample_heun, evals_per_step=2, default_steps=25)
register_sampler("ddim", sample_ddim, evals_per_step=1, default_steps=50)
register_sampler("dpm_solver_2", sample_dpm_solver_2, evals_per_step=2, default_steps=25)
DEFAULT_SAMPLER = "euler_maruyama"


def get_sampler(name: str) -> Callable:
    """The sampler called ``name`` (with ``.evals_per_step`` and ``.default_steps``), or a clear error listing the
    choices."""
    if name not in SAMPLERS:
        msg = f"unknown sampler {name!r}; choose from {list(SAMPLERS)}"
        raise ValueError(msg)
    return SAMPLERS[name]


def get_times(n_steps: int, t_min: float = T_EPS, t_max: float = 1.0, *, spacing: str = "uniform",
              sde: VPSDE | None = None) -> torch.Tensor:
    """Descending time grid with ``n_steps`` steps: ``"uniform"`` in t, or ``"logsnr"`` (uniform in
    log-SNR λ, the spacing DPM-Solver uses: more steps at low noise, where cells take shape)."""
    if spacing == "uniform":
        return torch.linspace(t_max, t_min, n_steps + 1)
    if spacing == "logsnr":
        sde = VPSDE(sde.beta_min, sde.beta_max) if sde else VPSDE()  # the scalar schedule, also for GUD
        lam = torch.linspace(float(sde.log_snr(torch.tensor(t_max))), float(sde.log_snr(torch.tensor(t_min))),
                             n_steps + 1)
        ts = sde.t_of_log_snr(lam)
        ts[0], ts[-1] = t_max, t_min
        return ts
    msg = f"unknown spacing {spacing!r}; use 'uniform' or 'logsnr'"
    raise ValueError(msg)


class CountingModel:
    """Wraps a model to count network calls (NFE) and the cell states passed through it (``n_evals``)."""

    def __init__(self, model):
        self.model, self.nfe, self.n_evals = model, 0, 0

    def __call__(self, x, t, **kwargs):
        self.nfe += 1
        self.n_evals += x.shape[0]
        return self.model(x, t, **kwargs)


MIN_ESS = 0.02  # a child keeping less of its parent's rows still makes it carry at most 50× its need


def sample_tree(
    model,
    sampler: Callable,
    paths: Mapping[str, list[int]],
    bounds: Mapping[int, tuple[float, float]],
    n_per_type: Mapping[str, int],
    ts: torch.Tensor,
    *,
    sde: VPSDE,
    n_features: int,
    heads: Mapping[int, int] | None = None,
    generator: torch.Generator | None = None,
    progress=None,
    x_init: torch.Tensor | None = None,
    resample: Callable | None = None,
    ess: Mapping[int, float] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Generate cells of several types by walking their branches from t=1 down, sharing upstream steps.

    ``paths[type]`` lists the type's branch ids root first; ``bounds[b] = (t_start, t_end)``. Each branch runs
    the steps of ``ts`` inside its interval (boundaries snapped to the nearest grid point), passing the model
    ``branch=heads[b]`` (default: ``b``; several branches may share a head), on as many rows as
    its most demanding type needs; at a branch point every child takes the first rows it needs. Cells of one
    type stay independent; cells of *different* types may share an upstream state, which is harmless for
    per-type distributions and is exactly what saves work. ``x_init`` replaces the prior draw at ``ts[0]``.

    ``resample(x, t, child, parent, n, generator) -> row indices or None``, if given, picks the ``n`` rows a child
    branch starts from out of its parent's rows at the branch point ``t`` (``None``: the first ``n``), e.g.
    importance resampling by a noisy type classifier, so that the child starts from its own marginal rather than
    the parent's mixture. ``ess[b]`` (with ``resample``): the fraction of its parent's rows that branch ``b`` keeps
    as effective (distinct) rows after resampling, e.g. ≈ 1 where the children still overlap at the branch point,
    ≈ the child's share where they no longer do. The walk then sizes every branch so that each child's effective
    rows cover what it needs (a parent carries need × α² / ess rows, α² the signal fraction at the split; ess is
    floored at 2 %), instead of duplicating a few rows.

    ``progress``: ``True``/``False``/``None`` (scanpy's verbosity) for a bar of its own, shown only when the walk
    takes over half a second; or a tqdm bar of the caller's, which this walk extends and advances (one bar for a
    loop of walks).
    """
    counter = CountingModel(model)
    grid = ts.numpy()

    def steps_of(b: int) -> torch.Tensor:
        lo, hi = bounds[b]
        i_hi, i_lo = int(np.abs(grid - hi).argmin()), int(np.abs(grid - max(lo, grid[-1])).argmin())
        return ts[i_hi : i_lo + 1]

    types = [ty for ty, n in n_per_type.items() if n > 0]
    kept = ess if resample is not None and ess else {}

    def worth(c: int) -> float:
        """What a row duplicated at child ``c``'s branch point costs in diversity: the signal fraction α² there.
        Two copies of x_t end as two draws from p(x_0 | x_t), nearly independent where α² ≈ 0 (high noise),
        nearly identical where α² ≈ 1 (a late split), so only late splits need their full ESS in rows."""
        alpha, _ = sde.alpha_sigma(torch.tensor(float(bounds[c][1])))
        return float((alpha**2).mean())

    def split(tys: list[str], depth: int) -> tuple[list[str], dict[int, list[str]]]:
        """The types whose paths end at ``depth``, and the others grouped by their branch there."""
        ended, groups = [], {}
        for ty in tys:
            if depth == len(paths[ty]):
                ended.append(ty)
            else:
                groups.setdefault(paths[ty][depth], []).append(ty)
        return ended, groups

    size: dict[int, int] = {}  # rows each branch carries, set once before the walk

    def rows_of(b: int | None, tys: list[str], depth: int) -> int:
        """Rows branch ``b`` (the root when ``None``) carries for ``tys``, whose paths pass it at ``depth``."""
        ended, groups = split(tys, depth)
        own = [n_per_type[ty] for ty in ended]
        need = {c: rows_of(c, members, depth + 1) for c, members in groups.items()}
        if b is None:  # the prior draw: each root branch takes the rows it needs
            return max(need.values())
        size[b] = math.ceil(max(own + [n * max(1.0, worth(c) / max(kept.get(c, 1.0), MIN_ESS))
                                       for c, n in need.items()]))
        return size[b]

    n_root = rows_of(None, types, 0)
    total = sum(max(len(steps_of(b)) - 1, 0) for b in {b for ty in types for b in paths[ty]})
    own_bar = not hasattr(progress, "update")  # a bar of the caller's (several walks, one bar) or our own
    pbar = sampling_bar(total, progress) if own_bar else progress
    if not own_bar:
        pbar.total = (pbar.total or 0) + total
    out: dict[str, torch.Tensor] = {}

    def walk(x: torch.Tensor, tys: list[str], depth: int, parent: int | None):
        ended, groups = split(tys, depth)
        for ty in ended:
            out[ty] = x[: n_per_type[ty]]
        for b, members in groups.items():
            sub = steps_of(b)
            n = size[b]
            idx = resample(x, float(sub[0]), b, parent, n, generator) if resample and parent is not None else None
            xb = x[:n] if idx is None else x[idx]
            if len(sub) > 1:
                xb = sampler(
                    counter, xb, sub, sde=sde, extra_args={"branch": (heads or {}).get(b, b)}, generator=generator,
                    callback=lambda _: pbar.update(1),
                )
            walk(xb, members, depth + 1, b)

    if x_init is None:  # the prior at t=1; transmutation starts from noised cells at an earlier time instead
        x_init = torch.randn((n_root, n_features), generator=generator)
    walk(x_init, types, 0, None)
    if own_bar:
        pbar.close()
    return out, {"nfe": counter.nfe, "n_evals": counter.n_evals}
