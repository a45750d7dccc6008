"""scbranch: hierarchically branched diffusion models for single-cell data."""

from . import datasets, metrics, pl, simulate, tl
from .hierarchy import Hierarchy
from .model import BranchedDiffusion

__version__ = "0.1.0"
__all__ = ["BranchedDiffusion", "Hierarchy", "datasets", "metrics", "pl", "simulate", "tl", "__version__"]
