"""Training budget: held-out quality and fit time vs the number of training steps, at 10k cells × 50 PCs.

Why: the default budget (6 steps per training cell, within [3,000, 12,000]) puts a 10k-cell fit at 12,000
steps; issue 5 asks for such a fit in < 3 minutes on 2 CPU cores. This measures what fewer steps cost.
Cells are simulated from a known 8-type tree (counts; unequal type sizes), split 70/30 per type; every
budget is scored on the held-out cells in one PCA (30 comps) of the real training cells, with the
real-train-vs-real-test floor.

    .venv/bin/python benchmarks/budget.py [--cells 10000] [--steps 3000 6000 12000]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from _common import GROUPBY, Evaluator, write_json

import scbranch as sb
from scbranch._normalize import to_lognorm
from scbranch.model import lognorm_of  # syn.X holds counts after counts in


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--steps", type=int, nargs="+", default=[3000, 6000, 12000])
    parser.add_argument("--n-comps", type=int, default=50)
    parser.add_argument("--n-per-type", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "budget.json")
    args = parser.parse_args()
    logging.getLogger("scbranch").setLevel(logging.WARNING)
    shares = np.array([0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04])
    sizes = {f"t{i}": int(s * args.cells) for i, s in enumerate(shares)}
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(8), n_cells=sizes, n_genes=200, random_state=0)
    adata.obs[GROUPBY] = adata.obs["cell_type"]
    rng = np.random.default_rng(0)
    test = np.zeros(adata.n_obs, bool)
    for t in sizes:
        idx = np.flatnonzero(adata.obs[GROUPBY] == t)
        test[rng.choice(idx, int(0.3 * len(idx)), replace=False)] = True
    train, held = adata[~test].copy(), adata[test].copy()
    lognorm = [a.copy() for a in (train, held)]
    for a in lognorm:
        a.X = to_lognorm(a.X, "counts")
    ev = Evaluator(*lognorm)
    floor = ev.floor()
    rows = [{"steps": "floor (real train vs test)", "mmd": floor["mmd"].mean(), "auc_knn": floor["auc_knn"].mean()}]
    for steps in args.steps:
        t0 = time.perf_counter()
        model = sb.tl.fit(train.copy(), groupby=GROUPBY, n_comps=args.n_comps, max_steps=steps, progress=False)
        fit_s = time.perf_counter() - t0
        syn = sb.tl.generate(model, args.n_per_type, progress=False)
        tab = ev.per_type(lognorm_of(syn), syn.obs[GROUPBY].astype(str).to_numpy())
        rows.append({"steps": steps, "trained_steps": int(model.history["n_steps"]), "fit_s": fit_s,
                     "best_val_loss": float(model.history["best_val_loss"]), "mmd": tab["mmd"].mean(),
                     "auc_knn": tab["auc_knn"].mean()})
    print(f"\n### Training budget: {train.n_obs:,} training / {held.n_obs:,} held-out simulated cells, 8 types, "
          f"{args.n_comps} PCs\n")
    print("| max steps | steps run | fit s | best val loss | MMD (mean/type) | kNN AUC |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['steps']} | {r.get('trained_steps', '–')} | {r.get('fit_s', float('nan')):.0f} | "
              f"{r.get('best_val_loss', float('nan')):.4f} | {r['mmd']:.4f} | {r['auc_knn']:.3f} |")
    write_json(rows, args.out)


if __name__ == "__main__":
    main()
