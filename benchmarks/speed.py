"""Speed: network evaluations and wall time to generate every type, branched vs flat, measured in one run;
and training time per epoch vs number of cells, with scVI's on the same cells as reference.

Sampling: for K = 4, 8, 16, 32 types (cells simulated from balanced trees) and pbmc68k_reduced, one branched
and one flat model (same network, same short training: quality is not the point here, branch times come from
the data) generate N cells of every type with DDIM (200 uniform steps) and DPM-Solver-2 (25 log-SNR steps).
Training: steps/second on 1k → 100k simulated cells, converted to seconds per epoch (n / batch steps), and
one epoch of scvi-tools' SCVI on the same counts. Prints markdown tables, writes JSON.

    .venv/bin/python benchmarks/speed.py [--n-per-type 200] [--ks 4 8 16 32] [--cells 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from _common import GROUPBY, write_json

import scbranch as sb

SAMPLING = [("ddim", 200, "uniform"), ("dpm_solver_2", 25, "logsnr")]


def sampling_row(name, adata, groupby, n_per_type, steps):
    out = {"data": name, "types": int(adata.obs[groupby].nunique())}
    models = {b: sb.tl.fit(adata.copy(), groupby=groupby, max_steps=steps, progress=False, model_kwargs={"branched": b})
              for b in (True, False)}
    for sampler, n_steps, spacing in SAMPLING:
        for b, model in models.items():
            sb.tl.generate(model, 5, sampler=sampler, n_steps=4, progress=False)  # warm-up
            t0 = time.perf_counter()
            st = sb.tl.generate(model, n_per_type, sampler=sampler, n_steps=n_steps, spacing=spacing,
                                progress=False).uns["scbranch"]["generate"]
            key = f"{sampler}_{'branched' if b else 'flat'}"
            out[key] = {"nfe": st["nfe"], "n_evals": st["n_evals"], "seconds": time.perf_counter() - t0}
    return out


def train_row(n_cells, steps=100):
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(8), n_cells=n_cells // 8, n_genes=200)
    model = sb.tl.fit(adata.copy(), groupby="cell_type", max_steps=5, progress=False)  # setup + hierarchy
    z, y = model.get_latent(adata), adata.obs["cell_type"].astype(str).to_numpy()
    t0 = time.perf_counter()
    model.train_arrays(z, y, max_steps=steps, progress=False)
    per_step = (time.perf_counter() - t0) / steps
    row = {"cells": n_cells, "seconds_per_step": per_step, "seconds_per_epoch": per_step * np.ceil(0.9 * n_cells / 256)}
    try:
        import scvi

        counts = adata.copy()
        scvi.model.SCVI.setup_anndata(counts)
        vae = scvi.model.SCVI(counts)
        t0 = time.perf_counter()
        vae.train(max_epochs=1, enable_progress_bar=False)
        row["scvi_seconds_per_epoch"] = time.perf_counter() - t0
    except Exception as err:  # report, don't hide: the row says why scVI is missing
        row["scvi_error"] = repr(err)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-type", type=int, default=200)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--cells", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--train-steps", type=int, default=300, help="training steps of the sampling models")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()
    for name in ("scbranch", "scvi", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    rows = []
    for k in args.ks:
        adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(k), n_cells=150, n_genes=200, random_state=k)
        rows.append(sampling_row(f"simulated K={k}", adata, "cell_type", args.n_per_type, args.train_steps))
    rows.append(sampling_row("pbmc68k_reduced", sb.datasets.pbmc68k(), GROUPBY, args.n_per_type, args.train_steps))
    print(f"\n### Generating {args.n_per_type} cells of every type: branched (shared tree walk) vs flat\n")
    print("| data | types | sampler | NFE branched | NFE flat | NFE saved | cell-rows saved | s branched | s flat "
          "| time ratio |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for sampler, n_steps, spacing in SAMPLING:
            b, f = r[f"{sampler}_branched"], r[f"{sampler}_flat"]
            print(f"| {r['data']} | {r['types']} | {sampler} {n_steps} ({spacing}) | {b['nfe']} | {f['nfe']} | "
                  f"{1 - b['nfe'] / f['nfe']:.0%} | {1 - b['n_evals'] / f['n_evals']:.0%} | {b['seconds']:.2f} | "
                  f"{f['seconds']:.2f} | {b['seconds'] / f['seconds']:.2f} |")
    train_rows = [train_row(n) for n in args.cells]
    print("\n### Training time vs number of cells (width 256, batch 256; 2 CPU cores)\n")
    print("| cells | s/step | s/epoch scbranch | s/epoch scVI (1 epoch, defaults) |")
    print("|---:|---:|---:|---:|")
    for r in train_rows:
        print(f"| {r['cells']} | {r['seconds_per_step']:.4f} | {r['seconds_per_epoch']:.1f} | "
              f"{r.get('scvi_seconds_per_epoch', float('nan')):.1f} |")
    write_json({"sampling": rows, "training": train_rows}, args.out)


if __name__ == "__main__":
    main()
