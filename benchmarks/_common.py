"""Shared benchmark plumbing: a stratified real-data split, one evaluation space, per-type quality."""

from __future__ import annotations

import inspect
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import scbranch as sb
from scbranch import metrics

GROUPBY = "bulk_labels"


def quiet_logs() -> None:
    """Only warnings from scbranch (it logs through scanpy) and Lightning: the benchmarks print tables."""
    import scanpy as sc

    sc.settings.verbosity = 1
    for name in ("lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fit(adata: ad.AnnData, **options) -> sb.BranchedDiffusion:
    """``sb.tl.fit`` with flat options (``width=``, ``branched=``, ``stop_tol=``, …) routed into its
    model_kwargs / train_kwargs, so benchmark configs stay one flat dict."""
    model, train, rest = sb.model.route(options, own=inspect.signature(sb.tl.fit).parameters)
    return sb.tl.fit(adata, **rest, model_kwargs=model, train_kwargs=train)


def split_pbmc(test_fraction: float = 0.3, random_state: int = 0) -> tuple[ad.AnnData, ad.AnnData]:
    """pbmc68k_reduced (.raw, log-normalized), split per type into train and held-out test cells."""
    return split_per_type(sb.datasets.pbmc68k(), test_fraction, random_state)


def split_per_type(adata: ad.AnnData, test_fraction: float = 0.3,
                   random_state: int = 0) -> tuple[ad.AnnData, ad.AnnData]:
    """Train and held-out test cells, ``test_fraction`` of every ``GROUPBY`` type (at least one) held out."""
    rng = np.random.default_rng(random_state)
    test = np.zeros(adata.n_obs, bool)
    for t in adata.obs[GROUPBY].unique():
        idx = np.flatnonzero(adata.obs[GROUPBY] == t)
        test[rng.choice(idx, max(1, round(test_fraction * len(idx))), replace=False)] = True
    return adata[~test].copy(), adata[test].copy()


def simulated_counts(random_state: int = 0) -> ad.AnnData:
    """Counts simulated from a known 8-type tree (400 … 20 cells a type, two rare), 300 genes, ``GROUPBY`` set."""
    sizes = {f"t{i}": s for i, s in enumerate([400, 300, 250, 200, 150, 100, 30, 20])}
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(8), n_cells=sizes, n_genes=300,
                                      random_state=random_state)
    adata.obs[GROUPBY] = adata.obs["cell_type"]
    return adata


class Evaluator:
    """Held-out real cells in a PCA space fitted on the real *training* cells; scores any gene-space cells."""

    def __init__(self, train: ad.AnnData, test: ad.AnnData, n_comps: int = 30):
        self.project = metrics.fit_eval_pca(np.asarray(train.X.todense() if hasattr(train.X, "todense") else train.X),
                                            n_comps)
        self.train, self.test = train, test
        self.z_test = self.project(_dense(test.X))
        self.y_test = test.obs[GROUPBY].astype(str).to_numpy()
        self.z_train = self.project(_dense(train.X))
        self.y_train = train.obs[GROUPBY].astype(str).to_numpy()

    def per_type(self, x_syn: np.ndarray, y_syn) -> pd.DataFrame:
        return metrics.per_type_quality(self.z_test, self.y_test, self.project(x_syn), y_syn)

    def floor(self) -> pd.DataFrame:
        """Real training cells vs real test cells: what a perfect generator would score."""
        return metrics.per_type_quality(self.z_test, self.y_test, self.z_train, self.y_train)


def _dense(x) -> np.ndarray:
    return np.asarray(x.todense()) if hasattr(x, "todense") else np.asarray(x)


@contextmanager
def timer(store: dict, key: str):
    t0 = time.perf_counter()
    yield
    store[key] = time.perf_counter() - t0


def print_mean_sd(df: pd.DataFrame, by: str, cols: list[str], label: str) -> None:
    """A markdown table of each column's mean ± sd over seeds, one row per value of ``by`` (in order seen)."""
    cols = [c for c in cols if c in df]
    g = df.groupby(by, sort=False)[cols]
    mean, sd = g.mean(), g.std()
    print(f"\n### {label}: mean ± sd over seeds {sorted(int(s) for s in df.seed.unique())}\n")
    print(f"| {by} | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name in mean.index:
        cells = ["–" if pd.isna(mean.loc[name, c]) else (f"{mean.loc[name, c]:.3g} ± {sd.loc[name, c]:.2g}"
                 if not pd.isna(sd.loc[name, c]) else f"{mean.loc[name, c]:.3g}") for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))


def data_arguments(parser, rows: list[str]) -> None:
    """The options every held-out benchmark shares: data sets, seeds, rows to run, the default rows' fit options."""
    parser.add_argument("--data", nargs="+", default=["zeisel", "human_kidney", "pbmc"],
                        choices=["zeisel", "human_kidney", "pbmc", "sim"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=rows, choices=rows)
    parser.add_argument("--fit-kwargs", type=json.loads, default={}, help="JSON of sb.tl.fit options (default rows)")
