"""Scanpy-style tools: fit, generate, add_cell_type, transmute, augment."""

from ._continual import add_cell_type, augment, transmute
from ._fit import default_steps, fit, generate

__all__ = ["add_cell_type", "augment", "default_steps", "fit", "generate", "transmute"]
