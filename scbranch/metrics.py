"""Quality metrics for synthetic cells: two-sample distances and tests, downstream usefulness, markers.

Compute them in one space for every method — a PCA fitted on *real training* cells (``fit_eval_pca``) — and
on held-out real cells. Each function is symmetric in what it compares and seeded where it draws.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist, pdist
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["c2st_auc", "centroid_table", "correlation_error", "energy_distance", "expressing_fraction_mae",
           "fit_eval_pca", "gene_level_quality", "gene_mean_pearson", "hvg_overlap", "knn_mixing",
           "knn_mixing_per_type", "marker_recovery", "mean_pearson", "mmd_rbf", "mmd_scales", "per_type_quality",
           "train_synthetic_test_real", "variance_log2_ratio"]


@contextmanager
def _scanpy_quiet():
    """scanpy's own step lines ("ranking genes …") are noise inside a metric: warnings only while it runs."""
    import scanpy as sc

    before = sc.settings.verbosity
    sc.settings.verbosity = min(int(before), 1)
    try:
        yield
    finally:
        sc.settings.verbosity = before


def fit_eval_pca(x_train: np.ndarray, n_comps: int = 30, random_state: int = 0):
    """A PCA fitted on real training cells (log-normalized genes); returns its ``transform``."""
    return PCA(n_components=min(n_comps, *x_train.shape), random_state=random_state).fit(x_train).transform


def _subsample(x, n, rng):
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, max_n: int = 1000, random_state: int = 0,
            scale: float | None = None) -> float:
    """Unbiased squared MMD with a sum of RBF kernels at 0.25, 0.5, 1, 2, 4 × ``scale`` (default: the median
    pairwise distance of x and x–y pairs, which moves with y: pass a fixed ``scale`` to compare generators)."""
    rng = np.random.default_rng(random_state)
    x, y = _subsample(x, max_n, rng), _subsample(y, max_n, rng)
    dxx, dyy, dxy = cdist(x, x, "sqeuclidean"), cdist(y, y, "sqeuclidean"), cdist(x, y, "sqeuclidean")
    med = scale if scale is not None else np.median(np.sqrt(np.concatenate([dxx[np.triu_indices(len(x), 1)],
                                                                            dxy.ravel()])))
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


def mmd_scales(z_real, y_real, *, max_n: int = 1000, random_state: int = 0) -> dict[str, float]:
    """Per type, the median pairwise distance of its real cells: fixed MMD bandwidths, so that every generator
    scored with them (:func:`per_type_quality`'s ``mmd_scales``) is measured with the same kernel."""
    rng = np.random.default_rng(random_state)
    y_real = np.asarray(y_real, str)
    out = {}
    for t in pd.unique(y_real):
        a = _subsample(z_real[y_real == t], max_n, rng)
        if len(a) >= 2:
            out[str(t)] = float(np.median(pdist(a)))
    return out


def per_type_quality(z_real, y_real, z_syn, y_syn, *, random_state: int = 0,
                     mmd_scales: dict[str, float] | None = None) -> pd.DataFrame:
    """Per type: MMD (bandwidths ``mmd_scales[type]`` when given), energy distance, kNN and linear two-sample
    AUC of synthetic vs real cells."""
    y_real, y_syn = np.asarray(y_real, str), np.asarray(y_syn, str)
    rows = []
    for t in pd.unique(y_real):
        a, b = z_real[y_real == t], z_syn[y_syn == t]
        if len(a) < 2 or len(b) < 2:
            continue
        rows.append({"cell_type": t, "n_real": len(a), "n_synthetic": len(b),
                     "mmd": mmd_rbf(a, b, random_state=random_state, scale=(mmd_scales or {}).get(t)),
                     "energy": energy_distance(a, b, random_state=random_state),
                     "auc_knn": c2st_auc(a, b, classifier="knn", random_state=random_state),
                     "auc_linear": c2st_auc(a, b, classifier="linear", random_state=random_state)})
    return pd.DataFrame(rows).set_index("cell_type")


def gene_mean_pearson(x_real: np.ndarray, x_syn: np.ndarray) -> float:
    """Pearson correlation of per-gene mean expression."""
    return float(np.corrcoef(_dense(x_real).mean(0), _dense(x_syn).mean(0))[0, 1])


