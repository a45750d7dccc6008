"""Whole transcriptomes: time and peak memory per stage of ``fit`` + ``generate`` on wide sparse counts.

Sparse random counts (``--density`` non-zero, 12 % by default, as 10x data over all genes) of a few cell types
that differ in their gene means are written to .h5ad; each (cells, genes) point is then fitted in a fresh
process (so peak RSS is that point's alone), in memory, with default options except ``max_steps`` (training
on the ~30-component cells does not depend on the number of genes). Each stage's time and peak RSS are taken
around the call that does it: peak RSS is the process's high-water mark, reset at the start of each stage
(``/proc/self/clear_refs``), so a stage's figure is the most memory held while it ran, everything before
it included. Stages: read (``read_h5ad``), normalize (log-normalizing, also inside the representation),
representation (validation, normalization, PCA, projection of every cell), training (score network),
decoder (count decoder and libraries), generate (``--generate`` cells).

    .venv/bin/python benchmarks/wide.py [--quick] [--cells 5000 20000] [--genes 2000 20000] [--steps 200]
                                        [--decoder-steps 100] [--fit-kwargs '{"n_top_genes": "all"}'] [--backed]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

N_TYPES = 5


def simulate(n_cells: int, n_genes: int, density: float = 0.12, random_state: int = 0) -> ad.AnnData:
    """Poisson counts of ``N_TYPES`` types with lognormal gene means, each type up- or down-shifting a tenth of
    the genes; scaled so that about ``density`` of the entries are non-zero. Made in row blocks: never dense."""
    rng = np.random.default_rng(random_state)
    base = rng.lognormal(0.0, 1.5, n_genes)
    shift = np.ones((N_TYPES, n_genes))
    for k in range(N_TYPES):
        genes = rng.choice(n_genes, n_genes // 10, replace=False)
        shift[k, genes] = rng.choice([0.25, 4.0], len(genes))
    # mean scale c so that the average P(count > 0) = 1 - exp(-c·μ) is the density (bisection on log c)
    lo, hi = -20.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - np.exp(-np.exp(mid) * base * shift.mean(0))).mean() < density else (lo, mid)
    mu = np.exp(lo) * base * shift
    types = rng.integers(N_TYPES, size=n_cells)
    depth = rng.lognormal(0.0, 0.3, n_cells)
    blocks = []
    for start in range(0, n_cells, 2000):
        rows = slice(start, start + 2000)
        lam = mu[types[rows]] * depth[rows, None]
        blocks.append(sparse.csr_matrix(rng.poisson(lam).astype(np.float32)))
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{k}" for k in types])},
                       index=[f"c{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(sparse.vstack(blocks, format="csr"), obs=obs, var=var)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Stages:
    """Time and peak RSS of each named stage; nested stages are timed inclusively, and a nested stage's reset of
    the high-water mark first hands the mark so far to the stages around it."""

    def __init__(self):
        self.rows: dict[str, dict] = {}
        self.open: list[str] = []

    def _fold(self) -> None:
        peak = _peak_mb()
        for name in self.open:
            self.rows[name]["peak_mb"] = max(self.rows[name]["peak_mb"], peak)

    @contextmanager
    def __call__(self, name: str):
        self.rows.setdefault(name, {"s": 0.0, "peak_mb": 0.0, "calls": 0})
        self._fold()
        _reset_peak()
        self.open.append(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._fold()
            self.open.pop()
            self.rows[name]["s"] += time.perf_counter() - t0
            self.rows[name]["calls"] += 1

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            with self(name):
                return fn(*args, **kwargs)

        setattr(owner, attr, wrapped)


def child(path: str, steps: int, n_generate: int, decoder_steps: int = 0, fit_kwargs: str = "{}",
          backed: int = 0) -> dict:
    import scbranch as sb
    from scbranch import _normalize
    from scbranch.model import _model, _setup
    from scbranch.representation import _nb_decoder

    if decoder_steps:  # the count decoder's time grows with steps × genes; its memory does not
        _nb_decoder.STEP_RANGE = (decoder_steps, decoder_steps)

    import scanpy as sc

    sc.settings.verbosity = 1  # scbranch logs through scanpy: warnings only
    stages = Stages()
    stages.wrap(_normalize, "lognorm", "normalize")
    stages.wrap(_setup, "represent", "representation")
    stages.wrap(_model.BranchedDiffusion, "train_arrays", "training")
    stages.wrap(_model.BranchedDiffusion, "fit_decoder", "decoder")
    with stages("read"):
        adata = ad.read_h5ad(path, backed="r" if backed else None)
    with stages("fit"):
        model = sb.tl.fit(adata, groupby="cell_type", max_steps=steps or None, progress=False,
                          model_kwargs=json.loads(fit_kwargs))
    with stages("generate"):
        syn = sb.tl.generate(model, n_generate // len(model.types), progress=False)
    if backed:  # the matrix stays on disk: its CSR arrays' sizes from the file
        import h5py

        with h5py.File(path, "r") as f:
            csr_mb = sum(f["X"][k].size * f["X"][k].dtype.itemsize for k in ("data", "indices", "indptr")) / 2**20
    else:
        csr_mb = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    genes = getattr(model.representation, "genes_", None)  # the model space's highly variable genes
    return {"n_cells": adata.n_obs, "n_genes": adata.n_vars, "csr_mb": csr_mb, "stages": stages.rows,
            "backed": bool(backed), "n_steps": model.history.get("n_steps"),
            "n_model_genes": adata.n_vars if genes is None else len(genes),
            "synthetic_sparse": bool(sparse.issparse(syn.layers["counts"])) if "counts" in syn.layers else None}


def run_point(n_cells: int, n_genes: int, args, tmp: Path) -> dict:
    path = tmp / f"wide_{n_cells}_{n_genes}.h5ad"
    if not path.exists():
        simulate(n_cells, n_genes, args.density).write_h5ad(path)
    cmd = [sys.executable, __file__, "--child", str(path), str(args.steps), str(args.generate),
           str(args.decoder_steps), json.dumps(args.fit_kwargs), str(int(args.backed))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path.unlink()
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


STAGE_ORDER = ("read", "normalize", "representation", "training", "decoder", "generate", "fit")


def print_row(r: dict) -> None:
    cells = " | ".join(f"{r['stages'][s]['s']:7.1f} s {r['stages'][s]['peak_mb']:7.0f} MB" if s in r["stages"]
                       else f"{'–':>18}" for s in STAGE_ORDER)
    where = "backed" if r.get("backed") else "memory"
    print(f"| {r['n_cells']:>9,} {where} | {r['n_genes']:>6,} | {r['n_model_genes']:>6,} | {r['csr_mb']:6.0f} MB | "
          f"{r['n_steps']} | {cells} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, nargs="+", default=[5000, 10000, 20000])
    p.add_argument("--genes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    p.add_argument("--density", type=float, default=0.12)
    p.add_argument("--steps", type=int, default=200,
                   help="score-network steps (training is not the subject; 0: fit's default and stopping rule)")
    p.add_argument("--generate", type=int, default=5000, help="synthetic cells generated")
    p.add_argument("--quick", action="store_true", help="2,000 cells × 2,000 and 5,000 genes")
    p.add_argument("--decoder-steps", type=int, default=0,
                   help="count-decoder steps (0: the default, 500-3,000); fewer shorten the run, not the memory")
    p.add_argument("--fit-kwargs", type=json.loads, default={},
                   help='JSON of model_kwargs, e.g. \'{"n_top_genes": "all"}\' (every gene in the model space)')
    p.add_argument("--backed", action="store_true", help="read the .h5ad backed (the matrix stays on disk)")
    p.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], *map(int, args.child[1:4]), args.child[4], int(args.child[5]))))
        return
    if args.quick:
        args.cells, args.genes, args.generate = [2000], [2000, 5000], 1000
    print("| cells | genes | model genes | CSR | score-net steps | "
          + " | ".join(f"{s} (time, peak RSS)" for s in STAGE_ORDER) + " |")
    print("|" + "---|" * (5 + len(STAGE_ORDER)))
    with tempfile.TemporaryDirectory() as tmp:
        for n_cells in args.cells:
            for n_genes in args.genes:
                print_row(run_point(n_cells, n_genes, args, Path(tmp)))


if __name__ == "__main__":
    main()
