"""The model's noisy type classifier: p(type | x_t, t) with its training mixture, what it measures at fit (how
much of a parent's rows each child keeps when resampling), per-cell type scores, and the resampler the tree walk
calls at branch points.

:class:`TypeClassifier` computes and returns; the model holds it (``model.classifier``) and saves it. See
:mod:`scbranch.module._classifier` for the network and why it is separate from the score network.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..module import T_EPS
from ..module._classifier import NoisyTypeClassifier, mixture_weights, train_classifier
from ..module._shapes import check_shapes

CLASSIFIER_STEPS = 1000


@dataclass
class TypeScores:
    """Per cell (rows) of :meth:`TypeClassifier.scores`: type probabilities at t ≈ 0 (columns: ``types``), the
    probability of its most likely type at each of ``times``, and the largest time up to which it stays certain
    (NaN: never)."""

    types: list[str]
    probabilities: np.ndarray  # (n, types)
    times: np.ndarray  # (n_times,)
    curve: np.ndarray  # (n, n_times)
    certain_time: np.ndarray  # (n,)


@dataclass
class TypeClassifier:
    """The network, the types it knows (types added later without their data are not among them), the training
    mixture π(type) the score network saw, and per branch point the fraction of rows a child keeps (``branch_ess``,
    keyed by node: branch ids change when a type is added, node names do not)."""

    net: NoisyTypeClassifier
    types: list[str]
    weights: list[float]
    steps: int = CLASSIFIER_STEPS
    branch_ess: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, z: np.ndarray, labels: np.ndarray, types: list[str], sde, *, steps: int = CLASSIFIER_STEPS,
            balance: float = 0.5, random_state: int = 0) -> TypeClassifier:
        """Train on model-space cells; the mixture weights are the score net's (a type with n cells is drawn
        ∝ n^(1 - balance), see ``train_module``)."""
        codes = pd.Categorical(labels, categories=types).codes
        counts = np.bincount(codes, minlength=len(types)).astype(float)
        weights = counts ** (1 - balance)
        with torch.random.fork_rng():
            torch.manual_seed(int(random_state))
            net = NoisyTypeClassifier(z.shape[1], len(types))
            gen = torch.Generator().manual_seed(int(random_state) + 1)
            train_classifier(net, sde, torch.as_tensor(z, dtype=torch.float32),
                             torch.as_tensor(np.array(codes), dtype=torch.long), steps=steps, generator=gen)
        return cls(net.eval(), list(types), (weights / weights.sum()).tolist(), steps)

    # ---- saved as the model's config entries + the network's tensors ------------------------------------------
    def config(self) -> dict:
        return {"classifier": {"types": list(self.types), "steps": self.steps}, "type_weights": list(self.weights),
                "branch_ess": dict(self.branch_ess)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    @classmethod
    def from_state(cls, model_state, state: Mapping | None, n_features: int) -> TypeClassifier | None:
        """The classifier a saved model's state (:class:`~scbranch.model.ModelState`) and its tensors describe
        (shapes checked first), or ``None``."""
        spec = model_state.classifier
        if not spec or state is None:
            return None
        n_types = len(spec["types"])
        check_shapes(lambda: NoisyTypeClassifier(n_features, n_types), state, "the type classifier")
        net = NoisyTypeClassifier(n_features, n_types)
        net.load_state_dict(state)
        return cls(net.eval(), list(spec["types"]), list(model_state.type_weights), int(spec.get("steps") or 0),
                   dict(model_state.branch_ess or {}))

    # ---- what it computes -------------------------------------------------------------------------------------
    def log_prior(self) -> torch.Tensor:
        """log π(type): the training mixture the score net (and the classifier) saw."""
        return torch.log(torch.as_tensor(self.weights, dtype=torch.float32))

    @torch.no_grad()
    def probabilities(self, z) -> torch.Tensor:
        """p(type | cell) at t = T_EPS under the training mixture, (n, types)."""
        x = torch.as_tensor(z, dtype=torch.float32)
        return torch.softmax(self.net(x, torch.tensor(T_EPS)) + self.log_prior(), 1)

    def below(self, branches: pd.DataFrame) -> dict[int, list[int]]:
        """Per branch, the codes of the types below it that the classifier knows."""
        index = {t: i for i, t in enumerate(self.types)}
        return {int(b): [index[t] for t in tys if t in index]
                for b, tys in zip(branches["branch"], branches["cell_types"])}

    def resampler(self, branches: pd.DataFrame):
        """``resample(x, t, child, parent, n, generator)`` for :func:`~scbranch.sampling.sample_tree`: ``n`` rows
        of the parent's ``x`` drawn ∝ p_child(x_t) / p_parent(x_t) (classifier posterior ratio) by systematic
        resampling, or ``None`` (keep the first rows, draw nothing) where that ratio is 1 or unknown."""
        below, prior = self.below(branches), self.log_prior()

        def resample(x, t, child, parent, n, generator):
            if not _resampled(below, child, parent):
                return None
            w = mixture_weights(self.net, x, t, below[child], below[parent], prior)
            if not torch.isfinite(w).all() or w.sum() <= 0:
                return None
            return systematic_resample(w, n, generator)

        return resample

    @torch.no_grad()
    def measure_ess(self, z: np.ndarray, labels: np.ndarray, branches: pd.DataFrame, paths, bounds, sde, *,
                    n_noise: int = 4, max_cells: int = 2000, random_state: int = 0) -> dict[str, float]:
        """Per branch that starts at a branch point, keyed by its node: the effective fraction of its parent's rows
        it keeps when resampling, (E w)² / E w² with w = p_child / p_parent, over the parent's training cells
        noised to the branch point (cells weighted to the training mixture). ≈ 1 where the children still overlap
        there, → the child's share of the mixture where they are apart. :func:`~scbranch.sampling.sample_tree`
        sizes branches by it."""
        codes = np.asarray(pd.Categorical(labels, categories=self.types).codes)
        below, prior = self.below(branches), self.log_prior()
        mix = prior.exp().numpy() / np.maximum(np.bincount(codes[codes >= 0], minlength=len(prior)), 1)
        edges = {(p, c) for path in paths.values() for p, c in itertools.pairwise(path)}
        node_of = dict(zip(branches["branch"].astype(int), branches["node"], strict=True))
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
            xt, _, _ = sde.marginal(x0, t.expand(len(x0)), torch.randn(x0.shape, generator=gen))
            w = mixture_weights(self.net, xt, float(t), below[child], below[parent], prior).double()
            out[str(node_of[child])] = float(min((cell_w * w).sum() ** 2 / (cell_w.sum() * (cell_w * w**2).sum()),
                                                 1.0))
        return out

    @torch.no_grad()
    def scores(self, z: np.ndarray, sde, *, n_times: int = 50, n_noise: int = 8, threshold: float = 0.9,
               random_state: int = 0) -> TypeScores:
        """Per cell: type probabilities at t = T_EPS; the probability of its most likely type at ``n_times``
        diffusion times on [T_EPS, 1] (averaged over ``n_noise`` noise draws); and the largest time at which that
        probability is ≥ ``threshold`` from t = 0 up (where, walking the reverse process down, the cell's type
        becomes certain; NaN if it never does)."""
        prior = self.log_prior()
        x = torch.as_tensor(z, dtype=torch.float32)
        probs = self.probabilities(x)
        top = probs.argmax(1)
        grid = np.linspace(T_EPS, 1.0, n_times)  # the one time grid: evaluated here, reported with the scores
        times = torch.as_tensor(grid, dtype=torch.float32)
        gen = torch.Generator().manual_seed(int(random_state))
        curve = torch.zeros(len(x), n_times)
        for j, t in enumerate(times):
            for _ in range(n_noise):
                xt, _, _ = sde.marginal(x, t.expand(len(x)), torch.randn(x.shape, generator=gen))
                p = torch.softmax(self.net(xt, t) + prior, 1)
                curve[:, j] += p[torch.arange(len(x)), top] / n_noise
        certain = curve.numpy() >= threshold
        # the largest t such that every t' ≤ t is certain: the first uncertain time from the bottom, minus one step
        first_bad = np.where(certain.all(1), n_times, np.argmin(certain, axis=1))
        certain_time = np.where(first_bad > 0, grid[np.maximum(first_bad - 1, 0)], np.nan)
        return TypeScores(list(self.types), probs.numpy(), grid, curve.numpy(), certain_time)


def _resampled(below: dict[int, list[int]], child: int, parent: int) -> bool:
    """Whether a child's rows are resampled at its branch point: it holds known types, and not all of its
    parent's (a branch continuing its parent's type set, or holding only types added later, keeps the rows)."""
    return bool(below[child]) and set(below[child]) != set(below[parent])


def systematic_resample(w: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` row indices ∝ weights ``w`` by systematic resampling: one uniform offset, ``n`` evenly spaced points
    on the weights' CDF. Row i is drawn ⌊n w̄_i⌋ or ⌈n w̄_i⌉ times (w̄ = w / Σw), so equal weights keep every row
    once, where a multinomial draw would keep only ~63 % of them and duplicate the rest."""
    cdf = torch.cumsum(w.double() / w.double().sum(), 0)
    u = (torch.rand(1, generator=generator, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)) / n
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(w) - 1)
