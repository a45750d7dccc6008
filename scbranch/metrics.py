"""Quality metrics for synthetic cells, computed in the model's space."""

from __future__ import annotations

import numpy as np
import pandas as pd


def centroid_table(z_real: np.ndarray, labels_real, z_syn: np.ndarray, labels_syn) -> pd.DataFrame:
    """Per type: how close synthetic cells sit to their own real type versus the nearest other type.

    Columns: ``n_real``, ``n_synthetic``; ``dist_own`` (synthetic centroid to the own real centroid);
    ``dist_nearest_other`` and ``nearest_other`` (the closest other real centroid); ``frac_nearest_own``
    (fraction of synthetic cells whose nearest real centroid is their own type's); ``ok`` = own < other.
    """
    labels_real, labels_syn = np.asarray(labels_real, dtype=str), np.asarray(labels_syn, dtype=str)
    types = [t for t in pd.unique(labels_syn) if t in set(labels_real)]
    real_types = list(pd.unique(labels_real))
    cent = np.stack([z_real[labels_real == t].mean(0) for t in real_types])
    rows = []
    for t in types:
        zs = z_syn[labels_syn == t]
        d = np.linalg.norm(cent - zs.mean(0), axis=1)
        own = real_types.index(t)
        others = [k for k in range(len(real_types)) if k != own]
        nearest = others[int(np.argmin(d[others]))]
        cell_nearest = np.linalg.norm(zs[:, None, :] - cent[None], axis=2).argmin(1)
        rows.append({
            "cell_type": t, "n_real": int((labels_real == t).sum()), "n_synthetic": len(zs),
            "dist_own": float(d[own]), "dist_nearest_other": float(d[nearest]),
            "nearest_other": real_types[nearest], "frac_nearest_own": float((cell_nearest == own).mean()),
            "ok": bool(d[own] < d[nearest]),
        })
    return pd.DataFrame(rows).set_index("cell_type")
