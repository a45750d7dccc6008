"""How much to share: branch time, sampling cost and held-out quality over the ``sharing`` knob, vs flat.

For each data set and seed (70/30 split per type): one flat model (``branched=False``) and one branched model
per ``sharing`` level, with otherwise default settings; each branched model also generates with
``resample=True`` (rows resampled at branch points by the noisy type classifier). Each generates the training
count of cells per type for quality (per-type MMD and kNN two-sample AUC in a 30-PC space of the real training
cells, TSTR accuracy; the same on the rare types, < 50 training cells, alone) and ``--n-cost`` cells of every
type for cost: cell-rows evaluated by the network (``n_evals``) and wall time relative to flat, same sampler
and steps (Euler–Maruyama, 50), and the fraction of those cells that are distinct (a row copied at a split
with no noisy step after it gives identical cells). Data: pbmc68k_reduced (10 types, data tree), pbmc68k with
``hierarchy="cl"`` (Cell Ontology topology), and counts simulated from balanced trees of 8 / 16 / 32 types
(``--cells-per-type``, two types per tree rare).

    .venv/bin/python benchmarks/sharing.py [--data pbmc sim16] [--sharing 0 0.5 1] [--seeds 0 1 2]

Run it alone (timings).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import GROUPBY, Evaluator, _dense, fit, print_mean_sd, quiet_logs, split_per_type, write_json

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

RARE = 50


def simulated(k: int, per_type: int, random_state: int = 0):
    sizes = {f"t{i}": per_type for i in range(k)}
    sizes["t1"] = sizes[f"t{k - 1}"] = max(per_type // 6, 15)  # two rare types
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(k), n_cells=sizes, n_genes=200,
                                      random_state=random_state)
    adata.obs[GROUPBY] = adata.obs["cell_type"]
    return adata


def data_sets(names, per_type):
    for name in names:
        if name.startswith("pbmc"):
            yield name, sb.datasets.pbmc68k(), ({"hierarchy": "cl"} if name == "pbmc_cl" else {})
        else:
            yield name, simulated(int(name.removeprefix("sim")), per_type), {}


def lognorm(a):
    x = _dense(a.X)
    return sb._normalize.to_lognorm(x, "counts") if np.all(np.mod(x, 1) == 0) else x


def quality(ev: Evaluator, syn, rare) -> dict:
    y = syn.obs[GROUPBY].astype(str).to_numpy()
    z = ev.project(_dense(lognorm_of(syn)))
    tab = metrics.per_type_quality(ev.z_test, ev.y_test, z, y)
    out = {"mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean(),
           "tstr": metrics.train_synthetic_test_real(z, y, ev.z_test, ev.y_test)["tstr"]}
    r = tab[tab.index.isin(rare)]
    out.update(rare_mmd=r["mmd"].mean() if len(r) else np.nan, rare_auc=r["auc_knn"].mean() if len(r) else np.nan)
    return out


def cost(model, n: int, resample: bool = False, repeats: int = 3) -> dict:
    """Network cell-rows, and wall clock (best of ``repeats``) of the reverse diffusion alone (``sample_s``) and
    of ``generate`` with decoding (``gen_s``; decoding costs the same for flat and branched)."""
    sb.tl.generate(model, 2, n_steps=4, progress=False)  # warm-up
    sample_s = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.sample(n, progress=False, resample=resample)
        sample_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    syn = sb.tl.generate(model, n, progress=False, resample=resample)
    gen_s, z = time.perf_counter() - t0, syn.obsm["X_scbranch"]
    # identical synthetic cells (a row duplicated at a split with no noisy step after it), any types
    distinct = len(np.unique(z.round(5), axis=0)) / len(z)
    return {"n_evals": syn.uns["scbranch"]["generate"]["n_evals"], "gen_s": gen_s, "sample_s": min(sample_s),
            "distinct": distinct}


def run(name, adata, extra, seed, args) -> list[dict]:
    train, test = split_per_type(adata, random_state=seed)
    tr, te = train.copy(), test.copy()
    tr.X, te.X = lognorm(train), lognorm(test)
    ev = Evaluator(tr, te)
    sizes = train.obs[GROUPBY].value_counts()
    rare = list(sizes.index[sizes < RARE].astype(str))
    rows = []
    settings = [("flat", None)] + [(f"sharing {s:g}", s) for s in args.sharing]
    for label, s in settings:
        kw = {"branched": False} if s is None else {"sharing": s, **extra}
        t0 = time.perf_counter()
        model = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False, **kw)
        fit_s = time.perf_counter() - t0
        internal = [n.time for n in model.hierarchy.internal_nodes]
        for resample in (False, True) if s is not None and args.resample else (False,):
            syn = sb.tl.generate(model, sizes.to_dict(), random_state=seed, progress=False, resample=resample)
            rows.append({"data": name, "seed": seed, "setting": label + (" + resample" if resample else ""),
                         "fit_s": fit_s, "mean_branch_time": float(np.mean(internal)) if s is not None else 1.0,
                         **quality(ev, syn, rare), **cost(model, args.n_cost, resample)})
            logging.getLogger("sharing").warning(f"{name} seed {seed} {rows[-1]['setting']}: {rows[-1]}")
    flat = rows[0]
    for r in rows:
        r["evals_vs_flat"] = r["n_evals"] / flat["n_evals"]
        r["time_vs_flat"] = r["gen_s"] / flat["gen_s"]
        r["sample_time_vs_flat"] = r["sample_s"] / flat["sample_s"]
    return rows


def print_table(df: pd.DataFrame, name: str) -> None:
    cols = ["mean_branch_time", "evals_vs_flat", "time_vs_flat", "sample_time_vs_flat", "mmd", "auc_knn", "tstr",
            "rare_mmd", "rare_auc", "distinct"]
    print_mean_sd(df[df.data == name], "setting", cols, name)


def plot_curve(df: pd.DataFrame, path: Path) -> None:
    """The trade-off: held-out per-type MMD against evaluations relative to flat, one panel per data set (mean ± sd
    over seeds; circles: rows handed over as they are, squares: resampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(df["data"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        g = df[df.data == name].groupby("setting", sort=False)[["evals_vs_flat", "mmd"]].agg(["mean", "std"])
        for setting, r in g.iterrows():
            marker = "s" if "resample" in setting else ("*" if setting == "flat" else "o")
            ax.errorbar(r[("evals_vs_flat", "mean")], r[("mmd", "mean")], yerr=r[("mmd", "std")], fmt=marker,
                        capsize=3, color="black" if setting == "flat" else None)
            ax.annotate(setting.replace("sharing ", "s"), (r[("evals_vs_flat", "mean")], r[("mmd", "mean")]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(title=name, xlabel="network evaluations / flat", ylabel="held-out per-type MMD", xlim=(0, 1.1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["pbmc", "sim16", "sim8", "sim32", "pbmc_cl"])
    parser.add_argument("--sharing", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-cost", type=int, default=200)
    parser.add_argument("--no-resample", dest="resample", action="store_false",
                        help="skip the rows that resample at branch points")
    parser.add_argument("--cells-per-type", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sharing.json")
    args = parser.parse_args()
    quiet_logs()
    rows = []
    for name, adata, extra in data_sets(args.data, args.cells_per_type):
        for seed in args.seeds:
            rows += run(name, adata, extra, seed, args)
            write_json(rows, args.out)
        print_table(pd.DataFrame(rows), name)
    plot_curve(pd.DataFrame(rows), args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
