"""Conditioning on a covariate (``condition_keys``): per (type, condition) quality on held-out cells.

Data: counts simulated from an 8-type tree with three donors, each scaling its own 30 genes by 2–4×
(a batch effect you can see), and pbmc68k_reduced with its cell-cycle ``phase`` (G1/S/G2M) as a real covariate.
Per seed a 70/30 split per type; two models with default options: conditioned on the covariate, and not.
For every (type, condition) with ≥ 10 held-out cells, the conditioned model generates that pair's training
count under the condition, the unconditioned one the same count of the type: per-pair MMD to the held-out
cells of the pair (evaluation PCA of the real training cells), next to the floor (training cells of the pair).
And a kNN classifier of the condition, trained on real training cells of each type, is scored on held-out real
cells and on the conditioned model's synthetic cells (labelled with the condition asked for): synthetic
accuracy near the real one means the covariate's effect is reproduced. Prints markdown, writes JSON.

    .venv/bin/python benchmarks/conditions.py [--seeds 0 1 2] [--data sim pbmc]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    GROUPBY,
    Evaluator,
    _dense,
    fit,
    print_mean_sd,
    quiet_logs,
    simulated_counts,
    split_per_type,
    write_json,
)
from sklearn.neighbors import KNeighborsClassifier

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

MIN_TEST = 10


def simulated_donors(random_state: int = 0):
    adata = simulated_counts(random_state)
    rng = np.random.default_rng(random_state + 100)
    donor = rng.choice(["D1", "D2", "D3"], adata.n_obs)
    x = _dense(adata.X).astype(np.float64)
    for d in ("D1", "D2", "D3"):
        genes = rng.choice(x.shape[1], 30, replace=False)
        x[np.ix_(donor == d, genes)] = np.round(x[np.ix_(donor == d, genes)] * rng.uniform(2, 4, 30))
    adata.X = x
    adata.obs["donor"] = pd.Categorical(donor)
    return adata, "donor"


def pbmc_phase(random_state: int = 0):
    return sb.datasets.pbmc68k(), "phase"


def run(adata, key: str, seed: int) -> tuple[list[dict], list[dict]]:
    train, test = split_per_type(adata, random_state=seed)
    cond = fit(train.copy(), groupby=GROUPBY, condition_keys=[key], random_state=seed, progress=False)
    plain = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False)
    x_tr, x_te = cond.get_lognorm(train), cond.get_lognorm(test)
    tr, te = train.copy(), test.copy()
    tr.X, te.X = x_tr, x_te
    ev = Evaluator(tr, te)
    y_tr, y_te = train.obs[GROUPBY].astype(str).to_numpy(), test.obs[GROUPBY].astype(str).to_numpy()
    c_tr, c_te = train.obs[key].astype(str).to_numpy(), test.obs[key].astype(str).to_numpy()
    pairs, acc = [], []
    for ty in sorted(set(y_te)):
        knn = KNeighborsClassifier(15).fit(ev.z_train[y_tr == ty], c_tr[y_tr == ty])
        z_syn_all, c_syn_all = [], []
        for c in sorted(set(c_te[y_te == ty])):
            te_rows, tr_rows = (y_te == ty) & (c_te == c), (y_tr == ty) & (c_tr == c)
            if te_rows.sum() < MIN_TEST or tr_rows.sum() < 2:
                continue
            n = int(tr_rows.sum())
            syn_c = sb.tl.generate(cond, {ty: n}, condition={key: c}, random_state=seed, progress=False)
            syn_p = sb.tl.generate(plain, {ty: n}, random_state=seed, progress=False)
            z_c, z_p = ev.project(_dense(lognorm_of(syn_c))), ev.project(_dense(lognorm_of(syn_p)))
            z_syn_all.append(z_c)
            c_syn_all += [c] * n
            row = {"seed": seed, "type": ty, "condition": c}
            for method, z in (("floor (real train)", ev.z_train[tr_rows]), ("conditioned", z_c),
                              ("unconditioned", z_p)):
                pairs.append({**row, "method": method, "mmd": metrics.mmd_rbf(z, ev.z_test[te_rows])})
        if z_syn_all:
            acc.append({"seed": seed, "type": ty,
                        "real held-out": float((knn.predict(ev.z_test[y_te == ty]) == c_te[y_te == ty]).mean()),
                        "conditioned synthetic": float((knn.predict(np.concatenate(z_syn_all))
                                                        == np.asarray(c_syn_all)).mean())})
    return pairs, acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["sim", "pbmc"], choices=["sim", "pbmc"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "conditions.json")
    args = parser.parse_args()
    quiet_logs()
    loaders = {"sim": ("simulated counts, 8 types × 3 donors", simulated_donors),
               "pbmc": ("pbmc68k_reduced × cell-cycle phase", pbmc_phase)}
    results = {}
    for name in args.data:
        label, load = loaders[name]
        pairs, acc = [], []
        for seed in args.seeds:
            adata, key = load(seed)
            p, a = run(adata, key, seed)
            pairs += p
            acc += a
        pairs, acc = pd.DataFrame(pairs), pd.DataFrame(acc)
        per_seed = pairs.groupby(["seed", "method"], sort=False)["mmd"].mean().reset_index()
        print_mean_sd(per_seed, "method", ["mmd"], f"{label}: per (type, condition) MMD to held-out cells")
        long = acc.melt(id_vars=["seed", "type"], var_name="cells", value_name="condition_acc")
        print_mean_sd(long.groupby(["seed", "cells"], sort=False)["condition_acc"].mean().reset_index(), "cells",
                      ["condition_acc"], f"{label}: kNN accuracy of the condition within type")
        results[name] = {"pairs": pairs.to_dict("list"), "accuracy": acc.to_dict("list")}
        write_json(results, args.out)


if __name__ == "__main__":
    main()
