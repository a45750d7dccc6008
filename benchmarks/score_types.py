"""Label transfer with the noisy type classifier (``sb.tl.score_types``) vs classifiers on the same model space.

pbmc68k_reduced, a stratified 70/30 split per seed, the model fitted with its defaults on the training cells.
Held-out cells are scored by ``score_types`` (the classifier at t ≈ 0 under the training mixture) and by a
logistic regression and a 15-NN classifier trained on the training cells' model-space coordinates (the same
PCs). Accuracy and balanced accuracy (mean per-type recall: the rare types count as much as the common ones),
and the mean "certain time" per type (where each held-out cell's type becomes certain walking down the reverse
process; NaN-free fraction reported). Prints markdown, writes JSON.

    .venv/bin/python benchmarks/score_types.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _common import GROUPBY, fit, print_mean_sd, quiet_logs, split_per_type, write_json
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

import scbranch as sb


def run(adata, seed: int) -> list[dict]:
    train, test = split_per_type(adata, random_state=seed)
    model = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False)
    z_tr, z_te = model.get_latent(train), model.get_latent(test)
    y_tr, y_te = train.obs[GROUPBY].astype(str).to_numpy(), test.obs[GROUPBY].astype(str).to_numpy()
    scored = sb.tl.score_types(test, model, random_state=seed, copy=True)
    preds = {
        "score_types (noisy classifier, t ≈ 0)": scored.obs["scbranch_types"].astype(str).to_numpy(),
        "logistic regression (same PCs)": LogisticRegression(max_iter=5000).fit(z_tr, y_tr).predict(z_te),
        "15-NN (same PCs)": KNeighborsClassifier(15).fit(z_tr, y_tr).predict(z_te),
    }
    rows = [{"seed": seed, "method": name, "accuracy": float((p == y_te).mean()),
             "balanced_accuracy": float(balanced_accuracy_score(y_te, p))} for name, p in preds.items()]
    certain = scored.obs["scbranch_types_certain_time"].to_numpy()
    rows[0]["certain_fraction"] = float(np.isfinite(certain).mean())
    rows[0]["median_certain_time"] = float(np.nanmedian(certain))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "score_types.json")
    args = parser.parse_args()
    quiet_logs()
    adata = sb.datasets.pbmc68k()
    df = pd.DataFrame([r for s in args.seeds for r in run(adata, s)])
    print_mean_sd(df, "method", ["accuracy", "balanced_accuracy", "certain_fraction", "median_certain_time"],
                  "pbmc68k held-out cells: type prediction")
    write_json({"pbmc": df.to_dict("list")}, args.out)


if __name__ == "__main__":
    main()
