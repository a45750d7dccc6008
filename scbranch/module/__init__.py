"""Pure-torch building blocks: SDE, score network, branched diffusion module (no AnnData)."""

from ._diffusion import BranchedDiffusionModule, make_module
from ._network import BranchedScoreNet
from ._sde import T_EPS, VPSDE, ComponentwiseVPSDE, make_sde

__all__ = [
           "T_EPS",
           "VPSDE",
           "BranchedDiffusionModule",
           "BranchedScoreNet",
           "ComponentwiseVPSDE",
           "make_module",
           "make_sde",
]
