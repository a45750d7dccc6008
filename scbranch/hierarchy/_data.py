"""Branch times (and, if no tree is given, the topology) from the data — Tseng et al.'s recipe, calibrated.

Two types (or groups of types) are forward-diffused through the *same* VP SDE the model trains with:
x_t = α(t) x_0 + σ(t) ε. Instead of a hand-set similarity threshold ε we ask a statistical question with a
fixed reference sample size: would a two-sample test of the noised groups' means, on ``n_ref`` cells per
group at level ``level``, more likely than not detect the difference? Under the null, the squared distance
of two group means of x_t has mean (2/n)·tr(C_t) and standard deviation (2/n)·√(2 tr(C_t²)), with
C_t = α²Σ + σ²I (Σ the pooled within-group covariance); the expected excess is α²‖Δμ‖². So the separation
statistic is

    s(t) = (n_ref / 2) · α(t)² ‖Δμ‖² / √(2 tr(C_t²)),

and the groups are indistinguishable once s(t) drops below z_{1-level}. The branch time is that crossing.
Everything is computed from the groups' moments in closed form: no Monte-Carlo noise, so the curve is smooth,
monotone in t, and the same seed-free answer every time. ‖Δμ‖² is corrected for its small-sample bias
(tr Σ_k / n_k per type), so a rare type is not called "separable" only because its mean is noisy, and every
group is weighted equally per type, so a rare type is not drowned by a large sibling. Fixed defaults, no
per-dataset tuning: ``n_ref=200``, ``level=0.05``.

Without a tree, topology comes from average linkage on the pairwise times. A node's time is the latest time
at which two of its types (in different children) are still distinguishable: only after it may they share a
branch. Times are monotone (a node's time is at least its children's); nodes whose time had to be raised are
flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform

from ..module import T_EPS, VPSDE
from ._tree import Hierarchy, Node, fresh_names

N_REF = 200


# No branch point below t = 0.05: every type keeps the last stretch of the reverse process to itself (≥ 2 noisy
# steps of the default 50-step grid). With splits at t ≈ 0.01 (types no test tells apart at high ``sharing``) two
# types took the same rows and no step of their own: identical cells under two labels.
MIN_BRANCH_TIME = 0.05


def n_ref_for(sharing: float) -> float:
    """The separation test's reference sample size for a ``sharing`` level in [0, 1], log-linear from
    ``N_REF`` cells per type (0: branch where a 200-cell test still sees two types apart) to 1 cell (1: branch
    where single cells of the two types are still told apart, much later in the reverse process)."""
    if not 0 <= sharing <= 1:
        msg = f"sharing must be in [0, 1], got {sharing!r}"
        raise ValueError(msg)
    return float(N_REF ** (1 - sharing))


class SeparationTest:
    """Closed-form separation of two noised groups of types over diffusion time (see module docstring)."""

    def __init__(
        self,
        x: np.ndarray,
        labels: Sequence[str],
        sde: VPSDE,
        *,
        n_ref: float = N_REF,
        level: float = 0.05,
        n_times: int = 200,
    ):
        x = np.asarray(x)
        labels = np.asarray(labels)
        self.moments = {}
        for ty in pd.unique(labels):
            xk = x[labels == ty].astype(np.float64)  # per type: no float64 copy of all cells at once
            cov = np.cov(xk, rowvar=False) if len(xk) > 1 else np.zeros((x.shape[1], x.shape[1]))
            self.moments[ty] = (xk.mean(0), np.atleast_2d(cov), len(xk))
        self.n_ref, self.level, self.dim = n_ref, level, x.shape[1]
        self.critical = NormalDist().inv_cdf(1 - level)
        times = torch.linspace(T_EPS, 1.0, n_times)
        alpha, sigma = sde.alpha_sigma(times)
        # (n_times, d): one column per feature, so a component-wise SDE is tested under its own schedules
        a2, s2 = (np.broadcast_to(v.double().numpy().reshape(n_times, -1) ** 2, (n_times, self.dim))
                  for v in (alpha, sigma))
        self.times, self.a2, self.s2 = times.numpy(), a2, s2

    def _group(self, types: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equal-weight mixture mean and covariance of the types, and the variance of its estimated mean
        per feature."""
        means = np.stack([self.moments[t][0] for t in types])
        mu = means.mean(0)
        cov = np.mean([self.moments[t][1] + np.outer(m - mu, m - mu) for t, m in zip(types, means)], axis=0)
        mean_var = sum(np.diag(self.moments[t][1]) / self.moments[t][2] for t in types) / len(types) ** 2
        return mu, cov, mean_var

    def curve(self, group_a: Sequence[str], group_b: Sequence[str]) -> dict:
        """Statistic and threshold per time, and the first time the groups are indistinguishable."""
        mu_a, cov_a, var_a = self._group(group_a)
        mu_b, cov_b, var_b = self._group(group_b)
        # per feature: squared mean difference minus its small-sample bias; C_t = AΣA + S with A, S diagonal
        delta2 = (mu_a - mu_b) ** 2 - var_a - var_b
        cov = (cov_a + cov_b) / 2
        a2, s2 = self.a2, self.s2
        tr_c2 = (np.einsum("ti,ij,tj->t", a2, cov * cov, a2) + 2 * (a2 * s2) @ np.diag(cov)
                 + np.sum(s2**2, axis=1))
        stat = (self.n_ref / 2) * np.maximum(a2 @ delta2, 0.0) / np.sqrt(2 * tr_c2)
        thresh = np.full_like(stat, self.critical)
        return {"statistic": stat, "threshold": thresh, "time": self._crossing(stat)}

    def _crossing(self, stat: np.ndarray) -> float:
        margin = stat - self.critical
        below = np.flatnonzero(margin <= 0)
        if below.size == 0:
            return 1.0
        i = int(below[0])
        if i == 0:
            return float(self.times[0])
        m0, m1 = margin[i - 1], margin[i]
        return float(self.times[i - 1] + (self.times[i] - self.times[i - 1]) * m0 / (m0 - m1))


