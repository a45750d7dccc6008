"""Pure-torch building blocks: SDE, score network, branched diffusion module (no AnnData)."""

from ._diffusion import T_EPS, BranchedDiffusionModule, make_module
from ._network import BranchedScoreNet
from ._sde import VPSDE

__all__ = ["T_EPS", "VPSDE", "BranchedDiffusionModule", "BranchedScoreNet", "make_module"]
