"""Hierarchy recovery on cells simulated from known trees, by linkage rule and sharing level; and what each
data tree costs to sample.

For K = 4, 8, 16, 32 types (balanced trees, ``--cells`` per type, 200 genes, Poisson counts; 3 seeds) the
data-derived hierarchy is compared with the true one: RF distance (0 = same topology), Spearman rank
correlation of each internal node's branch time with its true separation (root_scale · decay^depth; nodes
matched by leaf set), and the time the hierarchy step took. For every tree (and pbmc68k_reduced's, which has
no known truth): its depth (K − 1 is a ladder) and the sampling cost of generating the same number of cells of
every type by the tree walk relative to flat, from the branch intervals alone (uniform step grid: total branch
length / K; no training needed). Prints markdown tables, writes JSON.

    .venv/bin/python benchmarks/hierarchy.py [--seeds 3] [--linkage average complete single weighted]
        [--sharing 0 0.5 1]
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
from scbranch._normalize import to_lognorm
from scbranch.hierarchy import SeparationTest, calibrate_times, data_topology, n_ref_for
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


def sampling_cost(tree: sb.Hierarchy) -> float:
    """Cell-rows of the tree walk relative to flat, equal cells per type, uniform time grid."""
    br = tree.branches()
    return float((br.t_end - br.t_start).sum() / len(tree.leaves))


def depth(tree: sb.Hierarchy) -> int:
    def d(node):
        return 0 if node.is_leaf else 1 + max(d(c) for c in node.children)

    return d(tree.root)


def data_tree(z, labels, types, method: str, sharing: float, topology: str):
    """``topology="own"``: linkage on the sharing-level test's pairwise times; ``"n_ref=200"``: on the
    sharing-0 test's (what fit does), branch times from the sharing-level test either way."""
    t0 = time.perf_counter()
    test = SeparationTest(z, labels, VPSDE(), n_ref=n_ref_for(sharing))
    topo = test if topology == "own" else SeparationTest(z, labels, VPSDE())
    tree, _, _ = calibrate_times(data_topology(topo, types, method=method), test)
    return tree, time.perf_counter() - t0


def run(k: int, seed: int, method: str, sharing: float, cells: int, topology: str) -> dict:
    truth = sb.Hierarchy.from_dict(sb.simulate.balanced_tree(k))
    adata = sb.simulate.simulate_tree(truth, n_cells=cells, n_genes=200, root_scale=ROOT_SCALE, decay=DECAY,
                                      random_state=seed)
    x = to_lognorm(adata.X, "counts")
    z = PCARepresentation(15 if adata.n_obs < 2000 else 30).fit(x, random_state=seed).transform(x)
    tree, seconds = data_tree(z, adata.obs["cell_type"].astype(str).to_numpy(), truth.leaves, method, sharing,
                              topology)
    ta = ete3.Tree(tree.to_newick(), format=1, quoted_node_names=True)
    tb = ete3.Tree(truth.to_newick(), format=1, quoted_node_names=True)
    rf, max_rf = ta.robinson_foulds(tb, unrooted_trees=False)[:2]
    sep = true_separation(truth)
    pairs = [(n.time, sep[frozenset(n.leaves())]) for n in tree.internal_nodes if frozenset(n.leaves()) in sep]
    rho = spearmanr(*zip(*pairs)).statistic if len(pairs) > 2 else float("nan")
    return {"k": k, "seed": seed, "linkage": method, "sharing": sharing, "topology": topology,
            "n_cells": adata.n_obs, "rf": int(rf),
            "max_rf": int(max_rf), "spearman_time_vs_separation": float(rho), "seconds": seconds,
            "depth": depth(tree), "cost_vs_flat": sampling_cost(tree)}


def pbmc_rows(methods, sharings, topology) -> list[dict]:
    adata = sb.datasets.pbmc68k()
    x = np.asarray(adata.X.todense() if hasattr(adata.X, "todense") else adata.X)
    z = PCARepresentation(15).fit(x).transform(x)
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    types = sorted(set(labels))
    rows = []
    for method in methods:
        for sharing in sharings:
            tree, _seconds = data_tree(z, labels, types, method, sharing, topology)
            rows.append({"linkage": method, "sharing": sharing, "depth": depth(tree),
                         "cost_vs_flat": sampling_cost(tree), "tree": tree.to_newick()})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--cells", type=int, default=200, help="cells per type")
    parser.add_argument("--linkage", nargs="+", default=["average", "complete", "single", "weighted"])
    parser.add_argument("--sharing", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--topology", choices=["n_ref=200", "own"], default="n_ref=200",
                        help="which test's pairwise times the linkage uses (fit: n_ref=200)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hierarchy.json")
    args = parser.parse_args()
    print(f"topology from: {args.topology} test\n")
    rows = [run(k, s, m, sh, args.cells, args.topology) for k in args.ks for s in range(args.seeds)
            for m in args.linkage for sh in args.sharing]
    print("| types | cells | linkage | sharing | RF (mean, max over seeds) | max RF | Spearman(time, true sep.) "
          "| depth | cost vs flat | seconds |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.ks:
        for m in args.linkage:
            for sh in args.sharing:
                r = [x for x in rows if x["k"] == k and x["linkage"] == m and x["sharing"] == sh]
                print(f"| {k} | {r[0]['n_cells']} | {m} | {sh:g} | {np.mean([x['rf'] for x in r]):.1f}, "
                      f"{max(x['rf'] for x in r)} | {r[0]['max_rf']} | "
                      f"{np.mean([x['spearman_time_vs_separation'] for x in r]):.3f} | "
                      f"{np.mean([x['depth'] for x in r]):.1f} | {np.mean([x['cost_vs_flat'] for x in r]):.3f} | "
                      f"{np.mean([x['seconds'] for x in r]):.2f} |")
    pbmc = pbmc_rows(args.linkage, args.sharing, args.topology)
    print("\n### pbmc68k_reduced (10 types; a ladder has depth 9)\n")
    print("| linkage | sharing | depth | cost vs flat |")
    print("|---|---:|---:|---:|")
    for r in pbmc:
        print(f"| {r['linkage']} | {r['sharing']:g} | {r['depth']} | {r['cost_vs_flat']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"simulated": rows, "pbmc": pbmc}, indent=1))


if __name__ == "__main__":
    main()
