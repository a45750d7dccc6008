"""Noise schedules and samplers, measured on held-out real cells.

1. Component-wise (GUD) schedules: the same branched model with ``softness`` = None (standard diffusion),
   4, 1 and 0.25 (towards autoregression over PCA components), per dataset.
2. Samplers at a fixed budget: does ~50 network evaluations per trajectory match 1000-step Euler–Maruyama?
   One trained model (standard schedule), every sampler; quality and NFE side by side.

Datasets: pbmc68k_reduced (.raw, stratified 70/30 split) and counts simulated from a known 8-type tree.
Metrics (mean per type, in one PCA of the real training cells): RBF-MMD, kNN two-sample AUC, linear AUC.

    .venv/bin/python benchmarks/schedules.py [--max-steps N] [--n-per-type 200] [--only pbmc|simulated]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from _common import GROUPBY, Evaluator, split_pbmc, write_json
from quality import simulated_split

import scbranch as sb
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

SOFTNESS = [None, 4.0, 1.0, 0.25]
# (sampler, steps, spacing): ~50 NFE per trajectory each, against the 1000-step Euler–Maruyama reference
SAMPLER_RUNS = [("euler_maruyama", 1000, "uniform"), ("euler_maruyama", 50, "uniform"), ("pc", 25, "uniform"),
                ("ddim", 50, "uniform"), ("ddim", 50, "logsnr"), ("heun", 25, "uniform"),
                ("dpm_solver_2", 25, "logsnr"), ("ddim", 200, "uniform")]


def score(ev: Evaluator, syn) -> dict:
    table = ev.per_type(lognorm_of(syn), syn.obs[GROUPBY].astype(str).to_numpy())
    return {k: float(table[k].mean()) for k in ("mmd", "auc_knn", "auc_linear")}


def run(train, test, args, label: str) -> dict:
    ev = Evaluator(train, test)
    floor = {k: float(ev.floor()[k].mean()) for k in ("mmd", "auc_knn", "auc_linear")}
    rows, models = [], {}
    for softness in SOFTNESS:
        t0 = time.perf_counter()
        model = sb.tl.fit(train.copy(), groupby=GROUPBY, max_steps=args.max_steps,
                          progress=False, model_kwargs={"softness": softness})
        fit_s = time.perf_counter() - t0
        syn = sb.tl.generate(model, args.n_per_type, sampler="ddim", n_steps=200, progress=False)
        rows.append({"softness": "none (standard)" if softness is None else softness, "fit_s": fit_s,
                     "root_time": model.hierarchy.root.time, **score(ev, syn)})
        models[softness] = model
    print(f"\n### {label}: component-wise schedules (DDIM 200 steps; floor MMD {floor['mmd']:.4f}, "
          f"kNN AUC {floor['auc_knn']:.3f})\n")
    print("| softness | MMD | kNN AUC | linear AUC | root branch time | fit s |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['softness']} | {r['mmd']:.4f} | {r['auc_knn']:.3f} | {r['auc_linear']:.3f} | "
              f"{r['root_time']:.3f} | {r['fit_s']:.0f} |")

    srows = []
    for sampler, n_steps, spacing in SAMPLER_RUNS:
        t0 = time.perf_counter()
        syn = sb.tl.generate(models[None], args.n_per_type, sampler=sampler, n_steps=n_steps, spacing=spacing,
                             progress=False, random_state=1)
        gen = syn.uns["scbranch"]["generate"]
        srows.append({"sampler": sampler, "n_steps": n_steps, "spacing": spacing,
                      "nfe_per_trajectory": n_steps * sb.sampling.get_sampler(sampler).evals_per_step,
                      "nfe_tree": int(gen["nfe"]),
                      "seconds": time.perf_counter() - t0, **score(ev, syn)})
    print(f"\n### {label}: samplers on one model (standard schedule)\n")
    print("| sampler | steps | spacing | NFE/trajectory | NFE (tree) | MMD | kNN AUC | linear AUC | s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in srows:
        print(f"| {r['sampler']} | {r['n_steps']} | {r['spacing']} | {r['nfe_per_trajectory']} | {r['nfe_tree']} | "
              f"{r['mmd']:.4f} | {r['auc_knn']:.3f} | {r['auc_linear']:.3f} | {r['seconds']:.1f} |")
    return {"floor": floor, "schedules": rows, "samplers": srows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--n-per-type", type=int, default=200)
    parser.add_argument("--only", choices=["pbmc", "simulated"], default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "schedules.json")
    args = parser.parse_args()
    logging.getLogger("scbranch").setLevel(logging.WARNING)
    results = {}
    if args.only in (None, "pbmc"):
        results["pbmc68k_reduced"] = run(*split_pbmc(), args, "pbmc68k_reduced")
    if args.only in (None, "simulated"):
        tr, te, _ = simulated_split()
        results["simulated_8_types"] = run(tr, te, args, "simulated counts, 8-type tree")
    write_json(results, args.out)


if __name__ == "__main__":
    main()
