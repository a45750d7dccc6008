"""Hierarchy recovery on cells simulated from known trees: topology (Robinson–Foulds) and branch-time order.

For K = 4, 8, 16, 32 types (balanced trees, 150 cells per type, 200 genes, Poisson counts; 3 seeds) the
data-derived hierarchy is compared with the true one: RF distance (0 = same topology), Spearman rank
correlation of each internal node's branch time with its true separation (root_scale · decay^depth; nodes
matched by leaf set), and the time the hierarchy step took. Prints a markdown table, writes JSON.

    .venv/bin/python benchmarks/hierarchy.py [--seeds 3] [--out benchmarks/results/hierarchy.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ete3
import numpy as np
from scipy.stats import spearmanr

import scbranch as sb
from scbranch._anndata import to_lognorm
from scbranch.hierarchy import SeparationTest, calibrate_times, data_topology
from scbranch.module import VPSDE
from scbranch.representation import PCARepresentation

ROOT_SCALE, DECAY = 6.0, 0.5


def true_separation(h: sb.Hierarchy) -> dict[frozenset, float]:
    out = {}

    def walk(node, depth):
        if not node.is_leaf:
            out[frozenset(node.leaves())] = ROOT_SCALE * DECAY**depth
            for c in node.children:
                walk(c, depth + 1)

    walk(h.root, 0)
    return out


def run(k: int, seed: int) -> dict:
    truth = sb.Hierarchy.from_dict(sb.simulate.balanced_tree(k))
    adata = sb.simulate.simulate_tree(truth, n_cells=150, n_genes=200, root_scale=ROOT_SCALE, decay=DECAY,
                                      random_state=seed)
    t0 = time.perf_counter()
    x = to_lognorm(adata.X, "counts")
    z = PCARepresentation(15 if adata.n_obs < 2000 else 30).fit(x, random_state=seed).transform(x)
    test = SeparationTest(z, adata.obs["cell_type"].astype(str).to_numpy(), VPSDE())
    tree, _, _ = calibrate_times(data_topology(test, truth.leaves), test)
    seconds = time.perf_counter() - t0
    ta = ete3.Tree(tree.to_newick(), format=1, quoted_node_names=True)
    tb = ete3.Tree(truth.to_newick(), format=1, quoted_node_names=True)
    rf, max_rf = ta.robinson_foulds(tb, unrooted_trees=False)[:2]
    sep = true_separation(truth)
    pairs = [(n.time, sep[frozenset(n.leaves())]) for n in tree.internal_nodes if frozenset(n.leaves()) in sep]
    rho = spearmanr(*zip(*pairs)).statistic if len(pairs) > 2 else float("nan")
    return {"k": k, "seed": seed, "n_cells": adata.n_obs, "rf": int(rf), "max_rf": int(max_rf),
            "spearman_time_vs_separation": float(rho), "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hierarchy.json")
    args = parser.parse_args()
    rows = [run(k, s) for k in args.ks for s in range(args.seeds)]
    print("| types | cells | RF (mean, max over seeds) | max possible RF | Spearman(time, true separation) | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in args.ks:
        r = [x for x in rows if x["k"] == k]
        print(f"| {k} | {r[0]['n_cells']} | {np.mean([x['rf'] for x in r]):.1f}, {max(x['rf'] for x in r)} | "
              f"{r[0]['max_rf']} | {np.mean([x['spearman_time_vs_separation'] for x in r]):.3f} | "
              f"{np.mean([x['seconds'] for x in r]):.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
