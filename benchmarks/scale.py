"""Scaling: fit time per epoch, peak memory and sampling time from 10k to 1M simulated cells.

Counts are simulated from a known 8-type tree (100 genes), written to .h5ad, and fitted in a fresh process
(peak RSS = that process's high-water mark) read **backed** (``read_h5ad(path, backed="r")``: validated,
PCA-fitted incrementally and projected in 10k-cell chunks) and, up to 100k cells, in memory. Training is
budgeted in steps on the 30-component cells, so its cost per step does not depend on the number of cells:
time per epoch = steps per epoch (cells / batch 256) × measured seconds per step, plus the one pass over the
data that the chunked representation makes. ``--target`` adds issue 5's check: fit 10k cells × 50
components with default settings, generate 10k cells.

    .venv/bin/python benchmarks/scale.py [--sizes 10000 100000 1000000] [--steps 300] [--target]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
from _common import write_json

import scbranch as sb


def child(path: str, backed: bool, steps: int | None, n_comps: int, sample: int) -> dict:
    import scanpy as sc

    sc.settings.verbosity = 1  # scbranch logs through scanpy: warnings only
    t0 = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r" if backed else None)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = sb.tl.fit(adata, groupby="cell_type", n_comps=n_comps, max_steps=steps, progress=False)
    t_fit = time.perf_counter() - t0
    h = model.history
    out = {"n_cells": adata.n_obs, "backed": backed, "read_s": t_read, "fit_s": t_fit, "train_s": h["seconds"],
           "steps": int(h["n_steps"]), "s_per_step": h["seconds"] / int(h["n_steps"]),
           "data_pass_s": t_fit - h["seconds"]}
    for sampler, n_steps in (("euler_maruyama", 50), ("dpm_solver_2", 25)) if sample else ():
        t0 = time.perf_counter()
        sb.tl.generate(model, sample // len(model.types), sampler=sampler, n_steps=n_steps, progress=False)
        out[f"sample_{sampler}_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(*args) -> dict:
    cmd = [sys.executable, __file__, "--child", *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def simulate(n: int, n_genes: int, path: Path) -> None:
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(8), n_cells=n // 8, n_genes=n_genes,
                                      random_state=0)
    adata.write_h5ad(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--genes", type=int, default=100)
    parser.add_argument("--sample", type=int, default=100_000, help="cells to generate (at the smallest size)")
    parser.add_argument("--target", action="store_true", help="also fit 10k cells x 50 comps with defaults")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scbranch_scale"))
    parser.add_argument("--child", nargs=5, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    args = parser.parse_args()
    if args.child:
        path, backed, steps, n_comps, sample = args.child
        print(json.dumps(child(path, backed == "1", None if steps == "0" else int(steps), int(n_comps),
                               int(sample)), default=float))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, n in enumerate(args.sizes):
        path = args.workdir / f"sim_{n}.h5ad"
        t0 = time.perf_counter()
        if not path.exists():
            simulate(n, args.genes, path)
        print(f"simulated {n} cells in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        for backed in (1, 0) if n <= 100_000 else (1,):
            r = run_child(path, backed, args.steps, 30, args.sample if i == 0 and backed else 0)
            r["epoch_s"] = np.ceil(0.9 * n / 256) * r["s_per_step"] + r["data_pass_s"]
            rows.append(r)
            print(json.dumps(r, default=float), file=sys.stderr, flush=True)
    print(f"\n### Scaling ({args.genes} genes, 8 types, 30 PCs; training {args.steps} steps, batch 256)\n")
    print("| cells | input | data pass s | s/step | epoch s | peak RSS MB |\n|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n_cells']:,} | {'backed' if r['backed'] else 'in memory'} | {r['data_pass_s']:.1f} | "
              f"{r['s_per_step']:.3f} | {r['epoch_s']:.0f} | {r['peak_rss_mb']:.0f} |")
    first = rows[0]
    if "sample_euler_maruyama_s" in first:
        print(f"\nGenerating {args.sample:,} cells (8 types): Euler-Maruyama 50 steps (default) "
              f"{first['sample_euler_maruyama_s']:.1f} s, "
              f"DPM-Solver-2 25 steps {first['sample_dpm_solver_2_s']:.1f} s")
    result = {"rows": rows}
    if args.target:
        path = args.workdir / "sim_10000.h5ad"
        if not path.exists():
            simulate(10_000, args.genes, path)
        t = run_child(path, 0, 0, 50, 10_000)
        result["target_10k_50comps"] = t
        print(f"\nfit 10k cells x 50 comps, default settings: {t['fit_s']:.0f} s ({t['steps']} steps, "
              f"{t['s_per_step'] * 1000:.0f} ms/step); generate 10k cells: EM-50 {t['sample_euler_maruyama_s']:.1f} s, "
              f"DPM-Solver-2-25 {t['sample_dpm_solver_2_s']:.1f} s")
    write_json(result, args.out)


if __name__ == "__main__":
    main()
