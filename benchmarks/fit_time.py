"""Fit time vs held-out quality: the stopping rule's calibration and a network-size sweep, on 2 CPU cores.

Two parts, each over seeds, on pbmc68k_reduced (700 cells, 10 types) and 10k simulated count cells (8-type tree,
unequal sizes), each split 70/30 per type; synthetic cells (the training count per type) are scored on the
held-out cells in a 30-PC space of the real training cells (per-type MMD, kNN two-sample AUC, TSTR accuracy).

``--part stop``: one long run per seed with the stopping rule off (``stop_tol=0``), the EMA weights kept at every
validation check and scored every ``--eval-every`` steps; then each (tol, window) of the rule is replayed on the
run's validation curve, and the table gives where it would have stopped and the quality there vs at the cap.

``--part sweep``: each configuration (width, blocks, batch, LR, schedule) fitted with the default stopping rule:
steps run, ms per step, fit seconds, quality. ``--previous`` adds the previous default (width 256, dropout 0.1,
one-cycle LR over 6 steps per cell in [3,000, 12,000], no stopping rule; slow: ~3 min a pbmc68k fit).

    .venv/bin/python benchmarks/fit_time.py --part stop [--data pbmc sim] [--seeds 0 1 2]
    .venv/bin/python benchmarks/fit_time.py --part sweep [--data pbmc] [--configs '[{"width": 64}]']

Run it alone: two torch processes on 2 cores slow each other by far more than 2×.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
from _common import GROUPBY, Evaluator, _dense, print_mean_sd, quiet_logs, split_per_type, write_json
from _common import fit as fit_options

import scbranch as sb
from scbranch import metrics
from scbranch.model import lognorm_of  # syn.X holds counts after counts in
from scbranch.model._training import STOP_WINDOW, StopRule

PREVIOUS_DEFAULT = {
    "width": 256,
    "n_blocks": 3,
    "dropout": 0.1,
    "train_kwargs": {"schedule": "onecycle", "stop_tol": 0},
    "old_budget": True,
}
CONFIGS = [
    {"width": 128, "n_blocks": 3},
    {"width": 64, "n_blocks": 3},
    {"width": 256, "n_blocks": 3},
    {"width": 128, "n_blocks": 2},
    {"width": 128, "n_blocks": 3, "batch_size": 512, "lr": 2.8e-3},
]
DEFAULTS = {k: v.default for k, v in inspect.signature(sb.tl.fit).parameters.items()
            if k in ("width", "n_blocks", "dropout")}
RULES = [(0.002, 1000), (0.005, 500), (0.005, 1000), (0.01, 500), (0.01, 1000), (0.02, 1000)]


def simulated_10k(random_state: int = 0):
    shares = np.array([0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04])
    sizes = {f"t{i}": int(s * 10_000) for i, s in enumerate(shares)}
    adata = sb.simulate.simulate_tree(sb.simulate.balanced_tree(8), n_cells=sizes, n_genes=200,
                                      random_state=random_state)
    adata.obs[GROUPBY] = adata.obs["cell_type"]
    return adata


DATA = {"pbmc": ("pbmc68k_reduced", sb.datasets.pbmc68k), "sim": ("10k simulated counts, 8 types", simulated_10k)}


class Snapshots(pl.Callback):
    """The EMA weights at every validation check, by step."""

    def __init__(self):
        self.states = {}

    def on_validation_end(self, trainer, task):
        if not trainer.sanity_checking:
            self.states[trainer.global_step] = {k: v.detach().cpu().clone() for k, v in task.ema.state_dict().items()}


class Scorer:
    def __init__(self, train, test):
        def lognorm(a):
            x = _dense(a.X)
            return sb._normalize.to_lognorm(x, "counts") if np.all(np.mod(x, 1) == 0) else x

        tr, te = train.copy(), test.copy()
        tr.X, te.X = lognorm(train), lognorm(test)
        self.ev = Evaluator(tr, te)
        self.sizes = train.obs[GROUPBY].value_counts().to_dict()

    def __call__(self, model, seed: int) -> dict:
        syn = sb.tl.generate(model, self.sizes, random_state=seed, progress=False)
        y = syn.obs[GROUPBY].astype(str).to_numpy()
        z = self.ev.project(_dense(lognorm_of(syn)))
        tab = metrics.per_type_quality(self.ev.z_test, self.ev.y_test, z, y)
        tstr = metrics.train_synthetic_test_real(z, y, self.ev.z_test, self.ev.y_test)["tstr"]
        return {"mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean(), "tstr": tstr}

    def floor(self) -> dict:
        tab = self.ev.floor()
        tstr = metrics.train_synthetic_test_real(self.ev.z_train, self.ev.y_train, self.ev.z_test,
                                                 self.ev.y_test)["tstr"]
        return {"mmd": tab["mmd"].mean(), "auc_knn": tab["auc_knn"].mean(), "tstr": tstr}


def fit(train, seed: int, config: dict, callbacks=()):
    config = dict(config)
    kwargs = {k: v for k, v in config.items() if k != "old_budget"}
    if config.get("old_budget"):
        kwargs["max_steps"] = int(np.clip(6 * train.n_obs, 3000, 12000))
    kwargs.setdefault("dropout", 0.0)
    t0 = time.perf_counter()
    model = fit_options(train.copy(), groupby=GROUPBY, random_state=seed, progress=False,
                      trainer_kwargs={"callbacks": list(callbacks)}, **kwargs)
    h = model.history
    return model, {"fit_s": time.perf_counter() - t0, "steps": int(h["n_steps"]),
                   "ms_step": 1000 * h["seconds"] / max(int(h["n_steps"]), 1), "stop_reason": h["stop_reason"]}


def splits(adata, seeds, by: str, rows: list):
    """Per seed: the split's training cells and scorer, after appending its real-vs-real floor row."""
    for seed in seeds:
        train, test = split_per_type(adata, random_state=seed)
        score = Scorer(train, test)
        rows.append({"seed": seed, by: "floor (real train vs test)", **score.floor()})
        yield seed, train, score


