"""Pure-torch building blocks: SDE, score network, branched diffusion module (no AnnData)."""

from ._diffusion import BranchedDiffusionModule, make_module
from ._network import BranchedScoreNet
from ._sde import T_EPS, ComponentwiseVPSDE, VPSDE, make_sde

__all__ = ["T_EPS", "VPSDE", "ComponentwiseVPSDE", "BranchedDiffusionModule", "BranchedScoreNet", "make_module",
           "make_sde"]