def pairwise_times(test: SeparationTest, types: Sequence[str]) -> np.ndarray:
    """Matrix of each pair of types' time of indistinguishability."""
    k = len(types)
    times = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            times[i, j] = times[j, i] = test.curve([types[i]], [types[j]])["time"]
    return times


def data_topology(test: SeparationTest, types: Sequence[str], *, method: str = "average") -> Hierarchy:
    """Agglomerative tree on the pairwise times of indistinguishability (later merge = more distinct)."""
    link = linkage(squareform(pairwise_times(test, types), checks=False), method=method)
    names = fresh_names(set(types))

    def convert(cl) -> Node:
        if cl.is_leaf():
            return Node(types[cl.id])
        return Node(next(names), [convert(cl.left), convert(cl.right)])

    return Hierarchy(convert(to_tree(link)))


def calibrate_times(hierarchy: Hierarchy, test: SeparationTest) -> tuple[Hierarchy, pd.DataFrame, dict]:
    """Set every internal node's branch time from the data; return (tree, branch_points table, curves).

    A node may split only once *every* pair of its types is indistinguishable, so its time is the latest
    pairwise time between types in different children (``raw_time``), raised if needed to its children's
    times (``monotone_adjusted``: the data separates two types *within* a child for longer than the
    children from each other — the tree's topology disagrees with the data there).
    """
    tree = hierarchy.copy()
    types = tree.leaves
    pair = pairwise_times(test, types)
    pos = {t: i for i, t in enumerate(types)}
    rows, curves = [], {"time": test.times, "statistic": [], "threshold": [], "node": [], "pair": []}
    for node in tree.root.traverse("post"):
        if node.is_leaf:
            continue
        kids = node.children
        raw, arg = -1.0, None
        for i in range(len(kids)):
            for j in range(i + 1, len(kids)):
                for a in kids[i].leaves():
                    for b in kids[j].leaves():
                        if pair[pos[a], pos[b]] > raw:
                            raw, arg = pair[pos[a], pos[b]], (a, b)
        floor = max(c.time for c in kids)
        node.time = max(raw, floor, MIN_BRANCH_TIME)
        conflict = ""
        if raw < floor:
            inner = max((c for c in kids if not c.is_leaf), key=lambda c: c.time)
            conflict = (f"'{inner.name}' holds types separable until t={floor:.3f}, later than {node.name}'s "
                        f"children become indistinguishable (t={raw:.3f}): the data would join them differently")
        best = test.curve([arg[0]], [arg[1]])
        curves["statistic"].append(best["statistic"])
        curves["threshold"].append(best["threshold"])
        curves["node"].append(node.name)
        curves["pair"].append(f"{arg[0]} | {arg[1]}")
        rows.append(
            {
                "node": node.name,
                "time": node.time,
                "raw_time": raw,
                "monotone_adjusted": bool(raw < floor),
                "conflict": conflict,
                "children": " | ".join(c.name for c in kids),
                "last_pair": f"{arg[0]} | {arg[1]}",
                "n_types": len(node.leaves()),
            }
        )
    table = pd.DataFrame(rows).sort_values("time", ascending=False, ignore_index=True)
    curves = {k: np.asarray(v) if k not in ("node", "pair") else list(v) for k, v in curves.items()}
    return tree, table, curves
