"""Adding cell types to a trained model, and transmuting cells between types through their branch point.

Placement: each new type is compared (same separation test as at fit time, same SDE) with cells *generated*
by the model for the old types — the old training data are not needed. Its branch point is its earliest
time of indistinguishability from any old type (its nearest relative, the "anchor"); a new node is cut
into the anchor's path at that time, with the anchor's subtree and the new type as children.

Two ways to train, as the seed paper's reviewers asked:

* ``mode="heads"`` (seed method): the new node's branch *reuses the frozen head* of the branch it was cut
  from, and only the new type's own leaf branch (a new head + embedding, initialised from the anchor's) is
  trained. Trunk and old heads are frozen: old types generate bit-for-bit what they did before. The cost is
  that the upstream branch the new type joins never learns it.
* ``mode="replay"``: the new node gets a head of its own (a copy), and it and every branch above it are
  fine-tuned together with the new leaf on the new cells *plus* cells replayed from the frozen model for the
  old types, so the shared upstream branches learn the new type without forgetting the old ones. Branches
  off that path, and the trunk, stay frozen.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _anndata
from .. import _logging as logg
from ..hierarchy import SeparationTest, n_ref_for
from ..sampling import get_times, sample_tree
from ._conditions import condition_codes, conditioned
from ._training import train_module


def place_new_types(model, z_new: np.ndarray, labels_new: np.ndarray, *, n_reference: int = 200,
                    random_state: int = 0, progress: bool = False) -> list[tuple[str, str, float]]:
    """[(new type, anchor old type, branch time)] from a separation test against generated old cells."""
    ref, _ = model.sample(n_reference, sampler="dpm_solver_2", n_steps=15, spacing="logsnr",
                          random_state=random_state, progress=progress)
    z = np.concatenate([*ref.values(), z_new])
    labels = np.concatenate([np.repeat(list(ref), [len(v) for v in ref.values()]), labels_new])
    test = SeparationTest(z, labels, model.module.sde, n_ref=n_ref_for(model.config.get("sharing", 0.0)))
    out = []
    for new in dict.fromkeys(labels_new):
        times = {old: test.curve([new], [old])["time"] for old in model.types}
        anchor = min(times, key=lambda k: (times[k], k))
        out.append((str(new), anchor, float(min(times[anchor], 0.999))))
    return out


def transmute_path(model, z: np.ndarray, source: str, target: str, *, time: float | None, sampler, n_steps: int,
                   generator: torch.Generator, condition=None) -> tuple[np.ndarray, float]:
    """Forward-noise ``z`` to the source/target branch time (or ``time``) and reverse down target's branches
    (under covariates ``condition``, for :func:`~scbranch.tl.transfer`)."""
    if time is None:
        time = float(model.hierarchy.node(model.hierarchy.lca(source, target)).time)
    x0 = torch.as_tensor(z, dtype=torch.float32)
    t = torch.full((len(x0),), time)
    xt, _, _ = model.module.sde.marginal(x0, t, torch.randn(x0.shape, generator=generator))
    paths, bounds, heads = model.walk_layout()
    ts = get_times(n_steps)
    ts = torch.cat([torch.tensor([time]), ts[ts < time]])
    # only the part of the tree below `time` is walked
    bounds = {b: (lo, min(hi, time)) for b, (lo, hi) in bounds.items() if lo < time}
    path = [b for b in paths[target] if b in bounds]
    eps_model = conditioned(model.module, condition_codes(model, condition))
    out, _ = sample_tree(eps_model, sampler, {target: path}, bounds, {target: len(x0)}, ts,
                         sde=model.module.sde, n_features=x0.shape[1], heads=heads, generator=generator,
                         progress=False, x_init=xt)
    return out[target].numpy(), time


def add_cell_types(model, z_new: np.ndarray, labels_new: np.ndarray, *, mode: str = "heads", max_steps: int,
                   n_replay: int = 300, random_state: int = 0, progress: bool | None = None) -> dict:
    """Add the types in ``labels_new`` to ``model`` in place (see module docstring); returns a report."""
    old_types = list(model.types)
    placements = place_new_types(model, z_new, labels_new, random_state=random_state)
    replay = None
    if mode == "replay":  # cells of the old types from the *frozen* model, drawn before anything changes
        replay, _ = model.sample(n_replay, sampler="dpm_solver_2", n_steps=25, spacing="logsnr",
                                 random_state=random_state + 1, progress=progress)

    net, heads = model.module.net, dict(model.config["heads"])
    tree, trainable = model.hierarchy, []
    for new, anchor, time in placements:
        tree, cut_name, cut_from = tree.insert_leaf(new, anchor, time)
        leaf_head = heads[anchor]  # the new leaf starts from its nearest relative's head
        if mode == "heads":
            heads[cut_name] = heads[cut_from]  # the new node's branch keeps the frozen upstream head
            (heads[new],) = net.add_branches([leaf_head])
            trainable.append(heads[new])
        else:  # the upstream path is fine-tuned as copies in the new block (older blocks stay frozen, whole)
            above = tree.ancestors(cut_name)
            ids = net.add_branches([heads[cut_from], leaf_head, *[heads[a] for a in above]])
            heads[cut_name], heads[new] = ids[:2]
            heads.update(zip(above, ids[2:]))
            trainable += ids
    trainable = sorted(set(trainable))
    if model.classifier is not None:  # it cannot learn the new types without the old cells: it keeps scoring and
        # resampling the old ones exactly as before, and the new types' rows are not resampled
        logg.info("    the type classifier keeps its types; the new ones are not resampled or scored")
    model.hierarchy = tree
    model.config["types"] = old_types + [p[0] for p in placements]
    if "type_counts" in model.config:  # the new types' proportions, for generating at a node above them
        model.config["type_counts"].update({t: int((np.asarray(labels_new) == t).sum()) for t, _, _ in placements})
    model.config["heads"] = heads
    model.config["branch_blocks"] = net.block_sizes
    model._set_branches()
    model.module.set_paths(model.type_paths())

    z_train, y_train = z_new, np.asarray(labels_new)
    if replay is not None:
        z_train = np.concatenate([z_new, *replay.values()])
        y_train = np.concatenate([y_train, np.repeat(list(replay), [len(v) for v in replay.values()])])
    codes = np.asarray([model.types.index(t) for t in y_train])
    params = net.branch_parameters(trainable)
    with torch.random.fork_rng():
        torch.manual_seed(int(random_state))
        # a short, fixed fine-tuning budget: annealed over its length (one-cycle), not stopped by the rule
        hist = train_module(model.module, z_train.astype(np.float32), codes, max_steps=max_steps, params=params,
                            random_state=random_state, progress=progress, balance=0.0 if replay is None else 0.5,
                            schedule="onecycle", stop_tol=0.0)
    model.history.setdefault("continual", []).append(
        {"mode": mode, "types": [p[0] for p in placements], "n_steps": hist["n_steps"],
         "best_val_loss": hist["best_val_loss"], "trained_heads": trainable})
    return {"placements": placements, "trained_heads": trainable, "history": hist}


def add_from_adata(model, adata_new, *, groupby: str | None = None, mode: str = "heads", min_cells: int = 5,
                   max_steps: int | None = None, random_state: int = 0, progress: bool | None = None) -> dict:
    """:meth:`BranchedDiffusion.add_cell_type`: validate the new cells, then place, train and extend the decoder
    on a working copy committed only when all of it succeeded. The report adds ``latent`` (the new cells in
    model space)."""
    _anndata.check_steps(max_steps)
    random_state = _anndata.check_seed(random_state)
    if mode not in ("heads", "replay"):
        msg = f"mode must be 'heads' or 'replay', got {mode!r}"
        raise ValueError(msg)
    labels, types = _anndata.check_labels(adata_new, groupby or model.groupby, min_cells=min_cells,
                                          drop_small=False, min_types=1)
    dup = sorted(set(types) & set(model.types))
    if dup:
        msg = f"cell types already in the model: {dup}; add only new types (the model knows {model.types})"
        raise ValueError(msg)
    if not model.is_trained:
        msg = "the model is not trained"
        raise RuntimeError(msg)
    data = model.decoder_data(adata_new, labels.to_numpy())
    if model.representation.makes_counts and data.counts is None:
        msg = ("this model decodes counts, but the new cells hold no counts (raw, or log-normalized values that are "
               "a per-cell scaling of integer counts); pass layer= / use_raw= to the counts")
        raise ValueError(msg)
    z_new = data.z
    steps = max_steps or int(np.clip(6 * adata_new.n_obs, 800, 2000))
    with model.transaction() as work:
        report = add_cell_types(work, z_new, labels.to_numpy(), mode=mode, max_steps=steps,
                                random_state=random_state, progress=progress)
        work.fit_decoder(data, random_state=random_state)
    return {**report, "latent": z_new}
