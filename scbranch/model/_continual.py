"""Adding cell types to a trained model: where each new type branches off, which heads it trains, and training them.

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

These functions compute and return; :meth:`BranchedDiffusion.add_cell_type` applies the :class:`Growth` to its
working copy and commits it when everything succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import torch

from .. import _anndata
from .. import _logging as logg
from ..hierarchy import Hierarchy, SeparationTest, n_ref_for
from ..representation import DecoderData
from ._training import train_module

MODES = ("heads", "replay")


@dataclass
class NewCells:
    """The validated cells of the new types: the decoder's data (``data.z``: the cells in model space), their
    labels and the fine-tuning budget."""

    data: DecoderData
    labels: np.ndarray
    max_steps: int


@dataclass
class Growth:
    """What adding the types changes in the model: the tree with the new leaves cut in, the type order, each
    branch's head and the blocks of branch parameters, the training proportions; and what the fine-tuning needs
    (the heads to train, the old types' replayed cells)."""

    hierarchy: Hierarchy
    types: list[str]
    heads: dict[str, int]
    branch_blocks: list[int]
    type_counts: dict[str, int] | None
    placements: list[tuple[str, str, float]]
    trainable: list[int]
    replay: dict[str, np.ndarray] | None


def new_cells(model, adata_new: ad.AnnData, *, groupby: str | None, mode: str, min_cells: int,
              max_steps: int | None) -> NewCells:
    """Validate the new cells and the options before any work; read the cells as at fit time."""
    _anndata.check_steps(max_steps)
    if mode not in MODES:
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
    steps = max_steps or int(np.clip(6 * adata_new.n_obs, 800, 2000))
    return NewCells(data, labels.to_numpy(), steps)


def place_new_types(model, z_new: np.ndarray, labels_new: np.ndarray, *, n_reference: int = 200,
                    random_state: int = 0, progress: bool = False) -> list[tuple[str, str, float]]:
    """[(new type, anchor old type, branch time)] from a separation test against generated old cells."""
    ref, _ = model.sample(n_reference, sampler="dpm_solver_2", n_steps=15, spacing="logsnr",
                          random_state=random_state, progress=progress)
    z = np.concatenate([*ref.values(), z_new])
    labels = np.concatenate([np.repeat(list(ref), [len(v) for v in ref.values()]), labels_new])
    test = SeparationTest(z, labels, model.module.sde, n_ref=n_ref_for(model.state.sharing))
    out = []
    for new in dict.fromkeys(labels_new):
        times = {old: test.curve([new], [old])["time"] for old in model.types}
        anchor = min(times, key=lambda k: (times[k], k))
        out.append((str(new), anchor, float(min(times[anchor], 0.999))))
    return out


def grow(model, z_new: np.ndarray, labels_new: np.ndarray, *, mode: str, n_replay: int = 300,
         random_state: int = 0, progress: bool | None = None) -> Growth:
    """Place the new types and give them heads (see the module docstring). The network of ``model`` (a working
    copy) gets the new heads' parameters, initialised from their relatives'; everything else is returned for the
    model to apply."""
    placements = place_new_types(model, z_new, labels_new, random_state=random_state)
    replay = None
    if mode == "replay":  # cells of the old types from the *frozen* model, drawn before anything changes
        replay, _ = model.sample(n_replay, sampler="dpm_solver_2", n_steps=25, spacing="logsnr",
                                 random_state=random_state + 1, progress=progress)
    net, heads = model.module.net, dict(model.state.heads)
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
    if model.classifier is not None:  # it cannot learn the new types without the old cells: it keeps scoring and
        # resampling the old ones exactly as before, and the new types' rows are not resampled
        logg.info("    the type classifier keeps its types; the new ones are not resampled or scored")
    counts = model.state.type_counts
    if counts is not None:  # the new types' proportions, for generating at a node above them
        counts = {**counts, **{t: int((np.asarray(labels_new) == t).sum()) for t, _, _ in placements}}
    return Growth(tree, [*model.types, *[p[0] for p in placements]], heads, list(net.block_sizes), counts,
                  placements, sorted(set(trainable)), replay)


def fine_tune(model, growth: Growth, z_new: np.ndarray, labels_new: np.ndarray, *, max_steps: int,
              random_state: int = 0, progress: bool | None = None) -> dict:
    """Train the grown heads of ``model`` (the growth applied) on the new cells, plus the replayed old ones;
    returns the training history."""
    z_train, y_train = z_new, np.asarray(labels_new)
    if growth.replay is not None:
        z_train = np.concatenate([z_new, *growth.replay.values()])
        y_train = np.concatenate([y_train, np.repeat(list(growth.replay), [len(v) for v in growth.replay.values()])])
    codes = np.asarray([model.types.index(t) for t in y_train])
    params = model.module.net.branch_parameters(growth.trainable)
    with torch.random.fork_rng():
        torch.manual_seed(int(random_state))
        # a short, fixed fine-tuning budget: annealed over its length (one-cycle), not stopped by the rule
        return train_module(model.module, z_train.astype(np.float32), codes, max_steps=max_steps, params=params,
                            random_state=random_state, progress=progress,
                            balance=0.0 if growth.replay is None else 0.5, schedule="onecycle", stop_tol=0.0)
