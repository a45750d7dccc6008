"""Rare types from a handful of cells: few-shot curves on held-out real cells (issue 24).

Per data set and seed: a stratified 70/30 split per type; then up to four *focal* types (the smallest with more
than 50 training cells) are cut to n = 5, 10, 20 and 50 training cells, one n each, the assignment rotated with the
seed so that every n meets different types; all other types stay intact. Cutting four types in one fit rather
than one per fit keeps the run to one fit per method, data set and seed (a 2-core machine); each focal type still
has every other type of the data set beside it.

Every generator then makes, for each focal type, as many cells as the type has held-out cells (cell-level scores)
and tops its training cells back up to their uncut number (augmentation). Rows:

- real (n cells): the n training cells themselves — the floor a generator of n cells is measured against;
- scbranch default (branched), flat (``branched=False``);
- per-type Gaussian and the plain MLP diffusion peer, fitted in the evaluation PCA (scored there);
- scVI posterior predictive of the n cells (scVI trained on all cut training cells; it copies them).

Scores per focal type: per-type MMD (bandwidth: the held-out cells' median distance, the same for every row) and
kNN two-sample AUC against its held-out cells in a 30-PC space of the cut training cells; gene-level
fraction-expressing MAE, variance log2 ratio and top-20 marker overlap for count rows; and the F1 on held-out
cells of a logistic regression (on that PCA) trained on the cut cells plus the row's synthetic cells of every
focal type — next to the cut cells alone, the cut cells class-weighted, and all real training cells.

Prints mean ± sd per (method, n) over data sets' focal types and seeds, a figure (score vs n, one line per
method), and JSON.

    .venv/bin/python benchmarks/rare.py [--data zeisel human_kidney pbmc] [--seeds 0 1 2] [--rows ...]
        [--fit-kwargs '{"balance": 1.0}'] [--label NAME] [--generate-variants '{"EM-200": {"n_steps": 200}}']
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from _baselines import gaussian_per_type, mlp_diffusion
from _common import GROUPBY, Evaluator, _dense, data_arguments, fit, quiet_logs, split_per_type, write_json
from realism import SHARED_DATA, load, lognorm, train_scvi
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

NS = [5, 10, 20, 50]
ROWS = ["real", "default", "flat", "gaussian", "scvi_posterior", "peer"]
SCORES = ["mmd", "auc_knn", "f1", "expressing_mae", "var_log2_ratio", "marker_overlap"]


def cut(train: ad.AnnData, seed: int, max_focal: int = 4) -> tuple[ad.AnnData, dict[str, int], dict[str, int]]:
    """The training cells with the focal types cut; returns (cut cells, {focal type: n}, {focal type: uncut n})."""
    sizes = train.obs[GROUPBY].value_counts()
    focal = list(sizes[sizes > max(NS)].sort_values().index[:max_focal])
    n_of = {t: NS[(i + seed) % len(NS)] for i, t in enumerate(focal)}
    rng = np.random.default_rng(seed)
    keep = np.ones(train.n_obs, bool)
    for t, n in n_of.items():
        idx = np.flatnonzero(train.obs[GROUPBY] == t)
        keep[rng.choice(idx, len(idx) - n, replace=False)] = False
    return train[keep].copy(), n_of, {t: int(sizes[t]) for t in focal}


class FewShot:
    """Scores of one (data set, seed): the evaluation PCA of the cut cells, fixed bandwidths, the classifiers."""

    def __init__(self, train_cut: ad.AnnData, train_full: ad.AnnData, test: ad.AnnData, n_of: dict, full_n: dict,
                 seed: int):
        tr, te = train_cut.copy(), test.copy()
        tr.X, te.X = lognorm(train_cut.X), lognorm(test.X)
        self.ev, self.seed, self.n_of, self.full_n = Evaluator(tr, te), seed, n_of, full_n
        self.x_test, self.var_names = _dense(te.X), train_cut.var_names
        self.scales = metrics.mmd_scales(self.ev.z_test, self.ev.y_test)
        self.n_test = pd.Series(self.ev.y_test).value_counts().to_dict()
        self.z_full = self.ev.project(lognorm(train_full.X))
        self.y_full = train_full.obs[GROUPBY].astype(str).to_numpy()
        self.refs = {"cut cells only": self._f1(self.ev.z_train, self.ev.y_train),
                     "cut cells, class-weighted": self._f1(self.ev.z_train, self.ev.y_train, weighted=True),
                     "all real cells": self._f1(self.z_full, self.y_full)}

    def want(self) -> dict[str, int]:
        """Cells to generate per focal type: enough for both the held-out comparison and the top-up."""
        return {t: max(self.n_test[t], self.full_n[t] - n) for t, n in self.n_of.items()}

    def _f1(self, z, y, weighted: bool = False) -> dict[str, float]:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5,
                                                                 class_weight="balanced" if weighted else None))
        pred = clf.fit(z, y).predict(self.ev.z_test)
        f1 = f1_score(self.ev.y_test, pred, labels=list(self.n_of), average=None, zero_division=0)
        return dict(zip(self.n_of, map(float, f1)))

    def rows(self, method: str, y_syn, *, x_syn=None, z_syn=None, **extra) -> list[dict]:
        """One row per focal type: cell-level scores on its first n_test cells, F1 after topping every focal
        type up with its synthetic cells, gene-level scores for count rows."""
        ev, y_syn = self.ev, np.asarray(y_syn, str)
        z_syn = ev.project(x_syn) if z_syn is None else z_syn
        first = np.zeros(len(y_syn), bool)  # per type, the first n_test cells: equal sizes for the kNN AUC
        top_up = np.zeros(len(y_syn), bool)
        for t, n in self.n_of.items():
            idx = np.flatnonzero(y_syn == t)
            first[idx[: self.n_test[t]]] = True
            top_up[idx[: self.full_n[t] - n]] = True
        tab = metrics.per_type_quality(ev.z_test, ev.y_test, z_syn[first], y_syn[first], mmd_scales=self.scales,
                                       random_state=self.seed)
        f1 = self._f1(np.vstack([ev.z_train, z_syn[top_up]]), np.concatenate([ev.y_train, y_syn[top_up]]))
        out = []
        for t, n in self.n_of.items():
            row = {"method": method, "seed": self.seed, "cell_type": t, "n": n, "mmd": tab.loc[t, "mmd"],
                   "auc_knn": tab.loc[t, "auc_knn"], "f1": f1[t], **extra}
            if x_syn is not None:
                keep, test = first & (y_syn == t), self.ev.y_test == t
                g = metrics.gene_level_quality(self.x_test[test], self.ev.y_test[test], _dense(x_syn)[keep],
                                               y_syn[keep], var_names=self.var_names, groupby=GROUPBY,
                                               random_state=self.seed)
                row |= {k: g[k] for k in ("expressing_mae", "var_log2_ratio")}
                row["marker_overlap"] = self._markers(_dense(x_syn)[keep], t)
            out.append(row)
        return out

    def _markers(self, x_t: np.ndarray, t: str) -> float:
        """Top-20 marker overlap of type t vs all other held-out cells: synthetic t cells vs real t cells."""
        rest = self.x_test[self.ev.y_test != t]
        top = [set(np.argsort(-(x.mean(0) - rest.mean(0)))[:20]) for x in (x_t, self.x_test[self.ev.y_test == t])]
        return len(top[0] & top[1]) / 20


def run_one(adata: ad.AnnData, seed: int, args) -> tuple[list[dict], dict]:
    train, test = split_per_type(adata, random_state=seed)
    train_cut, n_of, full_n = cut(train, seed)
    fs = FewShot(train_cut, train, test, n_of, full_n, seed)
    want, rows = fs.want(), []
    y_cut = fs.ev.y_train
    if "real" in args.rows:  # the n real cells, repeated to the wanted number (the floor of n cells)
        idx = np.concatenate([np.resize(np.flatnonzero(y_cut == t), k) for t, k in want.items()])
        rows += fs.rows("real (n cells)", y_cut[idx], x_syn=lognorm(train_cut.X)[idx])
    steps = {"max_steps": args.max_steps} if args.max_steps else {}
    for row, label, options in (("default", args.label or "scbranch default", args.fit_kwargs | steps),
                                ("flat", "scbranch flat (branched=False)", {"branched": False} | steps)):
        if row in args.rows:
            t0 = time.perf_counter()
            model = fit(train_cut.copy(), groupby=GROUPBY, random_state=seed, progress=False, **options)
            fit_s = time.perf_counter() - t0
            # the row, then (default row only) any --generate-variants of the same fit: paired, one split
            more = [(f"{label}, {k}", v) for k, v in args.generate_variants.items()] if row == "default" else []
            for name, kwargs in [(label, {}), *more]:
                syn = sb.tl.generate(model, want, random_state=seed, progress=False, **kwargs)
                rows += fs.rows(name, syn.obs[GROUPBY].astype(str), x_syn=_dense(lognorm_of(syn)), fit_s=fit_s)
    if "gaussian" in args.rows:
        parts = [gaussian_per_type(fs.ev.z_train[y_cut == t], y_cut[y_cut == t], k, random_state=seed)
                 for t, k in want.items()]
        rows += fs.rows("per-type Gaussian (eval PCA)", np.concatenate([p[1] for p in parts]),
                        z_syn=np.vstack([p[0] for p in parts]))
    if "peer" in args.rows:
        z, y = mlp_diffusion(fs.ev.z_train, y_cut, want, steps=args.peer_steps, random_state=seed)
        rows += fs.rows("plain MLP diffusion peer (eval PCA)", y, z_syn=z)
    if "scvi_posterior" in args.rows:
        vae, _ = train_scvi(train_cut, seed, args.scvi_epochs)
        xs, ys = [], []
        for t, k in want.items():
            idx = np.flatnonzero(y_cut == t)
            x = vae.posterior_predictive_sample(indices=idx, n_samples=-(-k // len(idx)))
            x = np.asarray(x.todense() if hasattr(x, "todense") else x).reshape(len(idx), adata.n_vars, -1)
            xs.append(np.moveaxis(x, 2, 0).reshape(-1, adata.n_vars)[:k])
            ys += [t] * k
        rows += fs.rows("scVI posterior predictive (of the n cells)", ys, x_syn=lognorm(np.vstack(xs)))
    return rows, {"seed": seed, "n_of": n_of, **{f"{k}": v for k, v in fs.refs.items()}}


def print_table(df: pd.DataFrame, refs: list[dict]) -> None:
    """Mean ± sd over focal types and seeds, one row per method, one column block per n."""
    print("\n| method | " + " | ".join(f"n={n} MMD / kNN AUC / F1" for n in NS) + " |")
    print("|---|" + "---:|" * len(NS))
    for m, g in df.groupby("method", sort=False):
        cells = []
        for n in NS:
            h = g[g.n == n]
            cells.append("–" if h.empty else " / ".join(f"{h[k].mean():.3g}±{h[k].std():.2g}" if len(h) > 1
                                                          else f"{h[k].mean():.3g}" for k in ("mmd", "auc_knn", "f1")))
        print(f"| {m} | " + " | ".join(cells) + " |")
    ref = pd.DataFrame([{"ref": k, "n": r["n_of"][t], "f1": v[t]} for r in refs for k, v in r.items()
                        if isinstance(v, dict) and k != "n_of" for t in v])
    for k, g in ref.groupby("ref", sort=False):
        print(f"| F1: {k} | " + " | ".join(f"{g[g.n == n].f1.mean():.3g}" if (g.n == n).any() else "–"
                                           for n in NS) + " |")
    gene = [c for c in ("expressing_mae", "var_log2_ratio", "marker_overlap") if c in df]
    if gene:
        print("\n| method | n | " + " | ".join(gene) + " |\n|---|---:|" + "---:|" * len(gene))
        for (m, n), g in df.dropna(subset=gene).groupby(["method", "n"], sort=False):
            print(f"| {m} | {n} | " + " | ".join(f"{g[c].mean():.3g}" for c in gene) + " |")


def figure(df: pd.DataFrame, refs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, label in zip(axes, ("mmd", "auc_knn", "f1"), ("per-type MMD (lower is better)",
                                                               "kNN two-sample AUC (0.5 ideal)", "rare-type F1")):
        for m, g in df.groupby("method", sort=False):
            mean = g.groupby("n")[key].mean()
            ax.plot(mean.index, mean.values, marker="o", label=m)
        if key == "f1":
            ref = pd.DataFrame([{"ref": k, "n": r["n_of"][t], "f1": v[t]} for r in refs for k, v in r.items()
                                if isinstance(v, dict) and k != "n_of" for t in v])
            for k, g in ref.groupby("ref", sort=False):
                mean = g.groupby("n").f1.mean()
                ax.plot(mean.index, mean.values, ls="--", label=f"real: {k}")
        ax.set(xscale="log", xticks=NS, xticklabels=NS, xlabel="training cells of the rare type", title=label)
        ax.minorticks_off()  # the log axis's minor labels (3×10¹, 4×10¹) collide with the n ticks
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report(results: dict, out: Path) -> None:
    """Tables per data set and over all of them, and the figure, from a results JSON (complete or not)."""
    for name, r in results.items():
        seeds = sorted({x["seed"] for x in r["rows"]})
        print(f"\n### {name}: focal types cut to n training cells, mean ± sd over focal types × seeds {seeds}")
        print_table(pd.DataFrame(r["rows"]), r["refs"])
    rows = [x for r in results.values() for x in r["rows"]]
    refs = [x for r in results.values() for x in r["refs"]]
    if len(results) > 1:
        print(f"\n### all data sets ({', '.join(results)})")
        print_table(pd.DataFrame(rows), refs)
    figure(pd.DataFrame(rows), refs, out.with_suffix(".png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_arguments(parser, ROWS)
    parser.add_argument("--label", default=None, help="name of the default row (e.g. for a variant)")
    parser.add_argument("--generate-variants", type=json.loads, default={},
                        help='JSON {name: generate options}: more rows from the default row\'s fitted model, e.g. '
                             '\'{"EM-200": {"n_steps": 200}}\'')
    parser.add_argument("--max-steps", type=int, default=None, help="training steps cap (smoke runs)")
    parser.add_argument("--peer-steps", type=int, default=12000)
    parser.add_argument("--scvi-epochs", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rare.json")
    parser.add_argument("--report", action="store_true", help="print the tables and figure of --out, run nothing")
    args = parser.parse_args()
    if args.report:
        return report(json.loads(args.out.read_text()), args.out)
    quiet_logs()
    results = {}
    for name in args.data:
        adata = load(name, args.data_dir)
        rows, refs = [], []
        for seed in args.seeds:  # the JSON after every seed: a long run stopped early keeps what it measured
            r, ref = run_one(adata, seed, args)
            rows += [x | {"data": name} for x in r]
            refs.append(ref)
            results[name] = {"rows": rows, "refs": refs}
            write_json(results, args.out)
    report(results, args.out)


if __name__ == "__main__":
    main()
