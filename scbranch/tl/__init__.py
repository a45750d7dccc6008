"""Scanpy-style tools: fit, generate, add_cell_type, transmute, augment, score_types."""

from ._continual import add_cell_type, augment, transmute
from ._fit import default_steps, fit, generate
from ._score import score_types

__all__ = ["add_cell_type", "augment", "default_steps", "fit", "generate", "score_types", "transmute"]
