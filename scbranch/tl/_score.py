"""``score_types``: each cell's type probabilities and the diffusion time at which its type becomes certain."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .. import _anndata
from .. import _logging as logg
from ..model import BranchedDiffusion


def score_types(
    adata: ad.AnnData,
    model: BranchedDiffusion,
    *,
    threshold: float = 0.9,
    n_times: int = 50,
    random_state: int = 0,
    device: str = "auto",
    key_added: str = "scbranch_types",
    copy: bool = False,
) -> ad.AnnData | None:
    """Score every cell of ``adata`` with the model's noisy type classifier (label transfer plus a per-cell
    branch-point diagnostic).

    Parameters
    ----------
    model
        A model fitted with ``type_classifier=True`` (the default). Types added later with
        :func:`~scbranch.tl.add_cell_type` are not scored (the classifier never saw them).
    adata
        Cells with the model's genes, read as at fit time (any labels are ignored: new data works).
    threshold
        A cell's type is *certain* at diffusion time t when its most likely type keeps probability ≥ ``threshold``
        from t = 0 up to t (averaged over 8 noise draws per time).
    n_times
        Diffusion times on [T_EPS, 1] at which the probability curve is evaluated.
    random_state
        Seed of the noise draws.
    device
        Where the classifier runs: ``"auto"`` (a CUDA GPU when torch finds one, else the CPU), ``"cpu"``,
        ``"cuda"``, ``"mps"``; see :func:`~scbranch.tl.generate`.
    key_added
        Prefix of the keys written.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or the copy), and writes:

    ``.obs[key_added]``
        The most likely type (categorical, the model's type order).
    ``.obs[f"{key_added}_probability"]``
        Its probability.
    ``.obs[f"{key_added}_certain_time"]``
        The largest diffusion time up to which the type stays certain (NaN: never certain). Late times mean the
        cell's type is recognisable under heavy noise (far from other types); early ones, near a branch point.
    ``.obsm[f"{key_added}_probabilities"]``
        Probability of each type (columns in ``.uns[key_added]["types"]`` order).
    ``.uns[key_added]``
        ``types``, ``threshold``, ``times`` and the mean probability curve per predicted type (``curves``, a
        table: type × time).
    """
    adata, model = _anndata.adata_first(adata, model, "score_types")
    _anndata.check_key(key_added)
    start = logg.info(f"scoring {adata.n_obs} cells by type")
    res = model.score_types(adata, threshold=threshold, n_times=n_times, random_state=random_state, device=device)
    types, probs, top = res.types, res.probabilities, res.probabilities.argmax(1)  # types the classifier knows
    order = [t for t in model.type_order if t in types]
    out = adata.copy() if copy else adata
    out.obs[key_added] = pd.Categorical(np.asarray(types)[top], categories=order)
    out.obs[f"{key_added}_probability"] = probs[np.arange(len(top)), top].astype(np.float32)
    out.obs[f"{key_added}_certain_time"] = res.certain_time.astype(np.float32)
    out.obsm[f"{key_added}_probabilities"] = probs.astype(np.float32)
    curves = pd.DataFrame({ty: res.curve[top == k].mean(0) if (top == k).any() else np.full(len(res.times), np.nan)
                           for k, ty in enumerate(types)}, index=[f"{t:.4f}" for t in res.times]).T
    out.uns[key_added] = {"types": np.asarray(types, dtype=str), "threshold": float(threshold),
                          "times": res.times, "curves": curves.reset_index(names="cell_type")}
    logg.info("    finished", time=start,
              deep=f"added .obs[{key_added!r}], [{key_added}_probability], [{key_added}_certain_time], "
                   f".obsm[{key_added}_probabilities], .uns[{key_added!r}]")
    return out if copy else None
