"""Scanpy-style tools: fit, generate, concat_real_synthetic, add_cell_type, transmute, augment, score_types, impute,
transfer."""

from ..model import default_steps
from ._concat import concat_real_synthetic
from ._continual import add_cell_type, augment, transmute
from ._fit import fit
from ._generate import generate
from ._impute import impute
from ._score import score_types
from ._transfer import transfer

__all__ = ["add_cell_type", "augment", "concat_real_synthetic", "default_steps", "fit", "generate", "impute",
           "score_types", "transfer", "transmute"]