def marker_recovery(real, syn, groupby: str, *, n_top: int = 20) -> pd.DataFrame:
    """Per type: overlap of the top-``n_top`` Wilcoxon marker genes (synthetic vs real, one type vs the rest),
    and the Pearson correlation of those genes' log-fold changes."""
    import scanpy as sc

    def markers(a):
        a = a.copy()
        a.obs[groupby] = a.obs[groupby].astype(str).astype("category")
        with _scanpy_quiet():
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


# --- gene-level realism: compare log-normalized expression (cells × genes) of real and synthetic cells ---


def _dense(x) -> np.ndarray:
    from scipy import sparse

    return (x.toarray() if sparse.issparse(x) else np.asarray(x)).astype(np.float32, copy=False)


def _shared_types(y_real, y_syn, min_cells: int = 2) -> list[str]:
    """Types (in the real cells' order) with at least ``min_cells`` cells on both sides."""
    cr, cs = pd.Series(y_real).value_counts(), pd.Series(y_syn).value_counts()
    return [t for t in pd.unique(y_real) if cr.get(t, 0) >= min_cells and cs.get(t, 0) >= min_cells]


def _per_type(x_real, y_real, x_syn, y_syn, fn) -> pd.Series:
    """``fn(real_cells, syn_cells)`` for each type with >=2 cells on both sides, as a Series over types."""
    x_real, x_syn = _dense(x_real), _dense(x_syn)
    y_real, y_syn = np.asarray(y_real, str), np.asarray(y_syn, str)
    types = _shared_types(y_real, y_syn)
    vals = [fn(x_real[y_real == t], x_syn[y_syn == t]) for t in types]
    return pd.Series(vals, index=pd.Index(types, name="cell_type"), dtype=float)


def expressing_fraction_mae(x_real, y_real, x_syn, y_syn) -> pd.Series:
    """Per type: mean over genes of the absolute difference in the fraction of cells expressing (>0).

    Parameters
    ----------
    x_real, x_syn
        Log-normalized expression (cells × genes, same genes), numpy or scipy sparse.
    y_real, y_syn
        Cell-type labels.

    Returns
    -------
    Series indexed by the types with at least 2 cells on both sides; 0 = identical dropout pattern.
    """
    return _per_type(x_real, y_real, x_syn, y_syn,
                     lambda a, b: float(np.abs((a > 0).mean(0) - (b > 0).mean(0)).mean()))


def variance_log2_ratio(x_real, y_real, x_syn, y_syn, *, min_expressing: float = 0.05) -> pd.Series:
    """Per type: mean over genes of ``|log2((var_syn + 1e-3) / (var_real + 1e-3))|``.

    Only genes expressed (>0) in at least ``min_expressing`` of the type's real cells count: the many
    all-zero genes would otherwise sit at exactly 0 (or blow up on a tiny synthetic variance) and dominate.
    0 = same spread; 2 = variances off by a factor 4 (sd × 2). NaN for a type with no such gene.
    """
    def fn(a, b):
        keep = (a > 0).mean(0) >= min_expressing
        if not keep.any():
            return np.nan
        va, vb = a[:, keep].var(0, ddof=1), b[:, keep].var(0, ddof=1)
        return float(np.abs(np.log2((vb + 1e-3) / (va + 1e-3))).mean())

    return _per_type(x_real, y_real, x_syn, y_syn, fn)


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant vector gives NaN, not a warning
        return float(np.corrcoef(u, v)[0, 1])


def mean_pearson(x_real, y_real, x_syn, y_syn) -> pd.Series:
    """Per type: Pearson correlation of the per-gene mean expression of real and synthetic cells."""
    return _per_type(x_real, y_real, x_syn, y_syn, lambda a, b: _pearson(a.mean(0), b.mean(0)))


def _top_hvg(x: np.ndarray, n_top: int) -> set[int]:
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(x, var=pd.DataFrame(index=[str(i) for i in range(x.shape[1])]))
    with _scanpy_quiet():
        sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=n_top)
    # rank on the normalized dispersion ourselves: scanpy keeps every gene tied at the cut-off, so its
    # ``highly_variable`` can hold more than n_top genes
    disp = a.var["dispersions_norm"].to_numpy(dtype=float)
    return set(np.argsort(-np.nan_to_num(disp, nan=-np.inf), kind="stable")[:n_top].tolist())


