"""Extending scbranch from outside the package: a representation and a sampler added by registration alone."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy import sparse

import scbranch as sb
from scbranch.representation import REPRESENTATIONS, Decoded, register_representation
from scbranch.sampling import SAMPLERS, register_sampler

from .conftest import fast


@dataclass(frozen=True)
class ToyOptions:
    n_genes_kept: int = 8  # model space: the first genes, centred and scaled


class ToyRepresentation:
    """The simplest representation: a few genes of log-normalized expression, standardized; decoded back by
    putting them in place (the other genes at their mean)."""

    kind, input, uses_batch, Options = "toy", "lognorm", False, ToyOptions
    makes_counts = False

    def __init__(self, n_genes_kept: int):
        self.k, self.mean_, self.sd_ = n_genes_kept, None, None

    @classmethod
    def from_options(cls, options, *, n_cells, progress=None):
        return cls(options.n_genes_kept)

    def genes(self, var_names):
        return var_names

    @property
    def n_features(self) -> int:
        return self.k

    def fit(self, X, *, var_names=None, batch=None, random_state=0):
        x = X.toarray() if sparse.issparse(X) else np.asarray(X)
        self.mean_, self.sd_ = x.mean(0).astype(np.float32), x[:, : self.k].std(0).astype(np.float32) + 1e-3
        return self

    def transform(self, X, *, batch=None):
        x = X.toarray() if sparse.issparse(X) else np.asarray(X)
        return ((x[:, : self.k] - self.mean_[: self.k]) / self.sd_).astype(np.float32)

    def fit_decoder(self, data, *, random_state=0):
        pass

    def decode(self, z, labels, *, random_state=0, transform_batch=None):
        x = np.tile(self.mean_, (len(z), 1))
        x[:, : self.k] = np.clip(z * self.sd_ + self.mean_[: self.k], 0, None)
        return Decoded(sparse.csr_matrix(x))

    def linear_view(self):
        return None

    def state_dict(self):
        return {"mean": torch.from_numpy(self.mean_), "sd": torch.from_numpy(self.sd_)}

    def meta(self):
        return {}

    @classmethod
    def from_state_dict(cls, state, *, meta):
        rep = cls(len(state["sd"]))
        rep.mean_, rep.sd_ = state["mean"].numpy(), state["sd"].numpy()
        return rep


@torch.no_grad()
def sample_toy_euler(model, x, ts, *, sde, extra_args=None, generator=None, callback=None):
    """Deterministic Euler on the probability-flow ODE: the sampler contract, nothing more."""
    for i in range(len(ts) - 1):
        t, dt = ts[i], ts[i + 1] - ts[i]
        _, sigma = sde.alpha_sigma(t)
        eps = model(x, t.expand(x.shape[0]), **(extra_args or {}))
        x = x + (-0.5 * sde.beta(t) * (x - eps / sigma)) * dt
        if callback is not None:
            callback({"i": i, "t": t, "x": x})
    return x


@pytest.fixture
def registered():
    register_representation(ToyRepresentation)
    register_sampler("toy_euler", sample_toy_euler, evals_per_step=1, default_steps=30)
    yield
    REPRESENTATIONS.pop("toy")
    SAMPLERS.pop("toy_euler")


def test_a_representation_and_a_sampler_added_by_registration_alone(toy_adata, registered, tmp_path):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", representation="toy", **fast(max_steps=100))
    assert model.representation.kind == "toy" and adata.obsm["X_scbranch"].shape[1] == 8
    syn = sb.tl.generate(model, 10, sampler="toy_euler")
    assert syn.n_obs == 30 and syn.uns["scbranch"]["generate"]["nfe_per_trajectory"] == 30
    assert np.isfinite(syn.obsm["X_scbranch"]).all() and list(syn.var_names) == list(adata.var_names)
    model.save(tmp_path / "toy")  # loading finds the class in the registry too
    back = sb.BranchedDiffusion.load(tmp_path / "toy")
    np.testing.assert_array_equal(sb.tl.generate(back, 10, sampler="toy_euler").obsm["X_scbranch"],
                                  syn.obsm["X_scbranch"])
    with pytest.raises(ValueError, match=r"not options of representation='toy' but of representation='pca' or "
                                         r"representation='scvi'; it takes \['n_genes_kept'\]"):
        sb.tl.fit(adata.copy(), groupby="cell_type", representation="toy", n_comps=5, **fast(max_steps=20))


def test_registration_refuses_what_is_not_a_representation():
    with pytest.raises(TypeError, match="is not a representation"):
        register_representation(int)
