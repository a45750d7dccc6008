"""scVI as the model space: branched diffusion on scVI's latent means, synthetic cells decoded to counts.

scVI (Lopez et al. 2018) is trained (or given) on the raw counts; its latent means, centred and divided by
one common scale (as the PCA representation does, for the same reason: the VP prior N(0, I)), are the cells
the diffusion model learns. A synthetic latent goes back through scVI's decoder: library size drawn from the
library sizes of real cells of that type (with the input's normalization, see :mod:`._library`), batch from
the type's observed batches (or one fixed batch with ``transform_batch``), counts sampled from scVI's (ZI)NB
likelihood.

scVI itself is saved as its module's tensors (in the model's ``model.pt``) plus its constructor options and
setup (layer, batch key, batch order) as JSON, and rebuilt on load by ``SCVI(stub_adata, **options)`` and
``load_state_dict``, on an AnnData of one stub cell per batch. Not with ``SCVI.save``/``SCVI.load``: scvi-tools
unpickles its ``model.pt`` with ``weights_only=False``, so a shared model directory could run code on load.
"""

from __future__ import annotations

import copy
import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse

from .._progress import enabled, quiet_third_party, training_bar
from ._library import Libraries
from ._protocol import Decoded, DecoderData
from ._registry import register_representation


@contextmanager
def _seeded(seed: int):
    """Seed scvi-tools (which seeds python, numpy and torch globally) and restore the user's RNG states."""
    import scvi

    # scVI seeds the global generators; the user's are restored afterwards (legacy API on purpose)
    py, npy = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng():
        scvi.settings.seed = int(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)  # noqa: NPY002


def _counts_adata(X, var_names, batch, setup: dict | None = None, batches: list[str] | None = None) -> ad.AnnData:
    """An AnnData scvi-tools accepts for a model set up with ``setup`` (its setup_args): counts in its layer,
    batches in its batch column (categories ``batches``, in that order, when given). Only a layer and a batch key
    are supported (no other covariates)."""
    setup = setup or {}
    X = sparse.csr_matrix(X, dtype=np.float32)
    obs = pd.DataFrame(index=[str(i) for i in range(X.shape[0])])
    if batch is not None:
        obs[setup.get("batch_key") or "batch"] = pd.Categorical(np.asarray(batch, dtype=str), categories=batches)
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(var_names, dtype=str)))
    if setup.get("layer"):
        adata.layers[setup["layer"]] = X
    return adata


