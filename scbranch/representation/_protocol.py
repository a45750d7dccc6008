"""What a representation is: the one protocol between AnnData expression and the diffusion model's space.

A representation maps cells to model space (``fit``, ``transform``) and model-space cells back to cells
(``fit_decoder``, ``decode``), and stores itself as tensors plus JSON (``state_dict``, ``meta``,
``from_state_dict``). The model never asks which representation it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
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
