"""Gene-by-gene realism of synthetic cells on held-out real cells, over several seeds, next to the real floor.

For each data set (pbmc68k_reduced: log-normalized, counts recoverable; simulated counts from an 8-type tree)
and seed: a stratified 70/30 split per type; scbranch with its defaults generates each type's training count
of cells. Its synthetic cells are decoded twice from the same model-space cells: by the default count decoder,
and by the residual + hurdle decoder used when the input holds no counts. The plain MLP diffusion peer
(``_baselines.mlp_diffusion``) is trained in the evaluation PCA space and scored there only. The floor is
real training vs real held-out cells. Scores (``scbranch.metrics``): per-type MMD and kNN two-sample AUC in a
30-PC space of the real training cells; fraction-expressing MAE, variance log2 ratio, mean r, top-20 marker
overlap, HVG overlap, correlation error (top 100 HVGs), kNN mixing (1 = ideal) against the held-out cells;
the same gene-level scores for the rare types (< 50 training cells) alone. Prints markdown, writes JSON.

    .venv/bin/python benchmarks/realism.py [--seeds 0 1 2] [--data pbmc sim] [--peer-steps 12000]
        [--fit-kwargs '{"dropout": 0}' --only-scbranch]   # a candidate setting, scbranch rows only
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _baselines import mlp_diffusion
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

import scbranch as sb
from scbranch import metrics
from scbranch.representation import DecoderData

GENE_KEYS = ["expressing_mae", "var_log2_ratio", "mean_r", "marker_overlap", "hvg_overlap", "corr_error",
             "knn_mixing"]
RARE_CELLS = 50


def lognorm(a) -> np.ndarray:
    x = _dense(a.X)
    return sb._anndata.to_lognorm(x, "counts") if np.all(np.mod(x, 1) == 0) else x


def score(name, ev, x_syn, y_syn, x_te, y_te, rare, var_names, z_syn=None) -> dict:
    tab = metrics.per_type_quality(ev.z_test, ev.y_test, ev.project(x_syn) if z_syn is None else z_syn, y_syn)
    row = {"method": name, "mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean()}
    if x_syn is not None:
        g = metrics.gene_level_quality(x_te, y_te, x_syn, y_syn, var_names=var_names, groupby=GROUPBY)
        row.update({k: g[k] for k in GENE_KEYS})
        row["frac_nonzero"] = g["frac_nonzero_syn"]
        keep_r, keep_s = np.isin(y_te, rare), np.isin(y_syn, rare)
        if keep_r.any() and len(rare) >= 2:
            r = metrics.gene_level_quality(x_te[keep_r], y_te[keep_r], x_syn[keep_s], y_syn[keep_s],
                                           var_names=var_names, groupby=GROUPBY)
            row.update({f"rare_{k}": r[k] for k in ("expressing_mae", "var_log2_ratio", "knn_mixing")})
    return row


def run_one(adata, seed: int, args) -> list[dict]:
    train, test = split_per_type(adata, random_state=seed)
    train_ln = train.copy()
    train_ln.X = lognorm(train)
    test_ln = test.copy()
    test_ln.X = lognorm(test)
    ev = Evaluator(train_ln, test_ln)
    x_te, y_te = _dense(test_ln.X), test_ln.obs[GROUPBY].astype(str).to_numpy()
    x_tr, y_tr = _dense(train_ln.X), train_ln.obs[GROUPBY].astype(str).to_numpy()
    sizes = pd.Series(y_tr).value_counts()
    rare = [t for t in sizes.index if sizes[t] < RARE_CELLS]
    rows = [score("real train vs real test (floor)", ev, x_tr, y_tr, x_te, y_te, rare, train.var_names)]

    t0 = time.perf_counter()
    model = fit(train.copy(), groupby=GROUPBY, random_state=seed, progress=False, **args.fit_kwargs)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    syn = sb.tl.generate(model, sizes.to_dict(), random_state=seed, progress=False)
    gen_s = time.perf_counter() - t0
    y_syn = syn.obs[GROUPBY].astype(str).to_numpy()
    name = f"scbranch {json.dumps(args.fit_kwargs)}" if args.fit_kwargs else "scbranch default (count decoder)"
    row = score(name, ev, _dense(syn.X), y_syn, x_te, y_te, rare, train.var_names)
    rows.append({**row, "fit_s": fit_s, "generate_s": gen_s,
                 "nonzero_counts": float((_dense(syn.layers["counts"]) > 0).mean())})

    if args.only_scbranch:
        return _tag(rows, seed)
    # the same model-space cells through the decoder used when the input holds no counts
    rep = copy.deepcopy(model.representation)
    rep.counts_decoder = rep.libraries = None
    rep.fit_decoder(DecoderData(model.get_lognorm(train), y_tr, None), random_state=seed)
    x_nc = rep.decode(syn.obsm["X_scbranch"], y_syn, random_state=seed).X
    rows.append(score("scbranch, input without counts (residual + hurdle decoder)", ev, _dense(x_nc), y_syn,
                      x_te, y_te, rare, train.var_names))
    # the decoder every input got before the count decoder: loadings + Gaussian residual, clipped at 0 (no hurdle)
    rep.residual_decoder.threshold[:] = -np.inf
    x_old = rep.decode(syn.obsm["X_scbranch"], y_syn, random_state=seed).X
    rows.append(score("previous default decoder (loadings + Gaussian residual)", ev, _dense(x_old), y_syn,
                      x_te, y_te, rare, train.var_names))
    if args.peer_steps == 0:
        return _tag(rows, seed)

    t0 = time.perf_counter()
    z_peer, y_peer = mlp_diffusion(ev.z_train, y_tr, sizes.to_dict(), steps=args.peer_steps, random_state=seed)
    rows.append({**score("plain MLP diffusion peer (eval PCA space)", ev, None, y_peer, x_te, y_te, rare,
                         train.var_names, z_syn=z_peer), "fit_s": time.perf_counter() - t0})
    return _tag(rows, seed)


def _tag(rows: list[dict], seed: int) -> list[dict]:
    for r in rows:
        r["seed"] = seed
    return rows


def print_table(df: pd.DataFrame, label: str) -> None:
    cols = ["mmd", "auc_knn", *GENE_KEYS, "frac_nonzero", "rare_expressing_mae", "rare_var_log2_ratio",
            "rare_knn_mixing", "fit_s"]
    print_mean_sd(df, "method", cols, label)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["pbmc", "sim"], choices=["pbmc", "sim"])
    parser.add_argument("--peer-steps", type=int, default=12000, help="0: no peer")
    parser.add_argument("--fit-kwargs", type=json.loads, default={}, help="JSON of extra sb.tl.fit options")
    parser.add_argument("--only-scbranch", action="store_true", help="skip the no-counts decoder and the peer")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realism.json")
    args = parser.parse_args()
    quiet_logs()
    data = {"pbmc": ("pbmc68k_reduced (log-normalized .raw, counts recovered)", sb.datasets.pbmc68k),
            "sim": ("simulated counts, 8-type tree (300 genes)", simulated_counts)}
    results = {}
    for key in args.data:
        label, load = data[key]
        adata = load()
        df = pd.DataFrame([r for s in args.seeds for r in run_one(adata, s, args)])
        print_table(df, label)
        results[key] = df.to_dict("list")
        write_json(results, args.out)


if __name__ == "__main__":
    main()
