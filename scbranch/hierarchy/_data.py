"""Branch times (and, if no tree is given, the topology) from the data — Tseng et al.'s recipe, calibrated.

For two groups of types we forward-diffuse a sample of each through the *same* VP SDE the model trains with
and, on a grid of diffusion times, compare them with the energy distance. Instead of a hand-set similarity
threshold ε we calibrate against the statistic's own resampling noise: at each time a permutation null
(labels shuffled across the pooled sample) gives the (1 - level) quantile; the groups are *indistinguishable*
once the statistic drops below it. The branch time is the first time that happens (linearly interpolated
between grid points). Fixed defaults, no per-dataset tuning:

* ``n_per_group=200`` cells per group, drawn with replacement, equally from each type in the group, with fresh
  diffusion noise per draw — so every test has the same power whatever the types' sizes (rare types are not
  merged early just because they are small);
* ``level=0.05``, ``n_perm=200`` permutations, ``n_times=40`` grid points in (0, 1];
* common random numbers (the same cells, noise and permutations at every time) so the curve is smooth in t.

Without a tree, topology comes from average linkage on the pairwise branch times; every internal node is then
re-tested on its pooled child groups. Times are made monotone (a node's time is at least its children's) and
nodes whose time had to be raised are flagged.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform

from ..module import T_EPS, VPSDE
from ._tree import Hierarchy, Node


class SeparationTest:
    """Energy-distance permutation test of two noised groups over a grid of diffusion times."""

    def __init__(
        self,
        x: np.ndarray,
        labels: Sequence[str],
        sde: VPSDE,
        *,
        n_per_group: int = 200,
        n_perm: int = 200,
        n_times: int = 40,
        level: float = 0.05,
        random_state: int = 0,
    ):
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        labels = np.asarray(labels)
        self.index = {ty: np.flatnonzero(labels == ty) for ty in pd.unique(labels)}
        self.sde, self.n, self.n_perm, self.level = sde, n_per_group, n_perm, level
        self.times = torch.linspace(1.0 / n_times, 1.0, n_times).clamp_min(T_EPS)
        self.random_state = random_state

    def _group_sample(self, types: Sequence[str], gen: np.random.Generator) -> torch.Tensor:
        per = np.full(len(types), self.n // len(types))
        per[: self.n % len(types)] += 1
        idx = np.concatenate([gen.choice(self.index[ty], size=k, replace=True) for ty, k in zip(types, per)])
        return self.x[idx]

    def curve(self, group_a: Sequence[str], group_b: Sequence[str], *, stop_early: bool = False) -> dict:
        """Statistic and null threshold per time, and the interpolated first time of indistinguishability."""
        # seeded by the groups' names so a given test draws the same cells whichever order tests run in
        key = zlib.crc32(("|".join(sorted(group_a)) + "||" + "|".join(sorted(group_b))).encode())
        gen = np.random.default_rng([self.random_state, key])
        tgen = torch.Generator().manual_seed(int(gen.integers(2**31)))
        x0 = torch.cat([self._group_sample(group_a, gen), self._group_sample(group_b, gen)])
        noise = torch.randn(x0.shape, generator=tgen)
        n = self.n
        # signed weight vectors: observed split first, then permutations of the pooled labels
        signs = torch.cat([torch.ones(n), -torch.ones(n)]) / n
        perms = torch.stack([signs[torch.randperm(2 * n, generator=tgen)] for _ in range(self.n_perm)])
        weights = torch.cat([signs[None], perms])
        stats, thresh = [], []
        for t in self.times:
            xt, _, _ = self.sde.marginal(x0, t.expand(2 * n), noise)
            dist = torch.cdist(xt, xt)
            # energy distance as a quadratic form: E = -wᵀ D w for w = (1/n on A, -1/n on B)
            e = -((weights @ dist) * weights).sum(1)
            stats.append(float(e[0]))
            thresh.append(float(torch.quantile(e[1:], 1 - self.level)))
            if stop_early and stats[-1] <= thresh[-1]:
                break
        return {"statistic": np.array(stats), "threshold": np.array(thresh), "time": self._crossing(stats, thresh)}

    def _crossing(self, stats, thresh) -> float:
        times = self.times.numpy()
        margin = np.asarray(stats) - np.asarray(thresh)
        below = np.flatnonzero(margin <= 0)
        if below.size == 0:
            return 1.0
        i = int(below[0])
        if i == 0:
            return float(times[0])
        # linear interpolation of the zero crossing of (statistic - threshold)
        m0, m1 = margin[i - 1], margin[i]
        return float(times[i - 1] + (times[i] - times[i - 1]) * m0 / (m0 - m1))


def data_topology(test: SeparationTest, types: Sequence[str]) -> Hierarchy:
    """Average-linkage tree on the pairwise times of indistinguishability (later merge = more distinct)."""
    k = len(types)
    times = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            times[i, j] = times[j, i] = test.curve([types[i]], [types[j]], stop_early=True)["time"]
    link = linkage(squareform(times, checks=False), method="average")
    counter = iter(range(k))

    def convert(cl) -> Node:
        if cl.is_leaf():
            return Node(types[cl.id])
        return Node(f"n{next(counter)}", [convert(cl.left), convert(cl.right)])

    return Hierarchy(convert(to_tree(link)))


def calibrate_times(hierarchy: Hierarchy, test: SeparationTest) -> tuple[Hierarchy, pd.DataFrame, dict]:
    """Set every internal node's branch time from the data; return (tree, branch_points table, curves)."""
    tree = hierarchy.copy()
    rows, curves = [], {"time": test.times.numpy(), "statistic": [], "threshold": [], "node": []}
    for node in tree.root.traverse("post"):
        if node.is_leaf:
            continue
        kids = node.children
        # a node splits when its *last* pair of children becomes indistinguishable (binary: one test)
        best = None
        for i in range(len(kids)):
            for j in range(i + 1, len(kids)):
                res = test.curve(kids[i].leaves(), kids[j].leaves())
                if best is None or res["time"] > best["time"]:
                    best = res
        raw = best["time"]
        floor = max(c.time for c in kids)
        node.time = max(raw, floor, float(test.times[0]))
        curves["statistic"].append(best["statistic"])
        curves["threshold"].append(best["threshold"])
        curves["node"].append(node.name)
        rows.append(
            {
                "node": node.name,
                "time": node.time,
                "raw_time": raw,
                "monotone_adjusted": bool(raw < floor),
                "children": " | ".join(c.name for c in kids),
                "n_types": len(node.leaves()),
            }
        )
    table = pd.DataFrame(rows).sort_values("time", ascending=False, ignore_index=True)
    curves = {k: np.asarray(v) if k != "node" else list(v) for k, v in curves.items()}
    return tree, table, curves
