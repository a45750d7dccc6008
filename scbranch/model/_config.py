"""Typed options: the one place each parameter of a fit is declared, defaulted, documented and checked.

:class:`SetupConfig` (how the AnnData is read) and :class:`ModelConfig` (the model space, the network, the
hierarchy's sharing) are what :class:`~scbranch.BranchedDiffusion` takes; :class:`TrainConfig` is what
:meth:`~scbranch.BranchedDiffusion.train` takes. ``tl.fit`` passes its ``model_kwargs`` / ``train_kwargs`` through
:func:`split_options` into these, so an unknown or ill-typed option is one clear error before any work, and the
``.uns`` parameters and the saved config are ``dataclasses.asdict`` of them, never a hand-kept list.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _anndata
from ..module import BETA_MAX, BETA_MIN, DROPOUT, N_BLOCKS, WIDTH
from ..representation import REPRESENTATIONS, get_representation

DEFAULT_SHARING = 0.5  # the knee of the cost-quality curve (benchmarks/sharing.py; see tl.fit's docstring)


@dataclass(frozen=True)
class SetupConfig:
    """How cells are read from the AnnData.

    Attributes
    ----------
    layer, use_raw
        Expression from ``.layers[layer]`` or ``.raw`` instead of ``.X``.
    input_kind
        ``"auto"`` (detected and logged), ``"counts"`` or ``"lognorm"``.
    batch_key
        ``adata.obs`` column of batches (``representation="scvi"`` only).
    min_cells, drop_small
        Types with fewer cells (``min_cells`` >= 2) are an error, or are dropped with a warning if ``drop_small``.
    ontology_key, ontology_mapping
        With ``hierarchy="cl"``: an ``adata.obs`` column of Cell Ontology IDs per cell, or ``{label: CL id}``.
    condition_keys
        Categorical ``adata.obs`` columns (donor, batch, condition) the score functions are conditioned on as
        well; each is left out of 15 % of training rows, so generation may give it or not (marginal). A float
        column with more than 20 distinct values is refused: bin it first (``pd.cut``).
    """

    layer: str | None = None
    use_raw: bool = False
    input_kind: str = "auto"
    batch_key: str | None = None
    min_cells: int = 5
    drop_small: bool = False
    ontology_key: str | None = None
    ontology_mapping: Mapping[str, str] | None = None
    condition_keys: tuple[str, ...] | list[str] | None = None

    def __post_init__(self):
        keys = self.condition_keys
        if keys is not None and (isinstance(keys, str) or not all(isinstance(k, str) for k in keys)
                                 or len(set(keys)) != len(keys)):
            msg = f"condition_keys must be a list of distinct obs column names, got {keys!r}"
            raise ValueError(msg)
        _choice("input_kind", self.input_kind, ("auto", "counts", "lognorm"))
        if self.min_cells == 1:  # NaN-prone: one cell has no spread to learn or validate on
            msg = ("min_cells must be at least 2: a type of one cell has no spread for the model to learn (its "
                   "covariance, the branch-point test and the validation split need two or more); got 1")
            raise ValueError(msg)
        _anndata.check_count(self.min_cells, what="min_cells", minimum=2)


@dataclass(frozen=True)
class ModelConfig:
    """The model space, the score network and the hierarchy's sharing.

    Attributes
    ----------
    representation, n_comps
        A name registered with :func:`~scbranch.representation.register_representation`: ``"pca"`` (``n_comps``
        standardized PCs; default 15 below 2,000 cells, 30 above) or ``"scvi"`` (scVI's latent means, ``n_comps``
        = ``n_latent``, default 10).
    n_top_genes
        ``"pca"`` only: fit the model space on this many highly variable genes (``sc.pp.highly_variable_genes``,
        flavour ``"seurat_v3"`` on counts, ``"seurat"`` on log-normalized input); counts are still decoded for every
        gene. ``"auto"`` (default): all genes up to 5,000, else 3,000; ``None``, ``0`` or ``"all"``: every gene.
    scvi_model, scvi_epochs
        A trained ``scvi.model.SCVI`` to use instead of training one; scVI's epochs (``None``: scvi-tools').
    representation_kwargs
        Further fields of the representation's own ``Options`` (``n_comps``, ``scvi_model`` and ``scvi_epochs`` may
        be given here too); an option the representation does not take is an error.
    width, n_blocks, dropout
        The score network: residual MLP trunk of ``n_blocks`` blocks of ``width`` units.
    beta_min, beta_max, softness
        The VP-SDE noise schedule; ``softness`` > 0: component-wise schedules, coarse to fine (see ``tl.fit``).
    sharing
        How much of the reverse trajectory types share, in [0, 1] (see ``tl.fit``).
    branched
        ``False``: the flat label-conditional baseline in the same code.
    type_classifier
        Also train the noise-conditioned type classifier (``tl.score_types``; ``generate`` resamples rows at
        branch points with it).
    """

    representation: str = "pca"
    n_comps: int | None = None
    n_top_genes: int | str | None = "auto"
    scvi_model: Any = field(default=None, repr=False)
    scvi_epochs: int | None = None
    representation_kwargs: Mapping[str, Any] | None = None
    width: int = WIDTH  # the module's defaults: defined there once
    n_blocks: int = N_BLOCKS
    dropout: float = DROPOUT
    beta_min: float = BETA_MIN
    beta_max: float = BETA_MAX
    softness: float | None = None
    sharing: float = DEFAULT_SHARING
    branched: bool = True
    type_classifier: bool = True

    def __post_init__(self):
        get_representation(self.representation)  # registered: an unknown name lists the choices
        for name in ("width", "n_blocks"):
            _anndata.check_count(getattr(self, name), what=name)
        for name in ("n_comps", "scvi_epochs"):
            if getattr(self, name) is not None:
                _anndata.check_count(getattr(self, name), what=name)
        _check_top_genes(self.n_top_genes, self.representation)
        if not 0 <= self.dropout < 1:
            msg = f"dropout must be in [0, 1), got {self.dropout!r}"
            raise ValueError(msg)
        if not 0 < self.beta_min < self.beta_max:
            msg = f"need 0 < beta_min < beta_max, got {self.beta_min!r}, {self.beta_max!r}"
            raise ValueError(msg)
        if self.softness is not None and not (np.isfinite(self.softness) and self.softness > 0):
            msg = (f"softness must be a positive finite number or None (standard diffusion), "
                             f"got {self.softness!r}")
            raise ValueError(msg)
        if isinstance(self.sharing, bool) or not isinstance(self.sharing, int | float) or not 0 <= self.sharing <= 1:
            msg = f"sharing must be a number in [0, 1], got {self.sharing!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class TrainConfig:
    """Training of the score network (:func:`scbranch.model._training.train_module`).

    Attributes
    ----------
    max_steps, max_epochs
        The most optimizer steps (default :func:`scbranch.tl.default_steps`: 4 per cell in [4,000, 20,000]; the
        stopping rule usually ends training well before), or epochs.
    batch_size, lr, weight_decay, ema_decay
        AdamW with a 200-step warm-up, then constant; the EMA weights are the model.
    stop_tol, stop_window, min_steps, check_every
        Stop when the best fixed-noise validation loss improved less than ``stop_tol`` (relative) over the last
        ``stop_window`` steps (default: one per training cell within [500, 1,000]), never before ``min_steps``;
        checked every ``check_every`` steps. ``stop_tol=0`` trains all ``max_steps``.
    balance, val_fraction
        Class weighting n_k ** -balance (0: natural frequencies, 1: types equally often); held-out fraction.
    schedule
        ``"constant"`` (default) or ``"onecycle"``.
    accelerator, devices, strategy, checkpoint_dir
        ``lightning.Trainer`` options; checkpoints of the last and best step go to ``checkpoint_dir``.
    """

    max_steps: int | None = None
    max_epochs: int | None = None
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    stop_tol: float = 0.002
    stop_window: int | None = None
    min_steps: int = 1000
    check_every: int = 250
    balance: float = 0.5
    val_fraction: float = 0.1
    schedule: str = "constant"
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    checkpoint_dir: str | None = None

    def __post_init__(self):
        _anndata.check_steps(self.max_steps)
        for name in ("max_epochs", "stop_window"):
            if getattr(self, name) is not None:
                _anndata.check_count(getattr(self, name), what=name)
        for name in ("batch_size", "check_every"):
            _anndata.check_count(getattr(self, name), what=name)
        _anndata.check_count(self.min_steps, what="min_steps", minimum=0)
        _choice("schedule", self.schedule, ("constant", "onecycle"))
        if not (self.lr > 0 and 0 <= self.ema_decay < 1 and self.stop_tol >= 0 and 0 <= self.balance <= 1
                and 0 < self.val_fraction < 1):
            msg = ("need lr > 0, 0 <= ema_decay < 1, stop_tol >= 0, 0 <= balance <= 1, 0 < val_fraction < 1; "
                             f"got {self}")
            raise ValueError(msg)

    def module_kwargs(self) -> dict:
        """The options ``train_module`` takes (``max_steps`` is resolved by the model from the data size)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("max_steps", "max_epochs")}