def hvg_overlap(x_real, x_syn, var_names=None, *, n_top: int = 200) -> float:
    """Overlap of the top-``n_top`` highly variable genes (scanpy, ``flavor="seurat"``) of real vs synthetic.

    Parameters
    ----------
    x_real, x_syn
        Log-normalized expression over the same genes, in the same order.
    var_names
        Gene names (only for reference: genes are matched by position).
    n_top
        Number of genes; with fewer genes than that, all of them are used (and the overlap is 1).

    Returns
    -------
    ``|HVG_real ∩ HVG_syn| / n_top`` in [0, 1].
    """
    x_real, x_syn = _dense(x_real), _dense(x_syn)
    if var_names is not None and len(var_names) != x_real.shape[1]:
        msg = f"var_names has {len(var_names)} names for {x_real.shape[1]} genes"
        raise ValueError(msg)
    n_top = min(n_top, x_real.shape[1])
    if n_top == x_real.shape[1]:  # degenerate: every gene is "highly variable"
        return 1.0
    return len(_top_hvg(x_real, n_top) & _top_hvg(x_syn, n_top)) / n_top


def correlation_error(x_real, x_syn, *, n_top: int = 100) -> float:
    """Mean absolute difference of gene–gene Pearson correlations (off-diagonal) of real vs synthetic cells,
    over the ``n_top`` genes most variable in the real cells. NaN correlations (constant genes) count as 0."""
    x_real, x_syn = _dense(x_real), _dense(x_syn)
    genes = np.argsort(-x_real.var(0), kind="stable")[:min(n_top, x_real.shape[1])]
    if len(genes) < 2:
        return np.nan

    def corr(x):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(np.corrcoef(x[:, genes], rowvar=False), nan=0.0)

    off = ~np.eye(len(genes), dtype=bool)
    return float(np.abs(corr(x_real) - corr(x_syn))[off].mean())


def _knn_syn_fraction(x_real, x_syn, *, k, n_comps, random_state, max_cells=3000):
    """Per query real cell: fraction of its k joint-graph neighbours that are synthetic; also the query cells'
    indices into ``x_real`` and the expected fraction under perfect mixing."""
    from sklearn.neighbors import NearestNeighbors

    x_real, x_syn = _dense(x_real), _dense(x_syn)
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(x_real))
    # The PCA is fitted on real cells that are NOT in the graph: projected on axes fitted to themselves, real
    # cells keep the noise those axes overfit and sit more spread out than the (equally distributed) synthetic
    # ones, which then look like hubs (same-distribution halves scored ~1.4 with 30 PCs of 100 genes).
    n_fit = len(perm) // 2 if len(perm) >= 4 else 0
    fit_idx, ir = (perm[:n_fit][:max_cells], perm[n_fit:][:max_cells]) if n_fit else (perm, perm[:max_cells])
    ir = np.sort(ir)
    isy = np.sort(rng.choice(len(x_syn), min(max_cells, len(x_syn)), replace=False))
    xr, xs = x_real[ir], x_syn[isy]
    pca = fit_eval_pca(x_real[fit_idx], n_comps, random_state)  # real axes: synthetic noise can't define them
    z = np.vstack([pca(xr), pca(xs)])
    n_r, n_s = len(xr), len(xs)
    k = min(k, n_r + n_s - 1)
    # kneighbors() without X excludes each point itself (by index, so exact duplicates still count)
    idx = NearestNeighbors(n_neighbors=k).fit(z).kneighbors(return_distance=False)[:n_r]
    return (idx >= n_r).mean(1), ir, n_s / (n_r + n_s - 1)


