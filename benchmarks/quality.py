"""Synthetic-cell quality on held-out real cells: scbranch (branched) vs flat diffusion vs scANVI's prior vs a
per-type Gaussian, with real-train-vs-real-test as the floor.

Data: pbmc68k_reduced (.raw, log-normalized; stratified 70/30 split per type) and, with --simulated, counts
simulated from a known 8-type tree. Every method is scored in one PCA (30 comps) fitted on the real training
cells: per-type RBF-MMD, kNN and linear classifier two-sample AUC, train-on-synthetic/test-on-real accuracy,
Pearson of per-gene means. Rare types (< 3 % of cells) are reported separately. Prints markdown, writes JSON.

    .venv/bin/python benchmarks/quality.py [--max-steps N] [--no-scanvi] [--sampler ddim --n-steps 200]

(sampler default: the package's, Euler–Maruyama with 50 steps)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import anndata as ad
import numpy as np
from _baselines import gaussian_per_type, scanvi_prior_sample
from _common import GROUPBY, Evaluator, _dense, simulated_counts, split_pbmc, timer, write_json

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

GENE_COLS = ["expressing_mae", "var_log2_ratio", "marker_overlap", "knn_mixing"]


def summarize(name, table, ev, z_syn, y_syn, x_syn, rare, store):
    tstr = metrics.train_synthetic_test_real(z_syn, y_syn, ev.z_test, ev.y_test, z_train=ev.z_train,
                                             y_train=ev.y_train)
    common = [t for t in table.index]
    row = {"method": name, "mmd": table.loc[common, "mmd"].mean(), "auc_knn": table.loc[common, "auc_knn"].mean(),
           "auc_linear": table.loc[common, "auc_linear"].mean(),
           "rare_mmd": table.loc[[t for t in rare if t in table.index], "mmd"].mean(),
           "rare_auc_knn": table.loc[[t for t in rare if t in table.index], "auc_knn"].mean(),
           "tstr_acc": tstr["tstr"], "trtr_acc": tstr["trtr"],
           "gene_mean_r": metrics.gene_mean_pearson(_dense(ev.train.X), x_syn) if x_syn is not None else np.nan}
    if x_syn is not None:  # gene by gene, against the held-out cells (the floor: training cells)
        g = metrics.gene_level_quality(_dense(ev.test.X), ev.y_test, _dense(x_syn), y_syn,
                                       var_names=ev.test.var_names, groupby=GROUPBY)
        row.update({k: g[k] for k in GENE_COLS})
    store["summary"].append(row)
    store["per_type"][name] = table.reset_index().to_dict("list")


def run(train: ad.AnnData, test: ad.AnnData, args, label: str, counts: ad.AnnData | None) -> dict:
    ev = Evaluator(train, test)
    counts_per_type = train.obs[GROUPBY].value_counts()
    rare = [t for t in counts_per_type.index if counts_per_type[t] < 0.03 * train.n_obs]
    n = args.n_per_type
    store, times = {"summary": [], "per_type": {}}, {}
    floor = ev.floor()
    summarize("real train vs real test (floor)", floor, ev, ev.z_train, ev.y_train, _dense(train.X), rare, store)
    for name, branched in (("scbranch (branched)", True), ("flat diffusion", False)):
        with timer(times, f"{name}: fit"):
            model = sb.tl.fit(train.copy(), groupby=GROUPBY, max_steps=args.max_steps,
                              progress=False, model_kwargs={"branched": branched})
        with timer(times, f"{name}: generate"):
            kw = {"sampler": args.sampler} if args.sampler else {}
            syn = sb.tl.generate(model, n, n_steps=args.n_steps, progress=False, **kw)
        y = syn.obs[GROUPBY].astype(str).to_numpy()
        x_syn = lognorm_of(syn)
        summarize(name, ev.per_type(x_syn, y), ev, ev.project(x_syn), y, x_syn, rare, store)
        times[f"{name}: nfe"], times[f"{name}: n_evals"] = (
            syn.uns["scbranch"]["generate"][k] for k in ("nfe", "n_evals")
        )
    zg, yg = gaussian_per_type(ev.z_train, ev.y_train, n)
    summarize("per-type Gaussian (PCA space)", metrics.per_type_quality(ev.z_test, ev.y_test, zg, yg), ev, zg, yg,
              None, rare, store)
    if counts is not None and not args.no_scanvi:
        with timer(times, "scANVI prior: fit + sample"):
            c, yc = scanvi_prior_sample(counts, GROUPBY, n, max_epochs=args.scanvi_epochs)
        xc = (
            np.log1p(c / np.maximum(c.sum(1, keepdims=True), 1) * args.scanvi_target)
            if args.scanvi_target
            else np.log1p(c)
        )
        summarize("scANVI label-conditional prior", ev.per_type(xc, yc), ev, ev.project(xc), yc, xc, rare, store)

    print(f"\n### {label}: {train.n_obs} training / {test.n_obs} held-out cells, {len(floor)} types; rare: {rare}\n")
    print("| method | MMD (mean/type) | kNN AUC | linear AUC | rare MMD | rare kNN AUC | train-synth/test-real acc "
          "| (train-real acc) | gene-mean r | " + " | ".join(GENE_COLS) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(GENE_COLS))
    for r in store["summary"]:
        genes = " | ".join(f"{r[k]:.3f}" if k in r else "–" for k in GENE_COLS)
        print(f"| {r['method']} | {r['mmd']:.4f} | {r['auc_knn']:.3f} | {r['auc_linear']:.3f} | {r['rare_mmd']:.4f} | "
              f"{r['rare_auc_knn']:.3f} | {r['tstr_acc']:.3f} | {r['trtr_acc']:.3f} | {r['gene_mean_r']:.3f} | "
              f"{genes} |")
    per = {k: dict(zip(v["cell_type"], v["mmd"])) for k, v in store["per_type"].items()}
    b, f = per["scbranch (branched)"], per["flat diffusion"]
    wins = sum(b[t] <= f[t] for t in rare if t in b and t in f)
    print(f"\nbranched ≤ flat on MMD for {wins}/{len(rare)} rare types; "
          f"NFE branched {times['scbranch (branched): nfe']} vs flat {times['flat diffusion: nfe']} "
          f"(n_evals {times['scbranch (branched): n_evals']} vs {times['flat diffusion: n_evals']})")
    print("| step | seconds |\n|---|---:|")
    for k, v in times.items():
        if k.endswith("fit") or k.endswith("generate") or "scANVI" in k:
            print(f"| {k} | {v:.1f} |")
    return {"store": store, "times": times, "rare": rare}


def simulated_split(random_state=0):
    adata = simulated_counts(random_state)
    counts = adata.copy()
    adata.X = sb._normalize.to_lognorm(adata.X, "counts")
    rng = np.random.default_rng(random_state)
    test = np.zeros(adata.n_obs, bool)
    for t in adata.obs[GROUPBY].unique():
        idx = np.flatnonzero(adata.obs[GROUPBY] == t)
        test[rng.choice(idx, int(0.3 * len(idx)), replace=False)] = True
    return adata[~test].copy(), adata[test].copy(), counts[~test].copy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--n-per-type", type=int, default=200)
    parser.add_argument("--sampler", default=None, help="default: the package default (Euler-Maruyama, 50 steps)")
    parser.add_argument("--n-steps", type=int, default=None)
    parser.add_argument("--no-scanvi", action="store_true")
    parser.add_argument("--scanvi-epochs", type=int, default=200)
    parser.add_argument("--simulated", action="store_true", help="also run on simulated counts")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    args = parser.parse_args()
    logging.getLogger("scbranch").setLevel(logging.WARNING)
    logging.getLogger("scvi").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    train, test = split_pbmc()
    # pbmc68k_reduced ships no counts: scANVI gets round(expm1(log-normalized)) pseudo-counts; its samples are
    # mapped back with log1p (same normalized scale), so every method is compared on the same values
    pseudo = train.copy()
    pseudo.X = np.round(np.expm1(_dense(train.X))).astype(np.float32)
    args.scanvi_target = None
    results = {"pbmc68k_reduced": run(train, test, args, "pbmc68k_reduced", pseudo)}
    if args.simulated:
        args.scanvi_target = 1e4
        tr, te, counts = simulated_split()
        results["simulated_8_types"] = run(tr, te, args, "simulated counts, 8-type tree", counts)
    write_json(results, args.out)


if __name__ == "__main__":
    main()
