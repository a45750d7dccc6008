"""Dataset manifests and the checksum-verified loader, against local files only (never the network)."""

import json
import shutil

import anndata as ad
import numpy as np
import pytest

import scbranch as sb
from scbranch import datasets


def test_every_manifest_has_the_schema():
    mans = datasets.manifests()
    assert {"pbmc68k_reduced", "cellxgene_leukemic_bone_marrow"} <= set(mans)
    for man in mans.values():
        assert man["url"] is None or (man["url"].startswith("https://") and len(man["sha256"]) == 64)
        assert man["label_key"]


def test_load_uses_a_cached_file_with_matching_checksum(tmp_path, monkeypatch):
    src = tmp_path / "toy.h5ad"
    ad.AnnData(np.ones((3, 2), np.float32)).write_h5ad(src)
    digest = datasets.sha256sum(src)
    man_dir = tmp_path / "manifests"
    man_dir.mkdir()
    man = {"name": "toy", "description": "", "url": "https://example.invalid/toy.h5ad", "sha256": digest,
           "size_bytes": src.stat().st_size, "format": "h5ad", "label_key": "x", "ontology_key": None,
           "licence": "", "citation": ""}
    (man_dir / "toy.json").write_text(json.dumps(man))
    monkeypatch.setattr(datasets, "manifest_dir", lambda: man_dir)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(src, cache / "toy.h5ad")
    assert datasets.load("toy", cache_dir=cache).shape == (3, 2)  # verified from cache: no download
    # a corrupted cache no longer matches the manifest's checksum: refused before any download is tried
    (cache / "toy.h5ad").write_bytes(b"corrupted")
    with pytest.raises(ValueError, match="does not match the sha256"):
        datasets.load("toy", cache_dir=cache)
    with pytest.raises(KeyError, match="unknown dataset"):
        datasets.load("nope")


def test_offline_default_loads_without_network():
    adata = sb.datasets.load("pbmc68k_reduced")
    assert adata.shape == (700, 765)
