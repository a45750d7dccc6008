"""The model's noisy type classifier: training it, resampling rows at branch points, per-cell type scores.

See :mod:`scbranch.module._classifier` for the network and why it is separate from the score network.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from ..module import T_EPS
from ..module._classifier import NoisyTypeClassifier, mixture_weights, train_classifier
from ..module._shapes import check_shapes

CLASSIFIER_STEPS = 1000


def fit_type_classifier(model, z: np.ndarray, labels: np.ndarray, *, steps: int = CLASSIFIER_STEPS,
                        balance: float = 0.5, random_state: int = 0) -> list[float]:
    """Train ``model.classifier`` on model-space cells; store the training mixture weights the score net saw
    (a type with n cells is drawn ∝ n^(1 - balance), see ``train_module``) as ``config["type_weights"]``."""
    codes = pd.Categorical(labels, categories=model.types).codes
    counts = np.bincount(codes, minlength=len(model.types)).astype(float)
    weights = counts ** (1 - balance)
    model.config["type_weights"] = (weights / weights.sum()).tolist()
    with torch.random.fork_rng():
        torch.manual_seed(int(random_state))
        net = NoisyTypeClassifier(z.shape[1], len(model.types))
        gen = torch.Generator().manual_seed(int(random_state) + 1)
        losses = train_classifier(net, model.module.sde, torch.as_tensor(z, dtype=torch.float32),
                                  torch.as_tensor(np.array(codes), dtype=torch.long), steps=steps, generator=gen)
    model.classifier = net
    model.config["classifier"] = {"types": list(model.types), "steps": steps}
    model.config["branch_ess"] = branch_ess(model, z, labels, random_state=random_state)
    return losses


def load_type_classifier(model, state: dict | None) -> None:
    spec = model.config.get("classifier")
    if not spec or state is None:
        model.classifier = None
        return
    n_features, n_types = model.representation.n_features, len(spec["types"])
    check_shapes(lambda: NoisyTypeClassifier(n_features, n_types), state, "the type classifier")
    net = NoisyTypeClassifier(n_features, n_types)
    net.load_state_dict(state)
    model.classifier = net.eval()


def branch_types(model) -> dict[int, list[int]]:
    """Per branch, the classifier's codes of the types below it that the classifier knows (types added later
    without their data are not known: they are not resampled, and the old types' draws stay as they were)."""
    index = {t: i for i, t in enumerate(model.config["classifier"]["types"])}
    return {int(b): [index[t] for t in tys if t in index]
            for b, tys in zip(model.branches["branch"], model.branches["cell_types"])}


def log_prior(model) -> torch.Tensor:
    """log π(type): the training mixture the score net (and the classifier) saw."""
    return torch.log(torch.as_tensor(model.config["type_weights"], dtype=torch.float32))


@torch.no_grad()
def type_probabilities(model, z) -> torch.Tensor:
    """p(type | cell) at t = T_EPS under the training mixture, (n, classifier types)."""
    x = torch.as_tensor(z, dtype=torch.float32)
    return torch.softmax(model.classifier(x, torch.tensor(T_EPS)) + log_prior(model), 1)


def _resampled(below: dict[int, list[int]], child: int, parent: int) -> bool:
    """Whether a child's rows are resampled at its branch point: it holds known types, and not all of its
    parent's (a branch continuing its parent's type set, or holding only types added later, keeps the rows)."""
    return bool(below[child]) and set(below[child]) != set(below[parent])


def make_resampler(model):
    """``resample(x, t, child, parent, n, generator)`` for :func:`~scbranch.sampling.sample_tree`: ``n`` rows
    of the parent's ``x`` drawn ∝ p_child(x_t) / p_parent(x_t) (classifier posterior ratio) by systematic
    resampling, or ``None`` (keep the first rows, draw nothing) where that ratio is 1 or unknown."""
    below = branch_types(model)
    prior = log_prior(model)

    def resample(x, t, child, parent, n, generator):
        if not _resampled(below, child, parent):
            return None
        w = mixture_weights(model.classifier, x, t, below[child], below[parent], prior)
        if not torch.isfinite(w).all() or w.sum() <= 0:
            return None
        return systematic_resample(w, n, generator)

    return resample


