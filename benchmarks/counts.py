"""Count-level synthetic cells on held-out real counts: scbranch with ``representation="scvi"`` (counts from
scVI's likelihood) vs scbranch's default PCA representation vs scANVI's label-conditional prior.

Data: exact pbmc68k counts (``scbranch.datasets.pbmc68k_counts``) and, with --simulated, counts simulated from
a known 8-type tree; stratified 70/30 split per type. Each generator draws ``--draws`` sets of cells with the
held-out cells' type composition. Two kinds of score:

- per type, in one PCA (30 comps) of log-normalized expression fitted on the real training cells: RBF-MMD and
  kNN two-sample AUC (as ``benchmarks/quality.py``);
- scVI's posterior predictive checks (``scvi.criticism.PosteriorPredictiveCheck``, usable on scvi-tools 1.4 by
  handing it each generator's draws through the one method it calls on a model): per gene, the zero fraction
  and the coefficient of variation across cells, vs the held-out real counts (Pearson r, mean absolute error).
  Both scbranch representations decode counts (PCA through its count decoder, scVI through scVI's likelihood).
- gene by gene against the held-out cells (``scbranch.metrics.gene_level_quality``): fraction-expressing MAE,
  variance log2 ratio, top-20 marker overlap, kNN mixing.
  References: real training cells resampled to the held-out composition (the floor), and scVI's own posterior
  predictive of the held-out cells (a reconstruction: it sees the cells, so it is not a generator).

    .venv/bin/python benchmarks/counts.py [--simulated] [--max-steps N] [--draws 5]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from _baselines import scanvi_prior_sample
from _common import GROUPBY, _dense, simulated_counts, split_per_type, timer, write_json
from sparse import GCXS

import scbranch as sb
from scbranch import metrics
from scbranch._normalize import to_lognorm
from scbranch.model import counts_of  # syn.X holds counts after counts in
from scbranch.representation._scvi import _counts_adata

GENE_COLS = ["expressing_mae", "var_log2_ratio", "marker_overlap", "knn_mixing"]  # vs held-out cells


class _Draws:
    """What ``PosteriorPredictiveCheck`` needs of a model: ``adata`` and ``posterior_predictive_sample``
    returning counts of shape (cells, genes, draws)."""

    def __init__(self, adata: ad.AnnData, draws: np.ndarray):
        self.adata, self.draws = adata, draws

    def posterior_predictive_sample(self, adata=None, n_samples=1, batch_size=None, indices=None):
        return GCXS.from_numpy(self.draws[:, :, :n_samples], compressed_axes=(0,))


def as_draws(counts: np.ndarray, labels, test_labels: np.ndarray, n_draws: int) -> np.ndarray:
    """Arrange generated cells as (held-out cell, gene, draw): draw k of held-out cell i is a cell of its type."""
    labels = np.asarray(labels, str)
    out = np.zeros((len(test_labels), counts.shape[1], n_draws), np.float32)
    for t in np.unique(test_labels):
        rows = np.flatnonzero(test_labels == t)
        src = counts[labels == t][: len(rows) * n_draws]
        out[rows] = src.reshape(n_draws, len(rows), -1).transpose(1, 2, 0)
    return out


def run(adata: ad.AnnData, args, label: str) -> dict:
    train, test = split_per_type(adata)
    y_tr, y_te = (a.obs[GROUPBY].astype(str).to_numpy() for a in (train, test))
    need = {t: int(n) * args.draws for t, n in pd.Series(y_te).value_counts().items()}
    c_tr, c_te = _dense(train.X), _dense(test.X)
    project = metrics.fit_eval_pca(to_lognorm(c_tr, "counts"), 30)
    z_te = project(to_lognorm(c_te, "counts"))
    rng = np.random.default_rng(0)
    draws, lognorm, times = {}, {}, {}
    pick = np.concatenate([rng.choice(np.flatnonzero(y_tr == t), n) for t, n in need.items()])
    draws["real train (floor)"] = (c_tr[pick], y_tr[pick])
    with timer(times, "scbranch scvi: fit"):
        m_scvi = sb.tl.fit(train.copy(), groupby=GROUPBY, representation="scvi", max_steps=args.max_steps,
                           progress=False, model_kwargs={"scvi_epochs": args.scvi_epochs})
    with timer(times, "scbranch scvi: generate"):
        syn = sb.tl.generate(m_scvi, need, progress=False)
    draws["scbranch (scvi)"] = (_dense(counts_of(syn)), syn.obs[GROUPBY].astype(str).to_numpy())
    with timer(times, "scbranch pca: fit"):
        m_pca = sb.tl.fit(train.copy(), groupby=GROUPBY, max_steps=args.max_steps, progress=False)
    syn = sb.tl.generate(m_pca, need, progress=False)
    draws["scbranch (pca, default)"] = (_dense(counts_of(syn)), syn.obs[GROUPBY].astype(str).to_numpy())
    if not args.no_scanvi:
        with timer(times, "scANVI prior: fit + sample"):
            draws["scANVI label-conditional prior"] = scanvi_prior_sample(train, GROUPBY, need,
                                                                          max_epochs=args.scanvi_epochs)
    for name, (c, y) in draws.items():
        lognorm[name] = (to_lognorm(c, "counts"), y)
    # in PCA space the floor is every training cell once: resampled duplicates would sit on each other and
    # inflate kNN AUC and MMD (the per-gene checks take the resampled draws, which match the composition)
    lognorm["real train (floor)"] = (to_lognorm(c_tr, "counts"), y_tr)

    rows = []
    x_te = to_lognorm(c_te, "counts")
    for name, (x, y) in lognorm.items():
        x = _dense(x)
        tab = metrics.per_type_quality(z_te, y_te, project(x), y)
        g = metrics.gene_level_quality(x_te, y_te, x, y, var_names=test.var_names, groupby=GROUPBY)
        rows.append({"method": name, "mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean(),
                     **{k: g[k] for k in GENE_COLS}})
    quality = pd.DataFrame(rows).set_index("method")
    ppc = posterior_checks(test, y_te, draws, m_scvi, args.draws)
    table = quality.join(ppc, how="outer")

    print(f"\n### {label}: {train.n_obs} training / {test.n_obs} held-out cells, {len(need)} types, "
          f"{args.draws} draws of the held-out composition\n")
    cols = ("mmd", "auc_knn", "zf_r", "zf_mae", "cv_r", "cv_mae", *GENE_COLS)
    print("| method | MMD (mean/type) | kNN AUC | zero fraction r | zero fraction MAE | gene CV r | gene CV MAE | "
          + " | ".join(GENE_COLS) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, r in table.iterrows():
        print(f"| {name} | " + " | ".join("–" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in cols) + " |")
    print("\n| step | seconds |\n|---|---:|")
    for k, v in times.items():
        print(f"| {k} | {v:.1f} |")
    return {"table": table.reset_index().to_dict("list"), "times": times}


def posterior_checks(test: ad.AnnData, y_te, draws: dict, m_scvi, n_draws: int) -> pd.DataFrame:
    """scvi.criticism on each generator's draws, scVI's own posterior predictive of the held-out cells added."""
    from scvi.criticism import PosteriorPredictiveCheck

    # dense: scvi-tools 1.4's integer check (`np.all(X == X.astype(int))`) fails on scipy sparse matrices
    real = ad.AnnData(X=_dense(test.X).astype(np.float32), obs=test.obs[[GROUPBY]].copy(),
                      var=pd.DataFrame(index=test.var_names))
    models = {name: _Draws(real, as_draws(c, y, y_te, n_draws)) for name, (c, y) in draws.items()}
    rep = m_scvi.representation
    held = _counts_adata(_dense(test.X), rep.var_names, None, rep.setup_args)  # as scbranch hands it to scVI
    pp = rep.scvi.posterior_predictive_sample(held, n_samples=n_draws)
    models["scVI posterior predictive (sees the cells)"] = _Draws(real, np.asarray(pp.todense(), np.float32))
    ppc = PosteriorPredictiveCheck(real, models, n_samples=n_draws)
    ppc.coefficient_of_variation("cells")
    ppc.zero_fraction()
    rows = []
    for name in models:
        r = {"method": name}
        for key, col in (("zero_fraction", "zf"), ("cv_gene", "cv")):
            df = ppc.metrics[key]
            a, b = df[name].to_numpy(), df["Raw"].to_numpy()
            ok = np.isfinite(a) & np.isfinite(b)
            r[f"{col}_r"] = float(np.corrcoef(a[ok], b[ok])[0, 1])
            r[f"{col}_mae"] = float(np.abs(a[ok] - b[ok]).mean())
        rows.append(r)
    return pd.DataFrame(rows).set_index("method")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--no-scanvi", action="store_true")
    parser.add_argument("--scanvi-epochs", type=int, default=200)
    parser.add_argument("--scvi-epochs", type=int, default=None, help="default: scvi-tools' own")
    parser.add_argument("--simulated", action="store_true", help="also run on simulated counts")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "counts.json")
    args = parser.parse_args()
    import scvi

    scvi.settings.verbosity = logging.WARNING  # its INFO lines go to stdout, into the markdown table
    for name in ("scbranch", "scvi", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    adata = sb.datasets.pbmc68k_counts()
    results = {"pbmc68k_counts": run(adata, args, "pbmc68k counts")}
    if args.simulated:
        results["simulated_8_types"] = run(simulated_counts(), args, "simulated counts, 8-type tree")
    write_json(results, args.out)


if __name__ == "__main__":
    main()