def part_stop(adata, seeds, args) -> pd.DataFrame:
    rows = []
    for seed, train, score in splits(adata, seeds, "rule", rows):
        snaps = Snapshots()
        model, info = fit(train, seed, {**args.config, "max_steps": args.cap,
                                        "train_kwargs": {"stop_tol": 0.0}}, callbacks=[snaps])
        h = model.history
        steps = sorted(s for s in snaps.states if s % args.eval_every == 0 or s == max(snaps.states))
        quality = {}
        for s in steps:
            model.module.load_state_dict(snaps.states[s])
            quality[s] = score(model, seed)
        cap = max(steps)
        rows.append({"seed": seed, "rule": f"cap ({cap} steps)", "stop_step": cap, **quality[cap],
                     "fit_s": info["fit_s"]})
        for tol, window in RULES:
            rule, stop = StopRule(tol, window), cap
            for s, v in zip(h["step"], h["val_loss"]):
                if rule.update(int(s), float(v)):
                    stop = int(s)
                    break
            at = max(s for s in steps if s <= stop) if stop >= min(steps) else min(steps)
            rows.append({"seed": seed, "rule": f"tol {tol:g}, window {window}", "stop_step": stop, **quality[at],
                         "fit_s": info["fit_s"] * stop / cap})
        for s in steps:
            rows.append({"seed": seed, "rule": f"fixed {s} steps", "stop_step": s, **quality[s]})
    return pd.DataFrame(rows)


def part_sweep(adata, seeds, configs) -> pd.DataFrame:
    rows = []
    for seed, train, score in splits(adata, seeds, "config", rows):
        for config in configs:
            name = "previous default" if config is PREVIOUS_DEFAULT else json.dumps(config)
            model, info = fit(train, seed, config)
            rows.append({"seed": seed, "config": name, **info, **score(model, seed)})
            logging.getLogger("fit_time").warning(f"{name} seed {seed}: {rows[-1]}")
    return pd.DataFrame(rows)


def print_table(df: pd.DataFrame, by: str, label: str) -> None:
    print_mean_sd(df, by, ["stop_step", "steps", "ms_step", "fit_s", "mmd", "auc_knn", "tstr"], label)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["stop", "sweep"], required=True)
    parser.add_argument("--data", nargs="+", default=["pbmc", "sim"], choices=list(DATA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", type=json.loads, default=None, help="JSON list of sb.tl.fit options")
    parser.add_argument("--config", type=json.loads, default={}, help="--part stop: the fit options")
    parser.add_argument("--cap", type=int, default=None, help="--part stop: steps (default 6000 pbmc, 10000 sim)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--previous", action="store_true", help="--part sweep: also the previous default")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fit_time.json")
    args = parser.parse_args()
    quiet_logs()
    results = {}
    for key in args.data:
        label, load = DATA[key]
        adata = load()
        if args.part == "stop":
            cap = args.cap
            args.cap = cap or (6000 if key == "pbmc" else 10000)
            df = part_stop(adata, args.seeds, args)
            args.cap = cap
            print_table(df, "rule", f"{label}: stopping rules replayed on one long run per seed")
        else:
            configs = args.configs if args.configs is not None else CONFIGS
            configs = configs + [PREVIOUS_DEFAULT] * args.previous
            df = part_sweep(adata, args.seeds, configs)
            print_table(df, "config", f"{label}: network and batch sweep, default stopping rule")
            print(f"\nchosen defaults: width {DEFAULTS['width']}, {DEFAULTS['n_blocks']} blocks, dropout "
                  f"{DEFAULTS['dropout']}, batch 256, stop when the best validation loss gains < "
                  f"{100 * sb.model.TrainConfig.stop_tol:g} % "
                  f"over min(max(training cells, 500), {STOP_WINDOW}) steps")
        results[key] = df.to_dict("list")
        write_json(results, args.out.with_name(f"{args.out.stem}_{args.part}.json"))


if __name__ == "__main__":
    main()
