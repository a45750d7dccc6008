"""Completing held-out cells from a partial gene panel: scbranch's posterior sampling vs the baselines users have.

pbmc68k_reduced (its log-normalized ``.raw``), a stratified 70/30 split per seed; the model is fitted with its
defaults on the training cells. For each held-out cell a random 50 %, 80 % or 95 % of the genes are masked
(one mask per seed and level, the same for every cell: a targeted panel). Methods:

- ``scbranch (type given)`` / ``scbranch (type inferred)``: ``sb.tl.impute`` with the true label, or with the
  type inferred by the model's classifier from the measured genes;
- ``PCA least squares``: the same model space and linear decoder without the diffusion prior (a ridge fit of the
  measured genes), isolating what the prior adds;
- ``kNN (k=15)``: the mean of the 15 training cells nearest on the measured genes (the simple baseline).

Scores on the masked genes: mean per-gene Pearson r over held-out cells (genes that vary), mean per-cell Pearson
r over genes, MSE; and the type accuracy of the completed cells by a logistic regression trained on the full
training cells (30 PCs). Prints markdown, writes JSON.

    .venv/bin/python benchmarks/impute.py [--seeds 0 1 2] [--masked 0.5 0.8 0.95]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from _common import GROUPBY, _dense, fit, print_mean_sd, quiet_logs, split_per_type, write_json
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

import scbranch as sb
from scbranch.model._impute import measurement, ridge


def scores(x_hat: np.ndarray, x_true: np.ndarray, hidden: np.ndarray, y_true, type_clf) -> dict:
    a, b = x_hat[:, hidden], x_true[:, hidden]
    var = b.std(0) > 0
    per_gene = [np.corrcoef(a[:, g], b[:, g])[0, 1] for g in np.flatnonzero(var) if a[:, g].std() > 0]
    per_cell = [np.corrcoef(a[i], b[i])[0, 1] for i in range(len(a)) if a[i].std() > 0 and b[i].std() > 0]
    return {"gene_r": float(np.mean(per_gene)) if per_gene else np.nan, "cell_r": float(np.mean(per_cell)),
            "mse": float(((a - b) ** 2).mean()), "type_acc": float((type_clf(x_hat) == y_true).mean())}


def run(adata: ad.AnnData, seed: int, masked: list[float]) -> list[dict]:
    train, test = split_per_type(adata, random_state=seed)
    model = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False)
    x_train, x_test = model.get_lognorm(train), model.get_lognorm(test)
    y_train, y_test = train.obs[GROUPBY].astype(str).to_numpy(), test.obs[GROUPBY].astype(str).to_numpy()
    pca = PCA(30, random_state=0).fit(x_train)
    lr = LogisticRegression(max_iter=2000).fit(pca.transform(x_train), y_train)

    def type_clf(x):
        return lr.predict(pca.transform(x))

    rows = []
    rng = np.random.default_rng(seed)
    for frac in masked:
        n_genes = x_test.shape[1]
        hidden = np.sort(rng.choice(n_genes, round(frac * n_genes), replace=False))
        shown = np.setdiff1d(np.arange(n_genes), hidden)
        panel = ad.AnnData(x_test[:, shown], obs=test.obs[[GROUPBY]].copy())
        panel.var_names = model.var_names[shown]
        base = {"seed": seed, "masked": frac}
        for name, kw in (("scbranch (type given)", {"groupby": GROUPBY}), ("scbranch (type inferred)", {})):
            out = sb.tl.impute(panel, model, random_state=seed, progress=False, **kw)
            row = {**base, "method": name, **scores(_dense(out.X), x_test, hidden, y_test, type_clf)}
            if not kw:
                row["inferred_type_acc"] = float((out.obs[GROUPBY].astype(str).to_numpy() == y_test).mean())
            rows.append(row)
        A, mu, _ = measurement(model.representation.linear_view(), shown, x_test[:, shown])
        lsq = model.representation.inverse_transform(ridge(A, mu, x_test[:, shown], s2=None).astype(np.float32))
        lsq[:, shown] = x_test[:, shown]
        rows.append({**base, "method": "PCA least squares", **scores(lsq, x_test, hidden, y_test, type_clf)})
        nn = NearestNeighbors(n_neighbors=15).fit(x_train[:, shown])
        idx = nn.kneighbors(x_test[:, shown], return_distance=False)
        knn = x_train[idx].mean(1)
        knn[:, shown] = x_test[:, shown]
        rows.append({**base, "method": "kNN (k=15)", **scores(knn, x_test, hidden, y_test, type_clf)})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--masked", type=float, nargs="+", default=[0.5, 0.8, 0.95])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "impute.json")
    args = parser.parse_args()
    quiet_logs()
    adata = sb.datasets.pbmc68k()
    df = pd.DataFrame([r for s in args.seeds for r in run(adata, s, args.masked)])
    for frac in args.masked:
        print_mean_sd(df[df.masked == frac], "method", ["gene_r", "cell_r", "mse", "type_acc", "inferred_type_acc"],
                      f"pbmc68k held-out cells, {round(100 * frac)} % of genes masked")
    write_json({"pbmc": df.to_dict("list")}, args.out)


if __name__ == "__main__":
    main()
