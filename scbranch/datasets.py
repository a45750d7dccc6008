"""Datasets: the offline default, and public datasets described by manifests and downloaded with checksums.

Each file in ``data_manifests/`` (shipped inside the package) describes one dataset: its URL, sha256, size,
label and ontology-ID columns and licence. :func:`load` downloads it once with ``pooch`` into a cache,
verifying the checksum, and reads it. Nothing here runs at import time or in the tests' network path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse

__all__ = ["load", "manifests", "pbmc68k", "pbmc68k_counts"]

REQUIRED_KEYS = {"name", "description", "url", "sha256", "size_bytes", "format", "label_key", "ontology_key",
                 "licence", "citation"}


def pbmc68k() -> ad.AnnData:
    """scanpy's ``pbmc68k_reduced`` as scbranch wants it: the log-normalized ``.raw`` (700 cells × 765 genes;
    its ``.X`` is scaled), with ``obs["bulk_labels"]`` (10 types, 8–240 cells), ``obs["phase"]`` (cell-cycle
    phase: G1 501, S 182, G2M 17 cells; a real covariate for ``condition_keys``) and the original UMAP."""
    import scanpy as sc

    full = sc.datasets.pbmc68k_reduced()
    adata = full.raw.to_adata()
    adata.obs = full.obs[["bulk_labels", "n_counts", "percent_mito", "phase"]].copy()
    adata.obs["phase"] = adata.obs["phase"].astype("category")
    adata.obsm["X_umap"] = full.obsm["X_umap"].copy()
    return adata


def pbmc68k_counts() -> ad.AnnData:
    """:func:`pbmc68k` with integer counts in ``.X`` and ``layers["counts"]``, for count models (scVI).

    ``pbmc68k_reduced`` ships no raw matrix, but its ``.raw`` is log1p(s·counts) with one scale s per cell, so
    the counts come back exactly: expm1(x)/s, with s the cell's smallest non-zero value (a count of 1).
    Library sizes are over its 765 genes only.
    """
    adata = pbmc68k()
    x = np.expm1(adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X, dtype=np.float64))
    scale = np.where(x > 0, x, np.inf).min(1, keepdims=True)
    ratio = x / scale
    counts = np.round(ratio)
    if np.abs(ratio - counts).max() > 0.35:  # float32 storage leaves ≤ 0.12 here; a non-count matrix far more
        msg = "pbmc68k_reduced's .raw is not a per-cell scaling of integer counts in this scanpy version"
        raise ValueError(msg)
    adata.X = sparse.csr_matrix(counts.astype(np.float32))
    adata.layers["counts"] = adata.X.copy()
    return adata


def manifest_dir() -> Path:
    here = Path(__file__).parent
    for cand in (here / "data_manifests", here.parent / "data_manifests"):  # wheel, then source checkout
        if cand.is_dir():
            return cand
    msg = "no data_manifests folder found next to the package"
    raise FileNotFoundError(msg)


def manifests() -> dict[str, dict]:
    """All dataset manifests by name (validated)."""
    out = {}
    for path in sorted(manifest_dir().glob("*.json")):
        man = json.loads(path.read_text())
        missing = REQUIRED_KEYS - set(man)
        if missing:
            msg = f"manifest {path.name} lacks {sorted(missing)}"
            raise ValueError(msg)
        out[man["name"]] = man
    return out


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load(name: str, *, cache_dir: str | Path | None = None, data_dir: str | Path | None = None) -> ad.AnnData:
    """Download (once, checksum-verified, cached) and read the dataset ``name`` from its manifest.
    ``data_dir``: a folder that may hold the manifest's file already (e.g. a lab's shared data folder); a copy
    there is used when its sha256 matches the manifest's, and refused when it does not."""
    import pooch

    mans = manifests()
    if name not in mans:
        msg = f"unknown dataset {name!r}; available: {sorted(mans)}"
        raise KeyError(msg)
    man = mans[name]
    local = Path(data_dir) / (man.get("filename") or name) if data_dir is not None else None
    if local is not None and local.exists() and man["sha256"]:
        if sha256sum(local) != man["sha256"]:
            msg = f"{local} does not match the sha256 in the {name!r} manifest"
            raise ValueError(msg)
        return ad.read_h5ad(local)
    if man["url"] is None:
        if man.get("loader") == "scbranch.datasets.pbmc68k":
            return pbmc68k()
        msg = f"dataset {name!r} has no download URL ({man.get('notes', 'see its manifest')})"
        raise ValueError(msg)
    cache = Path(cache_dir) if cache_dir else Path(pooch.os_cache("scbranch"))
    fname = man.get("filename") or Path(man["url"]).name
    cached = cache / fname
    if cached.exists() and sha256sum(cached) != man["sha256"]:
        # never use, and never silently replace, a file that is not the one the manifest names
        msg = f"{cached} does not match the sha256 in the {name!r} manifest; delete it to download it again"
        raise ValueError(msg)
    path = pooch.retrieve(man["url"], known_hash=f"sha256:{man['sha256']}", fname=fname, path=cache)
    return ad.read_h5ad(path)
