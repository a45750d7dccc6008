"""Rare-type augmentation for a downstream classifier, and transmutation, on real PBMC cells.

Augmentation: a logistic regression on a PCA of real training cells is trained on real cells only, real +
scbranch cells (every type topped up to --min-cells), real + flat-model cells, and real + naive oversampling
(rare cells resampled with replacement); macro-F1 and recall of rare types (< 3 % of cells) on held-out real
cells. Transmutation: source cells turned into a target type by the branched model (noised to the pair's
branch time) and by the flat baseline (noised to a fixed time, regenerated with the target label), scored
against real target cells by the mean per-gene Wasserstein distance and the correlation of marker-gene
log-fold changes (transmuted - source vs target - source, top-20 target markers), with untouched source
cells as the reference. Prints markdown tables, writes JSON.

    .venv/bin/python benchmarks/augment.py [--min-cells 100] [--max-steps N]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import anndata as ad
import numpy as np
from _common import GROUPBY, Evaluator, _dense, split_pbmc, write_json
from scipy.stats import wasserstein_distance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import scbranch as sb
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

PAIRS = [("CD14+ Monocyte", "Dendritic"), ("CD4+/CD45RO+ Memory", "CD4+/CD25 T Reg"), ("CD19+ B", "CD56+ NK")]


def classify(ev: Evaluator, x: np.ndarray, y: np.ndarray, rare: list[str]) -> dict:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
    clf.fit(ev.project(x), y)
    pred = clf.predict(ev.z_test)
    rec = recall_score(ev.y_test, pred, labels=rare, average=None, zero_division=0)
    return {"macro_f1": float(f1_score(ev.y_test, pred, average="macro")),
            "rare_recall": float(np.mean(rec)), **{f"recall {t}": float(r) for t, r in zip(rare, rec)}}


def oversample(train: ad.AnnData, min_cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, y = _dense(train.X), train.obs[GROUPBY].astype(str).to_numpy()
    extra = [rng.choice(np.flatnonzero(y == t), min_cells - (y == t).sum()) for t in np.unique(y)
             if (y == t).sum() < min_cells]
    idx = np.concatenate([np.arange(len(y)), *extra])
    return x[idx], y[idx]


def transmutation_scores(model, train, test, source, target, *, time=None) -> dict:
    out = sb.tl.transmute(train, model, source=source, target=target, time=time)
    x_src = model.get_lognorm(train[train.obs[GROUPBY] == source])
    x_tgt = model.get_lognorm(test[test.obs[GROUPBY] == target])
    x_tr = _dense(lognorm_of(out))
    genes = np.argsort(-(x_tgt.mean(0) - x_src.mean(0)))[:20]

    def w(x):
        return float(np.mean([wasserstein_distance(x[:, g], x_tgt[:, g]) for g in range(x.shape[1])]))

    lfc_true = x_tgt[:, genes].mean(0) - x_src[:, genes].mean(0)
    lfc_tr = x_tr[:, genes].mean(0) - x_src[:, genes].mean(0)
    return {
        "wasserstein": w(x_tr),
        "wasserstein_source": w(x_src),
        "marker_lfc_pearson": float(np.corrcoef(lfc_true, lfc_tr)[0, 1]),
        "time": out.uns["scbranch"]["transmute"]["time"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-cells", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--flat-time", type=float, default=0.5, help="fixed noise time of the flat baseline")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "augment.json")
    args = parser.parse_args()
    logging.getLogger("scbranch").setLevel(logging.WARNING)
    train, test = split_pbmc()
    ev = Evaluator(train, test)
    counts = train.obs[GROUPBY].value_counts()
    rare = [t for t in counts.index if counts[t] < 0.03 * train.n_obs]
    branched = sb.tl.fit(train.copy(), groupby=GROUPBY, max_steps=args.max_steps, progress=False)
    flat = sb.tl.fit(
        train.copy(), groupby=GROUPBY, max_steps=args.max_steps, progress=False, model_kwargs={"branched": False}
    )

    x_real, y_real = _dense(train.X), train.obs[GROUPBY].astype(str).to_numpy()
    results = {"real only": classify(ev, x_real, y_real, rare)}
    for name, model in (("real + scbranch", branched), ("real + flat diffusion", flat)):
        aug = sb.tl.augment(train, model, min_cells=args.min_cells, progress=False)
        results[name] = classify(ev, _dense(lognorm_of(aug)), aug.obs[GROUPBY].astype(str).to_numpy(), rare)
    results["real + oversampling"] = classify(ev, *oversample(train, args.min_cells, 0), rare)
    print(f"\n### Augmentation to >= {args.min_cells} cells per type; rare types: {rare}\n")
    print("| training cells | macro-F1 | rare-type recall (mean) | " + " | ".join(f"recall {t}" for t in rare) + " |")
    print("|---|---:|---:|" + "---:|" * len(rare))
    for name, r in results.items():
        print(f"| {name} | {r['macro_f1']:.3f} | {r['rare_recall']:.3f} | "
              + " | ".join(f"{r[f'recall {t}']:.2f}" for t in rare) + " |")

    trans = {}
    print("\n### Transmutation (scored against held-out real target cells)\n")
    print("| source → target | method | noise time | mean per-gene Wasserstein | marker LFC Pearson |")
    print("|---|---|---:|---:|---:|")
    for source, target in PAIRS:
        b = transmutation_scores(branched, train, test, source, target)
        f = transmutation_scores(flat, train, test, source, target, time=args.flat_time)
        trans[f"{source} -> {target}"] = {"branched": b, "flat": f}
        tb = branched.hierarchy
        t_b = [n for n in tb.root.traverse() if {source, target} <= set(n.leaves())][-1].time
        print(f"| {source} → {target} | untouched source | – | {b['wasserstein_source']:.4f} | – |")
        print(
            f"| | branched (shared branch point) | {t_b:.2f} | {b['wasserstein']:.4f} | {b['marker_lfc_pearson']:.3f} |"
        )
        print(
            f"| | flat (fixed time) | {args.flat_time:.2f} | {f['wasserstein']:.4f} | {f['marker_lfc_pearson']:.3f} |"
        )
    write_json({"augment": results, "transmutation": trans, "rare": rare}, args.out)


if __name__ == "__main__":
    main()
