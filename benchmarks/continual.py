"""Adding a cell type to a trained model vs retraining, on real PBMC cells (pbmc68k_reduced .raw).

Train on K-1 types, add the held-out type; per-type quality (RBF-MMD and kNN two-sample AUC against
held-out real cells, in a PCA fitted on real training cells) before and after, for
  branched heads-only | branched with upstream replay | flat fine-tuned on the new type only (forgetting)
  | flat retrained on all | branched trained on all (reference for the new type)
and the wall time of each. Prints markdown tables, writes JSON.

    .venv/bin/python benchmarks/continual.py [--new-type "CD56+ NK"] [--max-steps N]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import GROUPBY, Evaluator, fit, split_pbmc, timer, write_json

import scbranch as sb
from scbranch.model import lognorm_of  # syn.X holds counts after counts in
from scbranch.model._training import train_module


def samples(model, n=200, seed=0):
    syn = sb.tl.generate(model, n, random_state=seed, progress=False)
    return lognorm_of(syn), syn.obs[GROUPBY].astype(str).to_numpy()


def flat_finetune_new_only(model, new_cells, new_type, steps, seed):
    """The naive continual baseline: a flat model gets a head for the new type and *all* its weights are
    fine-tuned on the new type's cells only."""
    from scbranch.hierarchy import Hierarchy, Node

    model.hierarchy = Hierarchy(Node("root", [*model.hierarchy.root.children, Node(new_type)], time=1.0))
    (head,) = model.module.net.add_branches([None])
    model.state = dataclasses.replace(model.state, heads={**model.state.heads, new_type: head},
                                      types=[*model.types, new_type])
    model._set_branches()
    model.module.set_paths(model.type_paths())
    z = model.get_latent(new_cells)
    model.fit_decoder(model.decoder_data(new_cells, [new_type] * len(z)), random_state=seed)
    codes = np.full(len(z), model.types.index(new_type))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        train_module(model.module, z, codes, max_steps=steps, random_state=seed, progress=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-type", default="CD56+ NK")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "continual.json")
    args = parser.parse_args()
    import scanpy as sc

    sc.settings.verbosity = 1  # scbranch logs through scanpy: warnings only
    train, test = split_pbmc()
    ev = Evaluator(train, test)
    is_new = (train.obs[GROUPBY] == args.new_type).to_numpy()
    old, new = train[~is_new].copy(), train[is_new].copy()
    kw = {"groupby": GROUPBY, "max_steps": args.max_steps, "progress": False}
    times, tables = {}, {}
    tmp = Path(tempfile.mkdtemp())

    with timer(times, "branched: fit K-1"):
        base = fit(old.copy(), **kw)
    base.save(tmp / "base")
    tables["branched K-1 (before)"] = ev.per_type(*samples(base))
    for mode in ("heads", "replay"):
        m = sb.BranchedDiffusion.load(tmp / "base")
        with timer(times, f"branched {mode}: add type"):
            sb.tl.add_cell_type(new.copy(), m, mode=mode, progress=False)
        tables[f"branched {mode} (after)"] = ev.per_type(*samples(m))
    with timer(times, "branched: fit all (retrain)"):
        full = fit(train.copy(), **kw)
    tables["branched all (reference)"] = ev.per_type(*samples(full))

    with timer(times, "flat: fit K-1"):
        flat = fit(old.copy(), branched=False, **kw)
    tables["flat K-1 (before)"] = ev.per_type(*samples(flat))
    with timer(times, "flat: fine-tune on new only"):
        flat_finetune_new_only(flat, new, args.new_type, steps=int(np.clip(6 * new.n_obs, 1000, 4000)), seed=0)
    tables["flat fine-tuned new only (after)"] = ev.per_type(*samples(flat))
    with timer(times, "flat: fit all (retrain)"):
        flat_all = fit(train.copy(), branched=False, **kw)
    tables["flat all (retrain)"] = ev.per_type(*samples(flat_all))
    floor = ev.floor()

    old_types = [t for t in floor.index if t != args.new_type]
    print(f"\n### Adding '{args.new_type}' ({new.n_obs} training cells) to a model of {len(old_types)} types\n")
    print("| model | old types MMD (mean) | old types kNN AUC (mean) | new type MMD | new type kNN AUC |")
    print("|---|---:|---:|---:|---:|")
    print(f"| real train vs test (floor) | {floor.loc[old_types, 'mmd'].mean():.4f} | "
          f"{floor.loc[old_types, 'auc_knn'].mean():.3f} | {floor.loc[args.new_type, 'mmd']:.4f} | "
          f"{floor.loc[args.new_type, 'auc_knn']:.3f} |")
    for name, tab in tables.items():
        has_new = args.new_type in tab.index
        print(f"| {name} | {tab.loc[old_types, 'mmd'].mean():.4f} | {tab.loc[old_types, 'auc_knn'].mean():.3f} | "
              + (f"{tab.loc[args.new_type, 'mmd']:.4f} | {tab.loc[args.new_type, 'auc_knn']:.3f} |" if has_new
                 else "– | – |"))
    before = tables["branched K-1 (before)"]
    print("\n| change of old types' metrics vs before | MMD (relative, mean over types) | kNN AUC (absolute, mean) |")
    print("|---|---:|---:|")
    for name, ref in (("branched heads", before), ("branched replay", before),
                      ("flat fine-tuned new only", tables["flat K-1 (before)"])):
        key = {"branched heads": "branched heads (after)", "branched replay": "branched replay (after)",
               "flat fine-tuned new only": "flat fine-tuned new only (after)"}[name]
        after = tables[key]
        rel = ((after.loc[old_types, "mmd"] - ref.loc[old_types, "mmd"]) / ref.loc[old_types, "mmd"].abs()).mean()
        dauc = (after.loc[old_types, "auc_knn"] - ref.loc[old_types, "auc_knn"]).mean()
        print(f"| {name} | {rel:+.1%} | {dauc:+.3f} |")
    print("\n| step | seconds | vs full branched retrain |")
    print("|---|---:|---:|")
    for k, v in times.items():
        print(f"| {k} | {v:.1f} | {v / times['branched: fit all (retrain)']:.2f} |")
    write_json({"times": times, "tables": {k: v.reset_index().to_dict("list") for k, v in tables.items()},
                "floor": floor.reset_index().to_dict("list")}, args.out)


if __name__ == "__main__":
    main()