@contextmanager
def _few_cells_ok():
    """scVI warns when a batch or label category has < 3 cells, which matters for training it, not for
    transforming cells with a trained model or rebuilding it on a stub."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Category .* has fewer than 3 cells")
        yield


@dataclass(frozen=True)
class SCVIOptions:
    """``n_comps``: scVI's ``n_latent`` (default 10); ``scvi_model``: a trained ``scvi.model.SCVI`` to use instead
    of training one; ``scvi_epochs``: scVI's epochs (``None``: scvi-tools')."""

    n_comps: int | None = None
    scvi_model: Any = field(default=None, repr=False)
    scvi_epochs: int | None = None


@register_representation
class SCVIRepresentation:
    kind = "scvi"
    input = "counts"  # what :meth:`fit`/:meth:`transform` read (the PCA representation reads log-normalized)
    uses_batch = True
    Options = SCVIOptions

    def __init__(self, n_comps: int = 10, *, max_epochs: int | None = None, scvi_model=None,
                 progress: bool | None = False):
        self.n_comps, self.max_epochs, self.progress = n_comps, max_epochs, progress
        self.scvi = scvi_model
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.batches: list[str] | None = None
        self.var_names: list[str] | None = None
        self.type_names: list[str] = []  # rows of batch_freq
        self.batch_freq = np.zeros((0, 1), np.float32)
        self.libraries: Libraries | None = None

    makes_counts = True

    @classmethod
    def from_options(cls, options: SCVIOptions, *, n_cells: int, progress: bool | None = None) -> SCVIRepresentation:
        return cls(options.n_comps or 10, max_epochs=options.scvi_epochs, scvi_model=options.scvi_model,
                   progress=progress)

    def genes(self, var_names: pd.Index) -> pd.Index:
        """All of them, or a given scVI model's (each must be in ``var_names``)."""
        if self.scvi is None:
            return var_names
        genes = pd.Index(self.scvi.adata.var_names.astype(str))
        missing = genes.difference(var_names)
        if len(missing):
            msg = f"{len(missing)} genes of the given scVI model are missing from adata, e.g. {list(missing[:5])}"
            raise ValueError(msg)
        return genes

    def __deepcopy__(self, memo):
        """A copy that shares the scVI model: scbranch never changes scVI after fit, and scVI holds its AnnData."""
        new = copy.copy(self)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k != "scvi":
                setattr(new, k, copy.deepcopy(v, memo))
        return new

    @property
    def n_features(self) -> int:
        return self.n_comps

    # ---- fit / transform ------------------------------------------------------------------------------------
    def fit(self, X, *, var_names, batch=None, random_state: int = 0) -> SCVIRepresentation:
        import scvi

        self.var_names = list(map(str, var_names))
        if self.scvi is not None:
            setup = self.setup_args
            unsupported = [k for k in ("labels_key", "size_factor_key", "categorical_covariate_keys",
                                       "continuous_covariate_keys") if setup.get(k)]
            if unsupported or bool(setup.get("batch_key")) != (batch is not None):
                msg = (f"the given scVI model was set up with {setup}; scbranch supports scVI models set up with a "
                       "layer and batch_key only, and needs batch_key= exactly when the scVI model has one")
                raise ValueError(msg)
            if list(map(str, self.scvi.adata.var_names)) != self.var_names:
                msg = "the given scVI model was trained on other genes than adata's (match var_names and order)"
                raise ValueError(msg)
        else:
            adata = _counts_adata(X, self.var_names, batch)
            # scVI's own bar and Lightning's lines ("GPU available", "Seed set to") printed even at verbosity 0;
            # our bar (over scVI's steps) follows scanpy's verbosity like the diffusion model's
            callbacks = [training_bar("training scVI")] if enabled(self.progress) else []
            with quiet_third_party(), _seeded(random_state):
                scvi.model.SCVI.setup_anndata(adata, batch_key="batch" if batch is not None else None)
                self.scvi = scvi.model.SCVI(adata, n_latent=self.n_comps)
                self.scvi.train(max_epochs=self.max_epochs, enable_progress_bar=False, callbacks=callbacks,
                                accelerator="cpu" if not torch.cuda.is_available() else "auto")
        self.n_comps = int(self.scvi.module.n_latent)
        reg = self.scvi.adata_manager.get_state_registry(scvi.REGISTRY_KEYS.BATCH_KEY)
        self.batches = list(map(str, reg.categorical_mapping)) if batch is not None else None
        mu = self._latent_means(X, batch)
        self.mean_ = mu.mean(0).astype(np.float32)
        common = float(np.sqrt(np.mean(mu.var(0)))) or 1.0
        self.scale_ = np.full(self.n_comps, common, dtype=np.float32)
        return self

    @property
    def setup_args(self) -> dict:
        return dict(self.scvi.adata_manager.registry.get("setup_args", {}))

    def _latent_means(self, X, batch) -> np.ndarray:
        adata = _counts_adata(X, self.var_names, batch if self.batches is not None else None, self.setup_args)
        # transforming a handful of cells (e.g. load's one-cell check) is fine; scVI's "Input AnnData not setup"
        # info line is not news here (each call is a new AnnData)
        with _few_cells_ok(), quiet_third_party():
            return self.scvi.get_latent_representation(adata, give_mean=True).astype(np.float32)

    def transform(self, X, *, batch=None) -> np.ndarray:
        if self.batches is not None:
            unknown = sorted(set(map(str, batch)) - set(self.batches)) if batch is not None else ["<none given>"]
            if unknown:
                msg = f"batches unknown to the scVI model: {unknown}; it knows {self.batches}"
                raise ValueError(msg)
        return ((self._latent_means(X, batch) - self.mean_) / self.scale_).astype(np.float32)

    # ---- decoding ---------------------------------------------------------------------------------------------
    def fit_decoder(self, data: DecoderData, *, random_state: int = 0) -> None:
        """Per type: library sizes (with the input's normalization) and the frequency of each batch."""
        labels = np.asarray(data.labels, dtype=str)
        info = data.counts  # always there: scVI reads counts (raw or recovered), so they exist
        self.libraries = self.libraries or Libraries(info.target_sum)
        # libraries follow the state (see _library.K_LIB)
        z = data.z if data.z is not None else self.transform(data.x, batch=data.batch)
        self.libraries.fit(info.counts, labels, info.scale, z=z, target_sum=info.target_sum, random_state=random_state)
        n_b = len(self.batches) if self.batches else 1
        for ty in pd.unique(labels):
            m = labels == ty
            freq = np.ones(n_b, np.float32)
            if self.batches:
                codes = pd.Categorical(np.asarray(data.batch, str)[m], categories=self.batches).codes
                freq = np.bincount(codes, minlength=n_b).astype(np.float32)
            freq /= freq.sum()
            if ty in self.type_names:
                self.batch_freq[self.type_names.index(ty)] = freq
            else:
                self.type_names.append(ty)
                self.batch_freq = np.vstack([self.batch_freq.reshape(-1, n_b), freq[None]])

    def decode(self, z: np.ndarray, labels, *, random_state: int | None = 0,
               transform_batch: str | None = None) -> Decoded:
        """Counts for model-space cells ``z`` of types ``labels`` from scVI's generative model, their
        log-normalization, and the batch each cell was decoded in (``None`` without batches)."""
        labels = np.asarray(labels, dtype=str)
        if transform_batch is not None and str(transform_batch) not in (self.batches or []):
            msg = f"transform_batch={transform_batch!r} is not a batch of the scVI model; batches: {self.batches}"
            raise ValueError(msg)
        missing = sorted(set(labels) - set(self.type_names))
        if missing:
            msg = f"the decoder has no types {missing}"
            raise ValueError(msg)
        random_state = 0 if random_state is None else random_state
        rng = np.random.default_rng(random_state)
        k = np.array([self.type_names.index(t) for t in labels], dtype=int)
        if transform_batch is not None:
            b = np.full(len(z), self.batches.index(str(transform_batch)))
        else:
            cum = self.batch_freq[k].cumsum(1)
            b = (rng.random(len(z))[:, None] > cum).sum(1).clip(0, cum.shape[1] - 1)
        latent = torch.from_numpy((z * self.scale_ + self.mean_).astype(np.float32))
        module = self.scvi.module.eval()

        def draw_counts(rows, lib, factors):
            out = module.generative(z=latent[rows], library=torch.from_numpy(np.log(np.maximum(lib, 1.0)))[:, None],
                                    batch_index=torch.from_numpy(b[rows])[:, None].long())
            return out["px"].sample().numpy().astype(np.float32)

        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(int(random_state))
            X, counts = self.libraries.sample(labels, draw_counts, rng, z)
        return Decoded(X, counts,
                       np.asarray(self.batches)[b] if self.batches else None)

    # ---- save / load ----------------------------------------------------------------------------------------
    def linear_view(self) -> None:
        return None  # scVI's decoder is not linear in log-normalized expression

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": torch.from_numpy(self.mean_), "scale": torch.from_numpy(self.scale_),
                "batch_freq": torch.from_numpy(self.batch_freq),
                **{f"libraries/{k}": v for k, v in self.libraries.state_dict().items()},
                **{f"scvi/{k}": v.detach().cpu() for k, v in self.scvi.module.state_dict().items()}}

    def meta(self) -> dict:
        return {"batches": self.batches, "var_names": self.var_names, "type_names": self.type_names,
                "libraries": self.libraries.meta(), "n_comps": self.n_comps,
                "setup_args": {k: self.setup_args.get(k) for k in ("layer", "batch_key")},
                "scvi_options": self.scvi_options()}

    def scvi_options(self) -> dict:
        """scVI's constructor options (``SCVI(adata, **options)``), which must be plain JSON values."""
        params = getattr(self.scvi, "init_params_", {}) or {}
        options = {**params.get("non_kwargs", {}), **params.get("kwargs", {}).get("kwargs", {})}
        bad = {k: type(v).__name__ for k, v in options.items()
               if not (v is None or isinstance(v, bool | int | float | str))}
        if bad:
            msg = f"cannot save the scVI model: constructor options that are not plain values: {bad}"
            raise TypeError(msg)
        return options

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, meta: dict) -> SCVIRepresentation:
        import scvi

        rep = cls(meta["n_comps"])
        rep.mean_, rep.scale_ = state["mean"].numpy(), state["scale"].numpy()
        rep.batch_freq = state["batch_freq"].numpy()
        rep.libraries = Libraries.from_state({k.split("/", 1)[1]: v for k, v in state.items()
                                              if k.startswith("libraries/")}, meta["libraries"])
        rep.batches, rep.var_names, rep.type_names = meta["batches"], meta["var_names"], list(meta["type_names"])
        n = len(rep.batches) if rep.batches else 1
        setup = meta["setup_args"]
        stub = _counts_adata(np.ones((n, len(rep.var_names))), rep.var_names, rep.batches, setup, rep.batches)
        with _few_cells_ok():  # one stub cell per batch is the point
            scvi.model.SCVI.setup_anndata(stub, layer=setup.get("layer"), batch_key=setup.get("batch_key"))
            rep.scvi = scvi.model.SCVI(stub, **meta["scvi_options"])
        rep.scvi.module.load_state_dict({k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("scvi/")})
        rep.scvi.module.eval()
        rep.scvi.is_trained_ = True
        return rep
