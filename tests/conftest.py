import inspect

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import scbranch as sb


def fast(**kw) -> dict:
    """Small, fast options for ``tl.fit`` (these tests check behaviour, not quality, except test_pbmc.py);
    model options (``softness=``, ``branched=``, …) go into ``model_kwargs`` and training options into
    ``train_kwargs``, as fit expects them."""
    model, train, rest = sb.model.route(kw, own=inspect.signature(sb.tl.fit).parameters)
    train = {**rest.pop("train_kwargs", {}), **train}
    return {"max_steps": 300, "progress": False, **rest, "model_kwargs": {"width": 64, "n_blocks": 2, **model},
            "train_kwargs": train}


FAST = fast()

TOY_TREE = {"AB": {"A": None, "B": None}, "C": None}


@pytest.fixture(scope="session")
def toy_adata():
    """Counts for a 3-leaf tree ((A,B),C): A and B split late, C far away."""
    return sb.simulate.simulate_tree(TOY_TREE, n_cells={"A": 120, "B": 100, "C": 80}, n_genes=60, random_state=0)


@pytest.fixture(scope="session")
def toy_model(toy_adata):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast())
    return model, adata


@pytest.fixture
def scanpy_log():
    """What scbranch logs, as text: scanpy's log file (scbranch logs through scanpy's logger) set to a buffer."""
    import io

    import scanpy as sc

    before, buffer = sc.settings.logfile, io.StringIO()
    sc.settings.logfile = buffer
    yield buffer
    sc.settings.logfile = before


def dense(x) -> np.ndarray:
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def assert_adata_equal(a: ad.AnnData, b: ad.AnnData):
    """Deep equality of everything a tool could write to."""
    assert a.shape == b.shape
    xa, xb = (m.toarray() if sparse.issparse(m) else np.asarray(m) for m in (a.X, b.X))
    np.testing.assert_array_equal(xa, xb)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert set(a.obsm) == set(b.obsm) and set(a.layers) == set(b.layers)
    assert set(a.uns) == set(b.uns) and set(a.varm) == set(b.varm) and set(a.obsp) == set(b.obsp)
    for k in a.obsm:
        np.testing.assert_array_equal(np.asarray(a.obsm[k]), np.asarray(b.obsm[k]))
    for k in a.layers:
        la, lb = (m.toarray() if sparse.issparse(m) else np.asarray(m) for m in (a.layers[k], b.layers[k]))
        np.testing.assert_array_equal(la, lb)
