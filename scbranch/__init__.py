"""scbranch: hierarchically branched diffusion models for single-cell data.

Submodules load on first use (``sb.tl``, ``sb.pl``, …), so ``import scbranch`` and ``scbranch --help`` do not
pay for torch, scanpy and scvi-tools until something needs them.
"""

import importlib

__version__ = "0.3.0"  # the one source: pyproject reads it (hatch), CITATION.cff and the CLI agree (tests)
__all__ = ["BranchedDiffusion", "Hierarchy", "__version__", "datasets", "metrics", "pl", "read_soma", "simulate",
           "tl"]

_SUBMODULES = {"datasets", "metrics", "pl", "simulate", "tl", "hierarchy", "model", "module", "representation",
               "sampling", "cli", "_anndata", "_chunks", "_logging", "_normalize", "_soma", "_threads"}
# read_soma imports tiledbsoma only when called (pip install scbranch[atlas])
_ATTRIBUTES = {"BranchedDiffusion": "model", "Hierarchy": "hierarchy", "read_soma": "_soma"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(f".{_ATTRIBUTES[name]}", __name__), name)
    msg = f"module 'scbranch' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES)