def _check_top_genes(n_top_genes, representation: str) -> None:
    if n_top_genes in ("auto", "all", None):
        return
    if isinstance(n_top_genes, bool) or not isinstance(n_top_genes, int | np.integer) or n_top_genes < 0:
        msg = f"n_top_genes must be 'auto', 'all', None or an integer >= 0; got {n_top_genes!r}"
        raise ValueError(msg)
    if n_top_genes and representation != "pca":
        msg = "n_top_genes= goes with representation='pca' (scVI reads every gene)"
        raise ValueError(msg)


def _choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        msg = f"{name} must be one of {list(choices)}, got {value!r}"
        raise ValueError(msg)


def names(*configs) -> list[str]:
    """The option names of the given config classes."""
    return [f.name for c in configs for f in dataclasses.fields(c)]


def representation_options(model: ModelConfig, cls: type):
    """The representation's own ``Options`` from ``model``'s fields of the same names and its
    ``representation_kwargs``; a field set for another representation is an error naming the ones it takes."""
    own = {f.name for f in dataclasses.fields(cls.Options)}
    given = {k: getattr(model, k) for k in ("n_comps", "scvi_model", "scvi_epochs") if getattr(model, k) is not None}
    if model.n_top_genes != "auto":  # PCA's; None means every gene, so "not given" is the default's "auto"
        given["n_top_genes"] = model.n_top_genes
    given.update(model.representation_kwargs or {})
    stray = sorted(set(given) - own)
    if stray:
        takers = [f"representation={k!r}" for k, c in REPRESENTATIONS.items()
                  if set(stray) <= {f.name for f in dataclasses.fields(c.Options)}]
        msg = (f"{stray} are not options of representation={model.representation!r}"
               + (f" but of {' or '.join(takers)}" if takers else "") + f"; it takes {sorted(own)}")
        raise ValueError(msg)
    return cls.Options(**given)