def systematic_resample(w: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` row indices ∝ weights ``w`` by systematic resampling: one uniform offset, ``n`` evenly spaced points
    on the weights' CDF. Row i is drawn ⌊n w̄_i⌋ or ⌈n w̄_i⌉ times (w̄ = w / Σw), so equal weights keep every row
    once, where a multinomial draw would keep only ~63 % of them and duplicate the rest."""
    cdf = torch.cumsum(w.double() / w.double().sum(), 0)
    u = (torch.rand(1, generator=generator, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)) / n
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(w) - 1)


@torch.no_grad()
def branch_ess(model, z: np.ndarray, labels: np.ndarray, *, n_noise: int = 4, max_cells: int = 2000,
               random_state: int = 0) -> dict[str, float]:
    """Per branch that starts at a branch point, keyed by its node (branch ids change when a type is added;
    node names do not): the effective fraction of its parent's rows it keeps when
    resampling, (E w)² / E w² with w = p_child / p_parent, over the parent's training cells noised to the branch
    point (cells weighted to the training mixture). ≈ 1 where the children still overlap there, → the child's
    share of the mixture where they are apart. :func:`~scbranch.sampling.sample_tree` sizes branches by it."""
    codes = np.asarray(pd.Categorical(labels, categories=model.config["classifier"]["types"]).codes)
    below, prior = branch_types(model), log_prior(model)
    mix = prior.exp().numpy() / np.maximum(np.bincount(codes[codes >= 0], minlength=len(prior)), 1)
    paths, bounds, _ = model.walk_layout()
    edges = {(p, c) for path in paths.values() for p, c in itertools.pairwise(path)}
    node_of = dict(zip(model.branches["branch"].astype(int), model.branches["node"], strict=True))
    gen = torch.Generator().manual_seed(int(random_state))
    rng = np.random.default_rng(random_state)
    out = {}
    for parent, child in sorted(edges):
        if not _resampled(below, child, parent):
            continue
        rows = np.flatnonzero(np.isin(codes, below[parent]))
        rows = rng.choice(rows, min(len(rows), max_cells), replace=False)
        x0 = torch.as_tensor(z[rows], dtype=torch.float32).repeat(n_noise, 1)
        cell_w = torch.as_tensor(mix[codes[rows]], dtype=torch.float64).repeat(n_noise)
        t = torch.tensor(float(bounds[child][1]))  # (t_start, t_end): the child begins at its upper end
        xt, _, _ = model.module.sde.marginal(x0, t.expand(len(x0)), torch.randn(x0.shape, generator=gen))
        w = mixture_weights(model.classifier, xt, float(t), below[child], below[parent], prior).double()
        out[str(node_of[child])] = float(min((cell_w * w).sum() ** 2 / (cell_w.sum() * (cell_w * w**2).sum()), 1.0))
    return out


@torch.no_grad()
def type_scores(model, z: np.ndarray, *, n_times: int = 50, n_noise: int = 8, threshold: float = 0.9,
                random_state: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: type probabilities at t = T_EPS under the training mixture (n, n_types); probability of its
    most likely type at each of ``n_times`` diffusion times (averaged over ``n_noise`` noise draws); and the
    largest time at which that probability is ≥ ``threshold`` (where, walking the reverse process down, the
    cell's type becomes certain; NaN if it never does)."""
    net, prior = model.classifier, log_prior(model)
    x = torch.as_tensor(z, dtype=torch.float32)
    probs = type_probabilities(model, x)
    top = probs.argmax(1)
    times = torch.linspace(T_EPS, 1.0, n_times)
    gen = torch.Generator().manual_seed(int(random_state))
    curve = torch.zeros(len(x), n_times)
    for j, t in enumerate(times):
        for _ in range(n_noise):
            xt, _, _ = model.module.sde.marginal(x, t.expand(len(x)), torch.randn(x.shape, generator=gen))
            p = torch.softmax(net(xt, t) + prior, 1)
            curve[:, j] += p[torch.arange(len(x)), top] / n_noise
    certain = curve.numpy() >= threshold
    # the largest t such that every t' ≤ t is certain: the first uncertain time from the bottom, minus one step
    first_bad = np.where(certain.all(1), n_times, np.argmin(certain, axis=1))
    t_np = times.numpy()
    certain_time = np.where(first_bad > 0, t_np[np.maximum(first_bad - 1, 0)], np.nan)
    return probs.numpy(), curve.numpy(), certain_time
