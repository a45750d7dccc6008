"""Realism of synthetic cells on held-out real cells, cell by cell and gene by gene, next to the floors.

Data sets (each a stratified 70/30 split per type, per seed): zeisel (mouse brain, 3,005 cells × 4,000 genes,
7 types) and human_kidney (5,685 × 2,000, 11 types), raw counts read through ``data_manifests/`` from
``../shared/data/`` (or ``--data-dir``); pbmc68k_reduced's recovered counts (700 cells, 10 types); simulated
counts from an 8-type tree. Every generator makes each type's training count of cells. Rows:

- real floor: the real training cells themselves (what a perfect generator scores);
- decoder floor: ``model.reconstruct(train)``, decode(encode(real training cells)), for the default and for
  ``representation="scvi"`` (the best any diffusion in that model space can reach);
- scbranch default, flat (``branched=False``), ``representation="scvi"`` (on the scVI model of the next row);
- scVI posterior predictive of the training cells (it copies them: an upper bound for "copying" generators);
- per-type Gaussian and the plain MLP diffusion peer, both in the evaluation PCA (no decoding: scored there).

Cell-level scores in a 30-PC space fitted on the real training cells: per-type MMD with per-type bandwidths
fixed across methods (the real cells' median distance), kNN two-sample AUC (0.5 ideal, equal sample sizes),
train-on-synthetic accuracy on held-out cells (``tstr``); the same for the rare types (< 50 training cells)
apart. Gene-level (counts-based rows): fraction-expressing MAE, variance log2 ratio, top-20 marker overlap,
kNN mixing, over all genes and, for scbranch rows whose model space was fitted on highly variable genes
(``--fit-kwargs '{"n_top_genes": 2000}'``), over those genes apart (``*_hvg``). Prints mean ± sd over seeds as
markdown and writes JSON.

    .venv/bin/python benchmarks/realism.py [--data zeisel human_kidney pbmc sim] [--seeds 0 1 2]
        [--rows default flat ...] [--fit-kwargs '{"n_comps": 50}'] [--peer-steps 12000] [--scvi-epochs 200]
        [--generate-variants '{"EM-200": {"n_steps": 200}}']
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
from _common import (
    GROUPBY,
    Evaluator,
    _dense,
    data_arguments,
    fit,
    print_mean_sd,
    quiet_logs,
    simulated_counts,
    split_per_type,
)
from _common import write_json as _write_json
from scipy import sparse

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in

RARE_CELLS = 50
ROWS = ["real", "decoder_floor", "default", "flat", "scvi", "scvi_decoder_floor", "scvi_posterior", "gaussian",
        "peer"]
CELL_KEYS = ["mmd", "auc_knn", "tstr", "rare_mmd", "rare_auc_knn"]
GENE_KEYS = ["expressing_mae", "var_log2_ratio", "marker_overlap", "knn_mixing"]
HVG_KEYS = [f"{k}_hvg" for k in GENE_KEYS]  # the same over the model's highly variable genes only
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str, data_dir: Path) -> ad.AnnData:
    """Raw counts in ``.X`` and the label column copied to ``GROUPBY``."""
    if name == "sim":
        return simulated_counts()
    if name == "pbmc":
        adata = sb.datasets.pbmc68k_counts()
        return ad.AnnData(adata.X, obs=adata.obs[[GROUPBY]].copy(), var=pd.DataFrame(index=adata.var_names))
    adata = sb.datasets.load(name, data_dir=data_dir)
    adata.X = sparse.csr_matrix(adata.X)
    adata.obs[GROUPBY] = adata.obs[sb.datasets.manifests()[name]["label_key"]].astype(str).astype("category")
    return adata


def lognorm(x) -> np.ndarray:
    return sb._normalize.to_lognorm(_dense(x), "counts")


class Scorer:
    """Every generator's cells scored against the same held-out cells, in the same space, with the same kernels."""

    def __init__(self, train: ad.AnnData, test: ad.AnnData, seed: int):
        tr, te = train.copy(), test.copy()
        tr.X, te.X = lognorm(train.X), lognorm(test.X)
        self.ev, self.seed = Evaluator(tr, te), seed
        self.x_test, self.var_names = _dense(te.X), train.var_names
        sizes = pd.Series(self.ev.y_train).value_counts()
        self.rare = [t for t in sizes.index if sizes[t] < RARE_CELLS]
        self.scales = metrics.mmd_scales(self.ev.z_test, self.ev.y_test)

    def __call__(self, method: str, y_syn, *, x_syn=None, z_syn=None, genes=None, **extra) -> dict:
        ev, y_syn = self.ev, np.asarray(y_syn, str)
        z_syn = ev.project(x_syn) if z_syn is None else z_syn
        tab = metrics.per_type_quality(ev.z_test, ev.y_test, z_syn, y_syn, mmd_scales=self.scales,
                                       random_state=self.seed)
        row = {"method": method, "seed": self.seed, "mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean(),
               "tstr": metrics.train_synthetic_test_real(z_syn, y_syn, ev.z_test, ev.y_test)["tstr"], **extra}
        rare = tab.loc[tab.index.isin(self.rare)]
        if len(rare):
            row |= {"rare_mmd": rare["mmd"].mean(), "rare_auc_knn": rare["auc_knn"].mean()}
        if x_syn is not None:
            g = metrics.gene_level_quality(self.x_test, ev.y_test, x_syn, y_syn, var_names=self.var_names,
                                           groupby=GROUPBY, random_state=self.seed)
            row |= {k: g[k] for k in GENE_KEYS}
            if genes is not None:  # the model genes apart
                g = metrics.gene_level_quality(self.x_test[:, genes], ev.y_test, x_syn[:, genes], y_syn,
                                               var_names=self.var_names[genes], groupby=GROUPBY,
                                               random_state=self.seed)
                row |= {f"{k}_hvg": g[k] for k in GENE_KEYS}
        return row