def split_options(kwargs: Mapping | None, *configs, where: str) -> list:
    """Split ``kwargs`` over ``configs`` (dataclass types) and build one instance of each; unknown keys are a
    ``TypeError`` that names the valid ones."""
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - set(names(*configs)))
    if unknown:
        msg = f"unknown {where} {unknown}; choose from {names(*configs)}"
        raise TypeError(msg)
    return [c(**{k: v for k, v in kwargs.items() if k in {f.name for f in dataclasses.fields(c)}}) for c in configs]


def route(kwargs: Mapping, *, own: Collection[str] = ()) -> tuple[dict, dict, dict]:
    """Flat options → ``(model_kwargs, train_kwargs, rest)``: fields of SetupConfig/ModelConfig, fields of
    TrainConfig, and everything else, the names in ``own`` among them (a function's own arguments, e.g.
    ``inspect.signature(sb.tl.fit).parameters``, even where they are config fields too)."""
    model, train, rest = {}, {}, {}
    for key, value in kwargs.items():
        if key in own:
            rest[key] = value
        elif key in names(SetupConfig, ModelConfig):
            model[key] = value
        elif key in names(TrainConfig):
            train[key] = value
        else:
            rest[key] = value
    return model, train, rest


def to_params(config) -> dict:
    """A config as plain values for ``.uns``/JSON: objects (a given scVI model) by class name, ``None`` left out."""
    if config is None:  # a model loaded or built from parts: its options are in its config
        return {}
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if v is None:
            continue
        if isinstance(v, Mapping):  # keyed by labels: a JSON string, as h5ad splits keys at "/"
            v = json.dumps({str(k): str(x) for k, x in v.items()}, ensure_ascii=False)
        elif not isinstance(v, str | bool | int | float | list | tuple):
            v = type(v).__name__
        out[f.name] = v
    return out
