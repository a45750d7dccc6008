"""BranchedDiffusion: the AnnData-aware model over the pure-torch module (scvi-tools' model/module split).

It owns what ties the module to a dataset — which obs column, which matrix, the representation, the
hierarchy and the type order — and training, sampling, save and load.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .. import _anndata, _chunks, _normalize
from .. import _logging as logg
from .._normalize import counts_info
from .._progress import sampling_bar
from .._threads import torch_threads
from ..hierarchy import Hierarchy
from ..module import make_module
from ..module._network import upgrade_state_dict
from ..module._shapes import check_shapes
from ..representation import REPRESENTATIONS, Decoded, DecoderData
from ..sampling import DEFAULT_SAMPLER, get_sampler, get_times, sample_tree
from . import _continual, _impute, _mapping
from ._checks import check_genes, check_meta
from ._conditions import condition_codes, conditioned
from ._config import ModelConfig, SetupConfig, TrainConfig, split_options
from ._device import on_device
from ._device import resolve as resolve_device
from ._generate import decoded_adata, generate
from ._io import load_dir, plain, save_dir
from ._requests import plan
from ._setup import prepare
from ._state import ModelState
from ._training import default_steps, train_module
from ._types import TypeClassifier, TypeScores


class BranchedDiffusion:
    """A hierarchically branched diffusion model of the cells of an AnnData.

    Set up on ``adata`` (validation, the model space, the hierarchy and its branch points), then :meth:`train`,
    :meth:`sample`, :meth:`generate`, :meth:`transmute`, :meth:`transfer`, :meth:`impute`, :meth:`score_types`,
    :meth:`add_cell_type`, :meth:`save` / :meth:`load`; its state is one :class:`~scbranch.model.ModelState`
    (:attr:`state`). ``scbranch.tl.fit`` does setup and training in one call and records the diagnostics in
    ``adata.uns``; the other ``scbranch.tl`` functions are adapters over these methods that write into AnnData.

    Parameters
    ----------
    adata
        Cells × genes (raw counts or log-normalized; which one is detected and logged). Not modified.
    groupby
        ``adata.obs`` column of cell types; ``None``: the first usual label column (see ``tl.fit``).
    hierarchy
        ``None``/``"data"`` (learned from the data), ``"cl"`` (Cell Ontology), a list of nested ``adata.obs``
        columns (coarse to fine), a Newick string or file, a nested dict, a parent/child table or a
        :class:`~scbranch.Hierarchy` (see ``tl.fit``).
    random_state
        Seed of the representation, the branch-point test, the network's initialisation and training.
    progress
        Progress bars (``None``: at scanpy's verbosity >= 1, see ``tl.fit``).
    **options
        Fields of :class:`~scbranch.model.SetupConfig` (how cells are read: ``layer``, ``batch_key``,
        ``min_cells``, …) and :class:`~scbranch.model.ModelConfig` (``representation``, ``n_comps``, ``width``,
        ``sharing``, …); an unknown name is a ``TypeError`` listing the valid ones.

    Examples
    --------
    >>> model = sb.BranchedDiffusion(adata, groupby="bulk_labels", width=64)
    >>> model.train(max_steps=2000)
    >>> syn = model.generate(200)
    """

    def __init__(self, adata: ad.AnnData, *, groupby: str | None = None, hierarchy=None, random_state: int = 0,
                 progress: bool | None = None, **options):
        setup, model_options = split_options(options, SetupConfig, ModelConfig, where="model options")
        self.prepared = prepare(adata, groupby=groupby, hierarchy=hierarchy, setup=setup, model=model_options,
                                random_state=random_state, progress=progress)
        self._build(self.prepared.state, self.prepared.rep, self.prepared.tree)
        # the given scVI model is held by the representation: a second reference would be deep-copied by
        # transaction() (scVI and its AnnData), so the options keep only the plain values
        plain_kwargs = {k: v for k, v in (model_options.representation_kwargs or {}).items()
                        if v is None or isinstance(v, str | int | float | bool | list | tuple)}
        self.setup_options, self.model_options = setup, dataclasses.replace(
            model_options, scvi_model=None, representation_kwargs=plain_kwargs or None)
        self.train_options = None

    @classmethod
    def from_parts(cls, state: ModelState | Mapping, representation, hierarchy: Hierarchy, *,
                   weights: Mapping | None = None) -> BranchedDiffusion:
        """Low level: a model from its state (or its JSON), a fitted representation and a timed hierarchy, with no
        training data (:meth:`load` and the benchmarks build models this way; train it with :meth:`train_arrays`).
        ``weights``: the score network's state dict, loaded after checking that it fits the state."""
        model = cls.__new__(cls)
        state = state if isinstance(state, ModelState) else ModelState.from_json(plain(dict(state)))
        model._build(state, representation, hierarchy, weights=weights)
        model.prepared, model.setup_options, model.model_options, model.train_options = None, None, None, None
        return model

    def _build(self, state: ModelState, representation, hierarchy: Hierarchy, *,
               weights: Mapping | None = None) -> None:
        self.state = state
        self.representation = representation
        self.hierarchy = hierarchy
        self._set_branches()
        module_config = self._module_config()
        if weights is not None:  # shapes first, on the meta device: a config asking for 100 GB allocates nothing
            check_shapes(lambda: make_module(module_config), weights, "the score network")
        with torch.random.fork_rng():  # seeded initialisation without touching the user's global RNG
            torch.manual_seed(int(state.random_state))
            self.module = make_module(module_config)
        if weights is not None:
            self.module.load_state_dict(weights)
        self.history: dict = {}
        self.is_trained = False
        self.classifier: TypeClassifier | None = None  # p(type | x_t, t): resampling at branch points, score_types
        self.last_added: dict | None = None  # the report of the last add_cell_type

    @property
    def types(self) -> list[str]:
        """The cell types the model generates, in model order."""
        return self.state.types

    @property
    def config(self) -> dict:
        """The model's state as a plain dict: deprecated, read :attr:`state` (a :class:`ModelState`)."""
        warnings.warn("model.config is deprecated: read model.state (e.g. model.state.width)", FutureWarning,
                      stacklevel=2)
        return self.state.to_json()

    def _set_branches(self) -> None:
        """Branch table of the hierarchy plus, per branch, the network head (and embedding) it uses.

        Usually one head per branch; after :func:`~scbranch.tl.add_cell_type` (heads-only) a new node's
        branch reuses the frozen head of the branch it was cut from, so old types stay exactly as they were.
        """
        df = self.hierarchy.branches()
        if self.state.heads is None:  # one head per branch until a type is added
            self.state = dataclasses.replace(self.state, heads={n: i for i, n in enumerate(df.node)})
        heads = self.state.heads
        missing = sorted(set(df.node) - set(heads))
        if missing:
            msg = f"branches without a network head: {missing}"
            raise ValueError(msg)
        df["head"] = [int(heads[n]) for n in df.node]
        self.branches = df

    def branches_table(self) -> pd.DataFrame:
        """The branch table as written to ``.uns``: cell types as a JSON list per branch (stores in .h5ad, and
        unlike a joined string stays unambiguous whatever the names hold)."""
        return self.branches.assign(cell_types=self.branches.cell_types.map(lambda v: json.dumps(list(v),
                                                                                               ensure_ascii=False)))

    def type_paths(self) -> list[list[tuple[int, float]]]:
        """Per type (model order): [(head, t_start)] from leaf to root, for the module's branch lookup."""
        head = dict(zip(self.branches["branch"], self.branches["head"]))
        return [[(int(head[b]), t) for b, t in p] for p in self.hierarchy.type_paths(self.types)]

    def walk_layout(self) -> tuple[dict[str, list[int]], dict[int, tuple[float, float]], dict[int, int]]:
        """What :func:`~scbranch.sampling.sample_tree` needs: each type's branches (root first), each branch's
        (t_start, t_end), and the network head of each branch."""
        df = self.branches
        bounds = {int(r.branch): (float(r.t_start), float(r.t_end)) for r in df.itertuples()}
        paths = {ty: [b for b, _ in sorted(p, key=lambda bt: -bt[1])]
                 for ty, p in zip(self.types, self.hierarchy.type_paths(self.types))}
        heads = dict(zip(df["branch"].astype(int), df["head"].astype(int)))
        return paths, bounds, heads

    def _module_config(self) -> dict:
        s = self.state
        return {
            "n_features": self.representation.n_features,
            "type_paths": self.type_paths(),
            # the blocks of branch parameters (see BranchedScoreNet); one block until a type is added
            "n_branches": s.branch_blocks or int(self.branches["head"].max()) + 1,
            "width": s.width, "n_blocks": s.n_blocks, "dropout": s.dropout, "beta_min": s.beta_min,
            "beta_max": s.beta_max, "softness": s.softness, "variances": s.variances,
            "n_conditions": [len(v) for v in s.conditions["categories"]] if s.conditions else None,
        }

    def __repr__(self) -> str:
        # three lines whatever the number of types (the whole Newick string was unreadable at 300 types)
        n_cells = sum((self.state.type_counts or {}).values())
        cells = f"{n_cells} cells × " if n_cells else ""
        def group(node) -> str:  # data-tree node names (n3) mean nothing to a reader: name the types
            leaves = node.leaves()
            return leaves[0] if len(leaves) == 1 else f"{len(leaves)} types" if len(leaves) > 2 else \
                " + ".join(leaves)

        kids = self.hierarchy.root.children
        root = " | ".join(group(c) for c in kids[:4]) + (" | …" if len(kids) > 4 else "")
        return (
            f"BranchedDiffusion of {len(self.types)} cell types in adata.obs[{self.groupby!r}], "
            f"{'trained' if self.is_trained else 'not trained'}\n"
            f"    fitted on {cells}{len(self.var_names)} genes; model space: {self.representation.kind}, "
            f"{self.representation.n_features} dimensions\n"
            f"    {len(self.branches)} branches; first split: {root} (model.hierarchy)"
        )

    @property
    def type_order(self) -> list[str]:
        """The types in the real data's order (its categories'), then any added since."""
        order = list(self.state.type_order)
        return order + [t for t in self.types if t not in order]

    @property
    def groupby(self) -> str:
        return self.state.groupby

    @property
    def var_names(self) -> pd.Index:
        return pd.Index(self.state.var_names)

    # ---- data ---------------------------------------------------------------------------------------------
    def get_latent(self, adata: ad.AnnData) -> np.ndarray:
        """Each cell of ``adata`` in model space (genes matched by name to the model's)."""
        X, kind = self._read(adata)
        if _chunks.is_chunked(X) or self.representation.input == "lognorm":  # PCA: a row block at a time
            return _chunks.transform(self.representation, X, kind, batch=self.get_batch(adata))
        return self.representation.transform(self.get_input(adata), batch=self.get_batch(adata))

    def get_lognorm(self, adata: ad.AnnData) -> np.ndarray:
        """Log-normalized expression of ``adata`` on the model's genes, read and checked as at fit time."""
        X, kind = self._read(adata)
        return _normalize.to_lognorm(X, kind)

    def get_input(self, adata: ad.AnnData):
        """What the representation reads: log-normalized expression (PCA) or raw counts (scVI)."""
        return self._as_input(*self._read(adata))

    def _as_input(self, X, kind):
        if self.representation.input == "lognorm":
            return _normalize.lognorm(X, kind)  # sparse stays sparse
        return _normalize.to_counts(X, kind)

    def get_batch(self, adata: ad.AnnData) -> np.ndarray | None:
        key = self.state.batch_key
        if key is None:
            return None
        if key not in adata.obs:
            msg = f"the model was fitted with batch_key={key!r}, which is not a column of adata.obs"
            raise KeyError(msg)
        return adata.obs[key].astype(str).to_numpy()

    def _read(self, adata: ad.AnnData):
        X, var_names = _anndata.get_matrix(adata, layer=self.state.layer, use_raw=self.state.use_raw)
        missing = self.var_names.difference(var_names)
        if len(missing):
            msg = (f"{len(missing)} of the model's {len(self.var_names)} genes are missing from adata, "
                   f"e.g. {list(missing[:5])}")
            raise ValueError(msg)
        if not var_names.equals(self.var_names):
            X = X[:, var_names.get_indexer(self.var_names)]
        check = _chunks.check_expression if _chunks.is_chunked(X) else _anndata.check_expression
        return X, check(X, expected=self.state.input_kind)

    def decoder_data(self, adata: ad.AnnData, labels) -> DecoderData:
        """What :meth:`fit_decoder` needs of the cells of ``adata``: representation inputs, counts if any, and
        the cells in model space."""
        X, kind = self._read(adata)
        if not _chunks.in_memory(X):  # backed: the cells of new types are few; read as sparse, a chunk at a time
            X = _chunks.to_csr(X)
        info = counts_info(X, kind)  # once: a counts representation reads these counts too
        x = info.counts if self.representation.input == "counts" and info is not None else self._as_input(X, kind)
        batch = self.get_batch(adata)
        return DecoderData(x, np.asarray(labels, dtype=str), info, batch, self.representation.transform(x, batch=batch))

    def fit_decoder(self, data: DecoderData, *, random_state: int = 0) -> None:
        """Fit (or, for new types, extend) the representation's decoder on real cells (see :meth:`decoder_data`)."""
        with torch_threads():
            self.representation.fit_decoder(data, random_state=random_state)

    def decode(self, z: np.ndarray, labels, *, random_state: int | None = 0,
               transform_batch: str | None = None) -> Decoded:
        """Model-space cells → cells: log-normalized ``X`` as the input was normalized, ``counts`` when the
        decoder makes counts (the input held counts, or ``representation="scvi"``), ``batch`` (scVI)."""
        return self.representation.decode(np.asarray(z, np.float32), np.asarray(labels, dtype=str),
                                          random_state=random_state, transform_batch=transform_batch)

    def reconstruct(self, adata: ad.AnnData, *, random_state: int = 0) -> ad.AnnData:
        """decode(encode(cells)): every cell of ``adata`` (labelled in ``obs[groupby]``) put in model space and
        decoded back, as :meth:`generate` decodes synthetic cells. The decoder's own floor: scored against
        held-out real cells like generated cells, it is the best any diffusion in this model space can reach
        (``benchmarks/realism.py``, the demo's table). Returns an AnnData like :meth:`generate`'s, one cell per
        cell of ``adata``, with its ``obs_names``."""
        labels = _anndata.check_obs_column(adata, self.groupby, what="groupby")
        unknown = sorted(set(labels) - set(self.types))
        if unknown:
            msg = f"types unknown to the model: {unknown}"
            raise ValueError(msg)
        obs = pd.DataFrame({self.groupby: pd.Categorical(labels, categories=self.type_order)},
                           index=adata.obs_names.copy())
        return decoded_adata(self, self.get_latent(adata), labels, obs, random_state=random_state)

    # ---- training -------------------------------------------------------------------------------------------
    def train(self, max_steps: int | None = None, *, progress: bool | None = None,
              trainer_kwargs: Mapping | None = None, **train_options) -> dict:
        """Train the score network on the cells it was set up on, then the decoder and the type classifier.

        Parameters
        ----------
        max_steps
            The most optimizer steps (default :func:`default_steps`); the stopping rule usually ends earlier.
        trainer_kwargs
            Passed to ``lightning.Trainer`` (callbacks are added to scbranch's own).
        **train_options
            Fields of :class:`~scbranch.model.TrainConfig` (``batch_size``, ``lr``, ``stop_tol``, ``accelerator``, …).

        Returns
        -------
        The loss history (also ``self.history``): steps, train/validation loss per check, ``stop_reason``.
        """
        (options,) = split_options({"max_steps": max_steps, **train_options}, TrainConfig, where="train options")
        if self.prepared is None:
            msg = (
                "this model holds no training data (it was loaded or built from parts); set up a new one on an AnnData"
            )
            raise RuntimeError(msg)
        p, seed = self.prepared, int(self.state.random_state)
        n_train = len(p.z)
        steps = options.max_steps or (options.max_epochs * int(np.ceil(n_train / options.batch_size))
                                      if options.max_epochs else default_steps(n_train))
        t0 = logg.info(f"    training {len(self.branches)} branches for up to {steps} steps")
        hist = self.train_arrays(p.z, p.y, conditions=p.c, max_steps=steps, random_state=seed, progress=progress,
                                 trainer_kwargs=trainer_kwargs, **options.module_kwargs())
        self.fit_decoder(p.decoder, random_state=seed)
        if self.model_options.type_classifier:
            with torch_threads():
                # as many steps as the score net took, within [200, 1000]: a small net on the same noised cells
                clf = TypeClassifier.fit(p.z, p.y, self.types, self.module.sde,
                                         steps=int(np.clip(hist["n_steps"], 200, 1000)), random_state=seed)
                paths, bounds, _ = self.walk_layout()
                clf.branch_ess = clf.measure_ess(p.z, p.y, self.branches, paths, bounds, self.module.sde,
                                                 random_state=seed)
            self.classifier = clf
            self.state = dataclasses.replace(self.state, **clf.config())  # saved with the model
        logg.info(f"    trained {hist['n_steps']} steps ({hist['stop_reason']}), best validation loss "
                  f"{hist['best_val_loss']:.4f}", time=t0)
        self.train_options = dataclasses.replace(options, max_steps=steps)
        return hist

    def train_arrays(self, z: np.ndarray, labels: np.ndarray, *, conditions: np.ndarray | None = None,
                     max_steps: int, random_state: int = 0, progress: bool | None = None, **kwargs) -> dict:
        """Low level: train the score network on model-space cells ``z`` with string ``labels`` (all in
        ``self.types``) and covariate codes ``conditions`` (n, K); ``kwargs`` go to
        :func:`~scbranch.model._training.train_module`."""
        codes = pd.Categorical(labels, categories=self.types).codes
        if (codes < 0).any():
            msg = f"labels outside the model's types: {sorted(set(labels) - set(self.types))}"
            raise ValueError(msg)
        if conditions is not None:  # type code first, then the covariates: one long tensor through the loader
            codes = np.column_stack([codes, conditions])
        with torch.random.fork_rng(), torch_threads() as n_threads:  # never disturb the user's global torch RNG
            logg.info(f"    training on {n_threads} torch thread(s)")
            torch.manual_seed(int(random_state))  # dropout masks draw from the global generator
            self.history = train_module(self.module, z.astype(np.float32), codes.astype(np.int64),
                                        max_steps=max_steps, random_state=random_state, progress=progress, **kwargs)
        self.is_trained = True
        return self.history

    # ---- sampling -------------------------------------------------------------------------------------------
    def sample(
        self,
        n_cells: int | Mapping[str, int],
        *,
        sampler: str = DEFAULT_SAMPLER,
        n_steps: int | None = None,
        spacing: str = "uniform",
        shared: bool = True,
        resample: bool | None = None,
        condition: Mapping[str, str] | None = None,
        random_state: int = 0,
        progress: bool | None = None,
        device: str | torch.device = "auto",
    ) -> tuple[dict[str, np.ndarray], dict]:
        """Model-space cells per type and sampling stats (``nfe`` network calls, ``n_evals`` cell states
        evaluated: cells × steps).

        ``n_cells``: an int for every type, or ``{type or internal node: n}`` (a node's cells are split over its
        types in their training proportions, see :func:`~scbranch.model._requests.plan`).

        ``shared=False`` walks each type's path alone (the cost baseline for the tree walk). ``resample``
        (default: whenever the model has its type classifier): at each branch point, a child draws its rows from
        the parent's by the type classifier's posterior ratio, the shared branches carrying enough rows for it
        (see :func:`~scbranch.tl.generate`).
        ``condition``: ``{covariate: value}`` for a model fitted with ``condition_keys`` (keys left out, or
        ``None``, are marginalized). ``device``: where the networks run (``"auto"``: a CUDA GPU if torch finds
        one, else the CPU; see :mod:`scbranch.model._device`).
        """
        if not self.is_trained:
            msg = "the model is not trained; call model.train() or scbranch.tl.fit first"
            raise RuntimeError(msg)
        sample_fn = get_sampler(sampler)
        req = plan(self, n_cells, random_state=random_state).per_type
        n_steps = sample_fn.default_steps if n_steps is None else n_steps
        _anndata.check_count(n_steps, what="n_steps")
        if resample is None:  # default: resample wherever the model has its type classifier
            resample = self.classifier is not None
        if resample and self.classifier is None:
            msg = ("resample=True needs the model's type classifier (model_kwargs={'type_classifier': True}, the "
                   "default)")
            raise ValueError(msg)
        resampler = self.classifier.resampler(self.branches) if resample else None
        # how much of a parent's rows each resampling child keeps, measured at fit (older models: assume all)
        kept = self.classifier.branch_ess if resample else {}
        ess = {int(b): kept[n] for b, n in zip(self.branches["branch"], self.branches["node"]) if n in kept}
        with on_device(self, device):
            out, stats = self._walks(req, sample_fn, n_steps, spacing, shared, resampler, ess, condition, random_state,
                                     progress)
        stats.update(sampler=sampler, n_steps=int(n_steps), spacing=spacing,
                     nfe_per_trajectory=int(n_steps * sample_fn.evals_per_step), shared=bool(shared),
                     resample=bool(resample),  # the condition as JSON: h5ad-safe whatever its names hold
                     condition=json.dumps({str(k): str(v) for k, v in (condition or {}).items() if v is not None},
                                         ensure_ascii=False),
                     random_state=int(random_state))
        return {ty: out[ty].numpy() for ty in req}, stats

    def _walks(self, req, sample_fn, n_steps, spacing, shared, resampler, ess, condition, random_state, progress):
        """The tree walks of :meth:`sample` (one, or one per type with ``shared=False``): cells and NFE counts."""
        eps_model = conditioned(self.module, condition_codes(self, condition))
        paths, bounds, heads = self.walk_layout()
        ts = get_times(n_steps, spacing=spacing, sde=self.module.sde)
        gen = torch.Generator().manual_seed(int(random_state))
        groups = [req] if shared else [{ty: n} for ty, n in req.items()]
        out, stats = {}, {"nfe": 0, "n_evals": 0}
        # one bar for all the walks (shared=False walks each type alone), shown only past half a second
        with torch_threads(), sampling_bar(0, progress) as bar:
            for group in groups:
                cells, st = sample_tree(eps_model, sample_fn, paths, bounds, group, ts,
                                        sde=self.module.sde, n_features=self.representation.n_features,
                                        heads=heads, generator=gen, progress=bar, resample=resampler, ess=ess)
                out.update(cells)
                stats = {k: stats[k] + st[k] for k in stats}
        return out, stats

    # ---- capabilities: each documented, options and keys, on its scbranch.tl function ----------------------------
    def generate(self, n_cells: int | Mapping[str, int] = 100, *, sampler: str = DEFAULT_SAMPLER,
                 n_steps: int | None = None, spacing: Literal["uniform", "logsnr"] = "uniform", shared: bool = True,
                 resample: bool | None = None, proportions: Mapping[str, float] | None = None,
                 condition: Mapping[str, str] | None = None, transform_batch: str | None = None,
                 obs_prefix: str | None = None, random_state: int = 0, progress: bool | None = None,
                 device: str = "auto", key_added: str = "scbranch") -> ad.AnnData:
        """Synthetic cells per type as a new AnnData (see :func:`scbranch.tl.generate`)."""
        return generate(self, n_cells, sampler=sampler, n_steps=n_steps, spacing=spacing, shared=shared,
                        resample=resample, proportions=proportions, condition=condition,
                        transform_batch=transform_batch, obs_prefix=obs_prefix, random_state=random_state,
                        progress=progress, device=device, key_added=key_added)

    def transmute(self, adata: ad.AnnData, *, source: str, target: str, time: float | None = None,
                  sampler: str = "ddim", n_steps: int = 200, random_state: int = 0, device: str = "auto",
                  key_added: str = "scbranch") -> ad.AnnData:
        """The ``source`` cells of ``adata`` turned into ``target`` cells, a new AnnData (see
        :func:`scbranch.tl.transmute`)."""
        resolve_device(device)  # a missing GPU is an error before any work
        with on_device(self, device):
            return _mapping.transmute(self, adata, source=source, target=target, time=time, sampler=sampler,
                                      n_steps=n_steps, random_state=random_state, key_added=key_added)

    def transfer(self, adata: ad.AnnData, *, condition: Mapping[str, str], time: float = 0.5,
                 sampler: str = "ddim", n_steps: int = 200, random_state: int = 0,
                 key_added: str = "scbranch") -> ad.AnnData:
        """Each cell of ``adata`` as it would look under ``condition``, a new AnnData (see
        :func:`scbranch.tl.transfer`)."""
        return _mapping.transfer(self, adata, condition=condition, time=time, sampler=sampler, n_steps=n_steps,
                                 random_state=random_state, key_added=key_added)

    def impute(self, adata_panel: ad.AnnData, *, groupby: str | None = None, n_samples: int = 8,
               n_steps: int = 100, guidance: float = 1.0, random_state: int = 0, progress: bool | None = None,
               device: str = "auto", key_added: str = "scbranch") -> ad.AnnData:
        """Cells measured on part of the model's genes, completed: a new AnnData (see :func:`scbranch.tl.impute`)."""
        resolve_device(device)  # a missing GPU is an error before any work
        with on_device(self, device):
            return _impute.impute(self, adata_panel, groupby=groupby, n_samples=n_samples, n_steps=n_steps,
                                  guidance=guidance, random_state=random_state, progress=progress,
                                  key_added=key_added)

    def score_types(self, adata: ad.AnnData, *, threshold: float = 0.9, n_times: int = 50,
                    random_state: int = 0, device: str = "auto") -> TypeScores:
        """Each cell's type probabilities by the noisy type classifier, and the diffusion time up to which its type
        stays certain (see :func:`scbranch.tl.score_types`, which writes them to ``adata``)."""
        random_state = _anndata.check_seed(random_state)
        n_times = _anndata.check_count(n_times, what="n_times", minimum=2)
        if not 0 < threshold < 1:
            msg = f"threshold must be in (0, 1), got {threshold!r}"
            raise ValueError(msg)
        if self.classifier is None:
            msg = ("the model has no type classifier: fit with type_classifier=True (the default); adding a cell "
                   "type drops it")
            raise ValueError(msg)
        resolve_device(device)  # a missing GPU is an error before any work
        z = self.get_latent(adata)
        with torch_threads(), on_device(self, device):
            return self.classifier.scores(z, self.module.sde, n_times=n_times, threshold=threshold,
                                          random_state=random_state)

    def add_cell_type(self, adata_new: ad.AnnData, *, groupby: str | None = None,
                      mode: Literal["heads", "replay"] = "heads", min_cells: int = 5, max_steps: int | None = None,
                      random_state: int = 0, progress: bool | None = None) -> BranchedDiffusion:
        """Add the cell types of ``adata_new`` without the old training data, in one transaction (see
        :func:`scbranch.tl.add_cell_type`): validated first, then placed, trained and decoded on a working copy
        committed only when all of it succeeded. Returns the model; the report (``placements``: (new type, anchor
        type, branch time); ``trained_heads``; ``history``; ``latent``: the new cells in model space) is kept in
        :attr:`last_added`."""
        random_state = _anndata.check_seed(random_state)
        new = _continual.new_cells(self, adata_new, groupby=groupby, mode=mode, min_cells=min_cells,
                                   max_steps=max_steps)
        z_new = new.data.z
        with self.transaction() as work:
            growth = _continual.grow(work, z_new, new.labels, mode=mode, random_state=random_state, progress=progress)
            work._grow(growth)
            hist = _continual.fine_tune(work, growth, z_new, new.labels, max_steps=new.max_steps,
                                        random_state=random_state, progress=progress)
            work.history.setdefault("continual", []).append(
                {"mode": mode, "types": [p[0] for p in growth.placements], "n_steps": hist["n_steps"],
                 "best_val_loss": hist["best_val_loss"], "trained_heads": growth.trainable})
            work.fit_decoder(new.data, random_state=random_state)
        self.last_added = {"placements": growth.placements, "trained_heads": growth.trainable, "history": hist,
                           "latent": z_new}
        return self

    def _grow(self, growth: _continual.Growth) -> None:
        """Apply the new types' tree, heads and proportions (the network already holds the new heads)."""
        self.hierarchy = growth.hierarchy
        self.state = dataclasses.replace(self.state, types=growth.types, heads=growth.heads,
                                         branch_blocks=growth.branch_blocks, type_counts=growth.type_counts)
        self._set_branches()
        self.module.set_paths(self.type_paths())

    @contextmanager
    def transaction(self):
        """A working copy of the model; its changes are committed to this model only if the block completes.

        Any exception (KeyboardInterrupt included) leaves this model exactly as it was: methods that change a
        trained model (:meth:`add_cell_type`) run inside one.
        """
        prepared, self.prepared = self.prepared, None  # the setup data are not copied (only read, never changed)
        try:
            work = copy.deepcopy(self)
        finally:
            self.prepared = prepared
        work.prepared = prepared
        yield work
        self.__dict__.update(work.__dict__)

    # ---- save / load ----------------------------------------------------------------------------------------
    def save(self, dir_path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the model directory (``model.pt``: tensors only; ``config.json``; ``manifest.json`` with their
        sha256): staged beside ``dir_path`` and renamed into place, so a failed save leaves the previous model.

        ``overwrite=True`` replaces only a folder that is exactly a model (its manifest lists its files and it
        holds nothing else); any other non-empty folder is a ``FileExistsError`` listing what would be deleted. A
        symlink at ``dir_path`` is written through. A save killed midway is mended by the next save or
        :meth:`load` (see ``scbranch.model._staging``)."""
        tensors = {"module": self.module.state_dict(), "representation": self.representation.state_dict()}
        if self.classifier is not None:
            tensors["classifier"] = self.classifier.state_dict()
        meta = plain({"config": self.state.to_json(), "hierarchy": self.hierarchy.to_table().to_dict("list"),
                      "history": self.history, "is_trained": self.is_trained,
                      "representation": self.representation.kind, "representation_meta": self.representation.meta()})
        save_dir(dir_path, tensors, meta, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata: ad.AnnData | None = None) -> BranchedDiffusion:
        """Load a saved model; with ``adata``, check that it holds the model's genes.

        Nothing in the folder is trusted: its files must be regular files (no symlinks, pipes or devices) within
        size caps (``manifest.json`` 1 MiB, ``config.json`` 256 MiB, ``model.pt`` 16 GiB), match the manifest's
        sha256, hold tensors only (nothing is unpickled) and a config whose numbers are in range and whose
        networks fit the saved weights, all checked before anything is allocated. A model a killed save left
        beside a missing ``dir_path`` is put back, with a warning."""
        state, meta = load_dir(dir_path)
        try:
            config_file = Path(dir_path) / "config.json"
            check_meta(meta, config_file)  # every number in range before anything is built from it
            check_genes(meta, state["representation"], config_file)
            rep = REPRESENTATIONS[meta["representation"]].from_state_dict(state["representation"],
                                                                           meta=meta.get("representation_meta", {}))
            hierarchy = Hierarchy.from_table(pd.DataFrame(meta["hierarchy"]))
            if sorted(meta["config"]["types"]) != sorted(hierarchy.leaves):
                msg = f"the types {meta['config']['types']} are not the hierarchy's leaves {hierarchy.leaves}"
                raise ValueError(msg)
            model = cls.from_parts(ModelState.from_json(meta["config"]), rep, hierarchy,
                                   weights=upgrade_state_dict(state["module"]))
            model.classifier = TypeClassifier.from_state(model.state, state.get("classifier"), rep.n_features)
        except (KeyError, TypeError, ValueError, RuntimeError, RecursionError) as err:
            msg = f"{dir_path} does not hold a consistent scbranch model: {type(err).__name__}: {err}"
            raise ValueError(msg) from err
        model.module.eval()
        model.history = {k: np.asarray(v) if isinstance(v, list) and k != "continual" else v
                         for k, v in meta["history"].items()}
        model.is_trained = meta["is_trained"]
        if adata is not None:
            model.get_latent(adata[:1])  # raises a clear error if genes or values don't fit the model
        return model