def run_one(adata: ad.AnnData, seed: int, args) -> list[dict]:
    train, test = split_per_type(adata, random_state=seed)
    score = Scorer(train, test, seed)
    y_tr = score.ev.y_train
    sizes = pd.Series(y_tr).value_counts().to_dict()
    want, rows = set(args.rows), []
    if "real" in want:
        rows.append(score("real floor (training cells)", y_tr, x_syn=lognorm(train.X)))

    def scbranch_rows(label, floor_label, generate_variants=None, **options):
        t0 = time.perf_counter()
        model = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False, **options)
        fit_s = time.perf_counter() - t0
        genes = getattr(model.representation, "genes_", None)  # highly variable genes, when fitted on them
        if floor_label:
            rec = model.reconstruct(train, random_state=seed)
            rows.append(score(floor_label, rec.obs[GROUPBY].astype(str), x_syn=_dense(lognorm_of(rec)), genes=genes))
        if label:
            # the row itself, then any --generate-variants of the same fitted model (paired: one fit, one split)
            more = [(f"{label}, {k}", v) for k, v in (generate_variants or {}).items()]
            for name, kwargs in [(label, {}), *more]:
                t0 = time.perf_counter()
                syn = sb.tl.generate(model, sizes, random_state=seed, progress=False, **kwargs)
                rows.append(score(name, syn.obs[GROUPBY].astype(str), x_syn=_dense(lognorm_of(syn)), fit_s=fit_s,
                                  generate_s=time.perf_counter() - t0, genes=genes))

    if want & {"default", "decoder_floor"}:
        scbranch_rows("default" in want and "scbranch default", "decoder_floor" in want and "decoder floor: default",
                      generate_variants=args.generate_variants, **args.fit_kwargs)
    if "flat" in want:
        scbranch_rows("scbranch flat (branched=False)", None, branched=False, **args.fit_kwargs)
    if want & {"scvi", "scvi_decoder_floor", "scvi_posterior"}:
        vae, scvi_s = train_scvi(train, seed, args.scvi_epochs)
        if "scvi_posterior" in want:
            x = vae.posterior_predictive_sample(n_samples=1)
            x = x.todense() if hasattr(x, "todense") else x
            rows.append(score("scVI posterior predictive (of the training cells)", y_tr,
                              x_syn=lognorm(np.asarray(x).reshape(len(y_tr), -1)), fit_s=scvi_s))
        if want & {"scvi", "scvi_decoder_floor"}:
            scbranch_rows("scvi" in want and 'scbranch representation="scvi"',
                          "scvi_decoder_floor" in want and 'decoder floor: representation="scvi"',
                          representation="scvi", scvi_model=vae)
    if "gaussian" in want:
        z, y = gaussian_per_type_sizes(score.ev.z_train, y_tr, sizes, seed)
        rows.append(score("per-type Gaussian (eval PCA)", y, z_syn=z))
    if "peer" in want and args.peer_steps:
        t0 = time.perf_counter()
        z, y = mlp_diffusion(score.ev.z_train, y_tr, sizes, steps=args.peer_steps, random_state=seed)
        rows.append(score("plain MLP diffusion peer (eval PCA)", y, z_syn=z, fit_s=time.perf_counter() - t0))
    return rows


def gaussian_per_type_sizes(z, y, sizes: dict, seed: int):
    parts = [gaussian_per_type(z[y == t], y[y == t], n, random_state=seed) for t, n in sizes.items()]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train_scvi(train: ad.AnnData, seed: int, epochs: int):
    import scvi

    scvi.settings.seed = seed
    adata = ad.AnnData(sparse.csr_matrix(train.X), obs=train.obs[[GROUPBY]].copy(), var=train.var[[]].copy())
    scvi.model.SCVI.setup_anndata(adata)
    t0 = time.perf_counter()
    vae = scvi.model.SCVI(adata, n_latent=10)
    vae.train(max_epochs=epochs, enable_progress_bar=False, accelerator="cpu")
    return vae, time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_arguments(parser, ROWS)
    parser.add_argument("--generate-variants", type=json.loads, default={},
                        help='JSON {name: generate options}: more rows from the default row\'s fitted model, e.g. '
                             '\'{"EM-200": {"n_steps": 200}}\' (paired with it: same fit, same split)')
    parser.add_argument("--peer-steps", type=int, default=12000)
    parser.add_argument("--scvi-epochs", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realism.json")
    args = parser.parse_args()
    quiet_logs()
    results = {}
    for name in args.data:
        adata = load(name, args.data_dir)
        df = pd.DataFrame([r for s in args.seeds for r in run_one(adata, s, args)])
        print_mean_sd(df, "method", [*CELL_KEYS, *GENE_KEYS, *HVG_KEYS, "fit_s", "generate_s"],
                      f"{name} ({adata.n_obs} cells × {adata.n_vars} genes, {adata.obs[GROUPBY].nunique()} types)")
        results[name] = df.to_dict("list")
        _write_json(results, args.out)


if __name__ == "__main__":
    main()