def knn_mixing(x_real, x_syn, *, k: int = 15, n_comps: int = 30, random_state: int = 0) -> float:
    """How well synthetic cells mix with real ones in a joint kNN graph.

    The real cells are split at random in two halves: a PCA is fitted on one, and the other (at most 3,000
    cells) and the synthetic cells (subsampled to at most 3,000, seeded) are projected on it. In their joint
    kNN graph, for each real cell the fraction of its ``k`` nearest neighbours (self excluded) that are
    synthetic is averaged and divided by its expectation ``n_syn / (n_real + n_syn - 1)``.

    Returns
    -------
    1.0 = perfectly mixed; > 1 = synthetic cells are hubs; < 1 = synthetic cells sit apart (0 = disjoint).
    """
    frac, _, expected = _knn_syn_fraction(x_real, x_syn, k=k, n_comps=n_comps, random_state=random_state)
    return float(frac.mean() / expected)


def knn_mixing_per_type(x_real, y_real, x_syn, *, k: int = 15, n_comps: int = 30,
                        random_state: int = 0) -> pd.Series:
    """:func:`knn_mixing` averaged over the real cells of each type (same graph, same normalization):
    where in the real data synthetic cells are missing (< 1) or piling up (> 1)."""
    frac, ir, expected = _knn_syn_fraction(x_real, x_syn, k=k, n_comps=n_comps, random_state=random_state)
    y = np.asarray(y_real, str)[ir]
    return (pd.Series(frac / expected, index=pd.Index(y, name="cell_type"))
            .groupby(level=0, sort=False).mean())


def gene_level_quality(x_real, y_real, x_syn, y_syn, *, var_names=None, groupby: str = "cell_type",
                       random_state: int = 0) -> dict:
    """All gene-level realism metrics, as floats (per-type ones averaged over types).

    Cells of types present on only one side are left out; per-type metrics also skip types with fewer
    than 2 cells on a side.

    Returns
    -------
    dict with ``expressing_mae``, ``var_log2_ratio``, ``mean_r`` (see :func:`expressing_fraction_mae`,
    :func:`variance_log2_ratio`, :func:`mean_pearson`), ``marker_overlap`` (mean ``top20_overlap`` of
    :func:`marker_recovery`; NaN with fewer than 2 shared types), ``hvg_overlap``, ``corr_error``,
    ``knn_mixing``, and ``frac_nonzero_real`` / ``frac_nonzero_syn`` (fraction of nonzero entries).
    """
    import warnings

    import anndata as ad

    x_real, x_syn = _dense(x_real), _dense(x_syn)
    y_real, y_syn = np.asarray(y_real, str), np.asarray(y_syn, str)
    both = np.intersect1d(y_real, y_syn)
    if len(both) == 0:
        msg = "real and synthetic cells share no cell type"
        raise ValueError(msg)
    mr, ms = np.isin(y_real, both), np.isin(y_syn, both)
    x_real, y_real, x_syn, y_syn = x_real[mr], y_real[mr], x_syn[ms], y_syn[ms]

    def avg(s: pd.Series) -> float:
        return float(np.nanmean(s)) if s.notna().any() else np.nan

    out = {"expressing_mae": avg(expressing_fraction_mae(x_real, y_real, x_syn, y_syn)),
           "var_log2_ratio": avg(variance_log2_ratio(x_real, y_real, x_syn, y_syn)),
           "mean_r": avg(mean_pearson(x_real, y_real, x_syn, y_syn))}

    types = _shared_types(y_real, y_syn)
    if len(types) >= 2:  # Wilcoxon one-vs-rest needs >=2 groups of >=2 cells
        var = pd.DataFrame(index=pd.Index(var_names if var_names is not None
                                          else [f"g{i}" for i in range(x_real.shape[1])]).astype(str))

        def build(x, y):
            m = np.isin(y, types)
            return ad.AnnData(x[m], obs=pd.DataFrame({groupby: y[m]}, index=[f"c{i}" for i in range(m.sum())]),
                              var=var)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mk = marker_recovery(build(x_real, y_real), build(x_syn, y_syn), groupby)
        out["marker_overlap"] = avg(mk["top20_overlap"]) if len(mk) else np.nan
    else:
        out["marker_overlap"] = np.nan

    out |= {"hvg_overlap": hvg_overlap(x_real, x_syn, var_names),
            "corr_error": correlation_error(x_real, x_syn),
            "knn_mixing": knn_mixing(x_real, x_syn, random_state=random_state),
            "frac_nonzero_real": float((x_real > 0).mean()),
            "frac_nonzero_syn": float((x_syn > 0).mean())}
    return out
