"""The AnnData-aware model (setup, training, sampling, save/load)."""

from ._model import BranchedDiffusion

__all__ = ["BranchedDiffusion"]
