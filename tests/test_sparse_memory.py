"""Memory follows the non-zeros: sparse input is never made dense as a whole, in memory and backed alike."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.decomposition import PCA

import scbranch as sb
from scbranch import _chunks, _normalize
from scbranch.representation import PCARepresentation, _library, _nb_decoder

from .conftest import fast

N_CELLS, N_GENES = 2000, 5000


def _wide_counts(n_cells: int = N_CELLS, n_genes: int = N_GENES, density: float = 0.12, seed: int = 0) -> ad.AnnData:
    """Sparse Poisson counts of 3 types that differ in a tenth of their gene means (about ``density`` non-zero)."""
    rng = np.random.default_rng(seed)
    mu = rng.lognormal(0.0, 1.5, n_genes)
    lo, hi = -20.0, 10.0  # bisect the scale c of the means: mean P(count > 0) = 1 - exp(-c·μ) is the density
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - np.exp(-np.exp(mid) * mu)).mean() < density else (lo, mid)
    mu *= np.exp(lo)
    shift = np.ones((3, n_genes))
    for k in range(3):
        shift[k, rng.choice(n_genes, n_genes // 10, replace=False)] = 4.0
    types = rng.integers(3, size=n_cells)
    x = sparse.csr_matrix(rng.poisson(mu * shift[types] * rng.lognormal(0, 0.3, (n_cells, 1))).astype(np.float32))
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"t{k}" for k in types])}, index=[f"c{i}" for i in range(n_cells)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


@pytest.fixture(scope="module")
def wide():
    return _wide_counts()


def test_sparse_lognorm_equals_dense(wide):
    x = wide.X[:300]
    out = _normalize.lognorm(x, "counts")
    assert sparse.issparse(out) and out.dtype == np.float32 and out.nnz == x.nnz
    np.testing.assert_array_equal(out.toarray(), _normalize.lognorm(x.toarray(), "counts"))


def test_sparse_pca_matches_the_dense_pca():
    """The blockwise sparse PCA gives the components, scores and scale of the dense (LAPACK) PCA used before."""
    adata = _wide_counts(400, 600, seed=1)
    x = _normalize.lognorm(adata.X, "counts")
    for n_comps in (5, 15):
        rep = PCARepresentation(n_comps).fit(x)  # sparse, centred implicitly
        ref = PCA(n_components=n_comps, svd_solver="full").fit(x.toarray())
        scores = ref.transform(x.toarray())
        np.testing.assert_allclose(rep.mean_, ref.mean_, atol=1e-6)
        # the leading axes (types, depth) are far above the noise: the same to float tolerance, sign included
        np.testing.assert_allclose(rep.components_[:3], ref.components_[:3], atol=1e-4)
        # in the noise tail near-equal singular values may rotate into each other: the same subspace
        cos = np.linalg.svd(rep.components_ @ ref.components_.T, compute_uv=False)
        assert cos.min() > 0.9999, cos
        common = np.sqrt(np.mean(scores.var(0)))
        np.testing.assert_allclose(rep.scale_, common, rtol=1e-5)
        np.testing.assert_allclose(rep.transform(x)[:, :3], scores[:, :3] / common, atol=1e-3)


def test_blocks_give_the_same_pca_as_one_matrix(wide):
    x = _normalize.lognorm(wide.X[:600], "counts")
    whole = PCARepresentation(10).fit(x)
    blocks = PCARepresentation(10).fit_blocks([x[lo : lo + 128] for lo in range(0, 600, 128)])
    np.testing.assert_allclose(blocks.components_, whole.components_, atol=1e-5)
    np.testing.assert_allclose(blocks.transform(x), whole.transform(x), atol=1e-4)


@pytest.fixture
def short_decoder(monkeypatch):
    """A count decoder trained 50 steps: these tests are about memory and equality, not quality."""
    monkeypatch.setattr(_nb_decoder, "STEP_RANGE", (50, 50))


@pytest.fixture
def no_dense_matrix(monkeypatch, short_decoder):
    """Any densification of a sparse matrix holding a tenth or more of the cells × genes values fails; the
    bounded blocks (dense input, dispersion, decoding) are made small enough to tell apart from the matrix."""
    limit = N_CELLS * N_GENES // 10
    for owner, name in ((_chunks, "DENSE_BLOCK_VALUES"), (_nb_decoder, "BLOCK_VALUES"), (_library, "DECODE_VALUES")):
        monkeypatch.setattr(owner, name, limit // 2)
    for cls in (sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix, sparse.csr_array, sparse.csc_array):
        for name in ("toarray", "todense"):
            original = getattr(cls, name)

            def guarded(self, *args, _original=original, **kwargs):
                if self.shape[0] * self.shape[1] >= limit:
                    msg = f"densified a {self.shape} sparse matrix"
                    raise AssertionError(msg)
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, name, guarded)


def test_in_memory_fit_never_densifies(wide, no_dense_matrix):
    import tracemalloc

    adata = wide.copy()
    tracemalloc.start()
    try:
        model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **fast(max_steps=20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # numpy's and scipy's allocations are traced (torch's are not): all the fit held at once follows the
    # non-zeros (a few sparse copies: normalized cells, the decoder's cells), not cells × genes
    x = wide.X
    assert x.nnz < 0.15 * N_CELLS * N_GENES
    assert peak < 8 * (x.data.nbytes + x.indices.nbytes + x.indptr.nbytes), peak / 2**20
    syn = sb.tl.generate(model, 50, progress=False)
    # counts in, counts out: .X holds the synthetic counts, .layers["lognorm"] their normalization; both sparse
    assert sparse.issparse(syn.X) and sparse.issparse(syn.layers["lognorm"])
    c = syn.X.data
    assert np.array_equal(c, np.round(c)) and syn.n_vars == N_GENES


def test_backed_and_in_memory_fits_are_the_same_model(wide, tmp_path, monkeypatch, short_decoder):
    monkeypatch.setattr(_chunks, "CHUNK_CELLS", 500)  # several blocks on both routes
    adata = wide[:1000].copy()
    path = tmp_path / "wide.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    assert _chunks.is_chunked(backed.X)
    opts = fast(max_steps=20)
    mem = sb.tl.fit(adata, groupby="cell_type", random_state=0, **opts)
    disk = sb.tl.fit(backed, groupby="cell_type", random_state=0, **opts)
    a, b = mem.representation, disk.representation
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-6)
    np.testing.assert_allclose(a.mean_, b.mean_, atol=1e-7)
    np.testing.assert_allclose(a.scale_, b.scale_, rtol=1e-6)
    np.testing.assert_allclose(adata.obsm["X_scbranch"], backed.obsm["X_scbranch"], atol=1e-5)
    s1 = sb.tl.generate(mem, 20, progress=False, random_state=3)
    s2 = sb.tl.generate(disk, 20, progress=False, random_state=3)
    np.testing.assert_array_equal(s1.X.toarray(), s2.X.toarray())
