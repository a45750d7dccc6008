"""Quality metrics for synthetic cells: two-sample distances and tests, downstream usefulness, markers.

Compute them in one space for every method — a PCA fitted on *real training* cells (``fit_eval_pca``) — and
on held-out real cells. Each function is symmetric in what it compares and seeded where it draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_eval_pca(x_train: np.ndarray, n_comps: int = 30, random_state: int = 0):
    """A PCA fitted on real training cells (log-normalized genes); returns its ``transform``."""
    return PCA(n_components=min(n_comps, *x_train.shape), random_state=random_state).fit(x_train).transform


def _subsample(x, n, rng):
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, max_n: int = 1000, random_state: int = 0) -> float:
    """Unbiased squared MMD with a sum of RBF kernels at 0.25, 0.5, 1, 2, 4 × the median pairwise distance."""
    rng = np.random.default_rng(random_state)
    x, y = _subsample(x, max_n, rng), _subsample(y, max_n, rng)
    dxx, dyy, dxy = cdist(x, x, "sqeuclidean"), cdist(y, y, "sqeuclidean"), cdist(x, y, "sqeuclidean")
    med = np.median(np.sqrt(np.concatenate([dxx[np.triu_indices(len(x), 1)], dxy.ravel()])))
    total = 0.0
    for s in (0.25, 0.5, 1, 2, 4):
        g = 1.0 / (2 * (s * med) ** 2 + 1e-12)
        kxx, kyy, kxy = np.exp(-g * dxx), np.exp(-g * dyy), np.exp(-g * dxy)
        n, m = len(x), len(y)
        total += ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean())
    return float(total)


def energy_distance(x: np.ndarray, y: np.ndarray, *, max_n: int = 1000, random_state: int = 0) -> float:
    rng = np.random.default_rng(random_state)
    x, y = _subsample(x, max_n, rng), _subsample(y, max_n, rng)
    return float(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())


def c2st_auc(x: np.ndarray, y: np.ndarray, *, classifier: str = "knn", n_splits: int = 5,
             random_state: int = 0) -> float:
    """Classifier two-sample test: cross-validated ROC AUC of telling x from y (0.5 = indistinguishable).

    The larger sample is subsampled to the smaller one's size. ``"knn"`` (k=5) catches wrong shapes that the
    ``"linear"`` (logistic regression) one misses. On small samples even real-vs-real sits above 0.5:
    compare with that floor.
    """
    rng = np.random.default_rng(random_state)
    n = min(len(x), len(y))
    x, y = _subsample(x, n, rng), _subsample(y, n, rng)
    data, lab = np.vstack([x, y]), np.r_[np.zeros(n), np.ones(n)]
    splits = max(2, min(n_splits, n))
    clf = (KNeighborsClassifier(n_neighbors=min(5, max(1, n - 1))) if classifier == "knn"
           else LogisticRegression(max_iter=1000))
    model = make_pipeline(StandardScaler(), clf)
    cv = StratifiedKFold(splits, shuffle=True, random_state=random_state)
    prob = cross_val_predict(model, data, lab, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(lab, prob))


def train_synthetic_test_real(z_syn, y_syn, z_test, y_test, *, z_train=None, y_train=None) -> dict:
    """Accuracy of a logistic regression trained on synthetic cells, tested on real held-out cells; with
    ``z_train``, also trained on real training cells (the reference)."""
    def acc(z, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(z, np.asarray(y, str))
        return float((clf.predict(z_test) == np.asarray(y_test, str)).mean())

    out = {"tstr": acc(z_syn, y_syn)}
    if z_train is not None:
        out["trtr"] = acc(z_train, y_train)
    return out


def per_type_quality(z_real, y_real, z_syn, y_syn, *, random_state: int = 0) -> pd.DataFrame:
    """Per type: MMD, energy distance, kNN and linear two-sample AUC of synthetic vs real cells."""
    y_real, y_syn = np.asarray(y_real, str), np.asarray(y_syn, str)
    rows = []
    for t in pd.unique(y_real):
        a, b = z_real[y_real == t], z_syn[y_syn == t]
        if len(a) < 2 or len(b) < 2:
            continue
        rows.append({"cell_type": t, "n_real": len(a), "n_synthetic": len(b),
                     "mmd": mmd_rbf(a, b, random_state=random_state),
                     "energy": energy_distance(a, b, random_state=random_state),
                     "auc_knn": c2st_auc(a, b, classifier="knn", random_state=random_state),
                     "auc_linear": c2st_auc(a, b, classifier="linear", random_state=random_state)})
    return pd.DataFrame(rows).set_index("cell_type")


def gene_mean_pearson(x_real: np.ndarray, x_syn: np.ndarray) -> float:
    """Pearson correlation of per-gene mean expression."""
    return float(np.corrcoef(np.asarray(x_real).mean(0), np.asarray(x_syn).mean(0))[0, 1])


def marker_recovery(real, syn, groupby: str, *, n_top: int = 20) -> pd.DataFrame:
    """Per type: overlap of the top-``n_top`` Wilcoxon marker genes (synthetic vs real, one type vs the rest),
    and the Pearson correlation of those genes' log-fold changes."""
    import scanpy as sc

    def markers(a):
        a = a.copy()
        a.obs[groupby] = a.obs[groupby].astype(str).astype("category")
        sc.tl.rank_genes_groups(a, groupby, method="wilcoxon", use_raw=False)
        res = a.uns["rank_genes_groups"]
        return {t: pd.Series(res["logfoldchanges"][t], index=res["names"][t]) for t in res["names"].dtype.names}

    mr, ms = markers(real), markers(syn)
    rows = []
    for t in mr:
        if t not in ms:
            continue
        top_r, top_s = mr[t].index[:n_top], ms[t].index[:n_top]
        lfc_s = ms[t].reindex(top_r)
        rows.append({"cell_type": t, f"top{n_top}_overlap": len(set(top_r) & set(top_s)) / n_top,
                     "lfc_pearson": float(np.corrcoef(mr[t][top_r], lfc_s.fillna(0))[0, 1])})
    return pd.DataFrame(rows).set_index("cell_type")


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
