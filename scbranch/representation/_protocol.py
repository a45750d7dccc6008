"""What a representation is: the one protocol between AnnData expression and the diffusion model's space.

A representation is built from its own options (``Options``, ``from_options``), maps cells to model space
(``genes``, ``fit``, ``transform``) and model-space cells back to cells (``fit_decoder``, ``decode``), and stores
itself as tensors plus JSON (``state_dict``, ``meta``, ``from_state_dict``). It is registered by name
(:func:`~scbranch.representation.register_representation`). The model never asks which representation it holds:
it reads what ``input`` says (log-normalized expression or counts) and calls these methods.

A representation that can be fitted from log-normalized row blocks, read a chunk at a time (PCA), also defines
``fit_blocks(blocks, *, random_state)``: then it takes backed AnnData and more cells than fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import torch

from .._normalize import CountsInfo


@dataclass
class DecoderData:
    """The real cells a decoder is fitted on: what the representation reads (``x``: log-normalized for PCA,
    counts for scVI), their labels and batches, their counts with the input's normalization (``None``
    when the input holds no counts) and, when the caller has them already, the cells in model space (``z``:
    else the representation transforms ``x``)."""

    x: object
    labels: np.ndarray
    counts: CountsInfo | None = None
    batch: np.ndarray | None = None
    z: np.ndarray | None = None


@dataclass
class Decoded:
    """Synthetic cells in gene space: log-normalized ``X`` (as the input was normalized), integer ``counts``
    when the decoder makes counts, and each cell's ``batch`` when the representation has batches."""

    X: object
    counts: object | None = None
    batch: np.ndarray | None = None


class Representation(Protocol):
    kind: str  # registry name ("pca", "scvi"), saved with the model
    input: Literal["lognorm", "counts"]  # what fit/transform read
    uses_batch: bool  # whether it takes the cells' batches (fit(batch_key=...))
    Options: type  # a dataclass of its own options (fit's model_kwargs={"representation_kwargs": {...}})

    @classmethod
    def from_options(cls, options, *, n_cells: int, progress: bool | None) -> Representation:
        """An unfitted representation from its ``Options``, for ``n_cells`` training cells."""

    def genes(self, var_names: pd.Index) -> pd.Index:
        """The genes it models, of the AnnData's ``var_names`` (all of them, unless e.g. a given model says else)."""

    @property
    def n_features(self) -> int: ...

    @property
    def makes_counts(self) -> bool:
        """Whether :meth:`decode` makes counts (then cells added later must hold counts too)."""

    def fit(self, X, *, var_names, batch=None, random_state: int = 0) -> Representation: ...

    def transform(self, X, *, batch=None) -> np.ndarray: ...

    def fit_decoder(self, data: DecoderData, *, random_state: int = 0) -> None:
        """Fit (or extend, for types it has not seen) the decoder on real cells of ``data.labels``."""

    def decode(self, z: np.ndarray, labels, *, random_state: int = 0,
               transform_batch: str | None = None) -> Decoded: ...

    def linear_view(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(A, μ)`` with log-normalized expression ≈ ``z @ A + μ`` (``A``: model dimensions × genes) when the
        representation is linear in log-normalized expression, else ``None``. ``impute`` needs it: a measured gene
        panel is then a linear view of a cell, and the likelihood of the measurements is Gaussian in model space."""

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def meta(self) -> dict: ...

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, meta: dict) -> Representation: ...
