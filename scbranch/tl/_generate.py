"""``scbranch.tl.generate``: synthetic cells per type, as a new AnnData (over :meth:`BranchedDiffusion.generate`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import anndata as ad

from ..model import BranchedDiffusion

__all__ = ["generate"]


def generate(
    model: BranchedDiffusion,
    n_cells: int | Mapping[str, int] = 100,
    *,
    sampler: str = "euler_maruyama",
    n_steps: int | None = None,
    spacing: Literal["uniform", "logsnr"] = "uniform",
    shared: bool = True,
    resample: bool | None = None,
    proportions: Mapping[str, float] | None = None,
    condition: Mapping[str, str] | None = None,
    transform_batch: str | None = None,
    obs_prefix: str | None = None,
    random_state: int = 0,
    progress: bool | None = None,
    device: str = "auto",
    key_added: str = "scbranch",
) -> ad.AnnData:
    """Generate synthetic cells per type by walking the model's branch tree from t=1 down.

    Parameters
    ----------
    model
        A trained model from :func:`fit`.
    n_cells
        Cells per type: an int for every type, or ``{type: n}``. Keys may also be internal nodes of the
        model's hierarchy (``{"lymphocyte": 500}``: Cell Ontology names with ``hierarchy="cl"``, node names of a
        given tree, ``n3``-style names of a data tree): that node's cells are split over the types below it in
        their training proportions (a multinomial draw) and generated in the same tree walk, so the node's
        upstream branch is shared.
    proportions
        ``{type: weight}`` for the types below the requested node(s) instead of the training proportions
        (types left out get none).
    condition
        With ``fit(condition_keys=[...])``: ``{key: value}`` to generate under (e.g. ``{"donor": "D2"}``); keys
        left out, or ``None``, are marginalized (the network's "not given" code).
    sampler, n_steps, spacing
        Reverse-diffusion sampler (a name in ``scbranch.sampling.SAMPLERS``; add one with
        ``scbranch.sampling.register_sampler``) and its number of steps, on a time grid ``"uniform"`` in t or
        uniform in log-SNR. Step defaults give 50 network evaluations per trajectory (euler_maruyama 50, ddim 50,
        dpm_solver_2 25, heun 25, pc 25). In ``benchmarks/schedules.py`` Euler–Maruyama-50 (the default)
        matched 1,000-step Euler–Maruyama on MMD (pbmc68k 0.051 vs 0.051) and the deterministic samplers
        did not (0.068–0.073; kNN AUC 0.76–0.77 vs 0.68).
    shared
        Share upstream steps between types (the tree walk). ``False`` samples each type alone (same
        distribution, more network evaluations).
    resample
        At each branch point, each child draws the rows it continues from its parent's rows by the type
        classifier's posterior ratio p(child | x_t) / π(child) (systematic resampling), so it starts from its own
        marginal rather than the parent's mixture; the shared branches carry enough rows for it: a child that
        keeps a fraction f of its parent's rows as effective ones (measured at fit on noised training cells and
        kept in ``model.state.branch_ess``) makes its parent carry up to n·α²/f rows, α² the signal
        fraction at the split (copies of a row made at high noise end as nearly independent cells; at low
        noise as near twins). Default ``None``: on whenever the model has its type classifier (``fit``'s
        default). In ``benchmarks/sharing.py`` (default sharing 0.5, 3 seeds; network evaluations relative to
        flat / held-out per-type MMD / train-on-synthetic accuracy / rare types' MMD): 16 simulated types 0.37 /
        0.014 / 0.52 / 0.039 (off: 0.27 / 0.022 / 0.44 / 0.050; flat 1.00 / 0.013 / 0.50 / 0.036); pbmc68k 0.71 /
        0.054 / 0.77 / 0.065 (off: 0.45 / 0.067 / 0.78 / 0.078; flat 1.00 / 0.056 / 0.78 / 0.068). ``False``: the
        cheaper walk, rows handed to the children as they are; prefer it with ``hierarchy="cl"`` for now, where
        resampling scored worse on pbmc68k (MMD 0.062 vs 0.034, 2 seeds; flat 0.017).
    progress
        A bar over the reverse-diffusion steps, shown only when sampling takes longer than half a second
        (``None``: at scanpy's verbosity >= 1; nothing is printed at 0).
    device
        Where the score network and the type classifier run: ``"auto"`` (a CUDA GPU when torch finds one, else
        the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; a device torch does not find is an error.
        Random draws stay on the CPU, so a seed draws the same noise everywhere (outputs on a GPU may still
        differ in the last bits of its arithmetic). Decoding to genes runs on the CPU.
    obs_prefix
        Prefix of the new cells' ``obs_names`` (default ``"synthetic-{random_state}-"``, so that two calls
        with different seeds give distinct names).
    transform_batch
        ``representation="scvi"`` with a batch key only: decode every cell in this batch (default: each
        cell's batch drawn from its type's observed batches).

    Returns
    -------
    A new AnnData with the model's ``var_names``, its matrices laid out as the real cells' were: counts in, counts
    out; log-normalized in, log-normalized out.

    ``.X`` (sparse)
        Fitted on ``.X`` (or ``.raw``) holding counts: integer counts, with library sizes drawn from the type's
        real cells nearest each synthetic cell in model space. Holding log-normalized values: log-normalized
        expression, normalized as the input was (same target sum, or per-cell scales drawn as the library sizes).
    ``.layers["lognorm"]`` or ``.layers["counts"]``
        The other form: ``"lognorm"`` beside counts in ``.X``; ``"counts"`` (sparse integers) beside
        log-normalized ``.X`` whenever the model decodes counts (the input held raw counts or counts recoverable
        from its log-normalized values, or ``representation="scvi"``). Fitted on ``layers[layer]``: that layer
        holds the input's form and ``.X`` the other.
    ``.obs``
        ``[groupby]`` (categorical: each cell's type), ``[f"{key_added}_synthetic"] = True``, the coarse
        annotation columns of ``fit(hierarchy=[...columns])`` (each type's coarse labels),
        ``[f"{key_added}_node"]`` (only when a node was asked for: the node, or the type, each cell answers),
        ``[key]`` for each covariate given in ``condition``, ``[batch_key]`` (scVI with a batch key: the batch
        each cell was decoded in).
    ``.obsm[f"X_{key_added}"]``
        Model space.
    ``.uns[key_added]["generate"]``
        sampler, n_steps, nfe (network calls), n_evals (cell states evaluated: cells × steps), shared,
        random_state, groupby.

    Put them beside the real cells with :func:`~scbranch.tl.concat_real_synthetic`.
    """
    return model.generate(n_cells, sampler=sampler, n_steps=n_steps, spacing=spacing, shared=shared,
                          resample=resample, proportions=proportions, condition=condition,
                          transform_batch=transform_batch, obs_prefix=obs_prefix, random_state=random_state,
                          progress=progress, device=device, key_added=key_added)
