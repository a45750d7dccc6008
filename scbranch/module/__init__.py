"""Pure-torch building blocks: SDE, score network, branched diffusion module (no AnnData)."""

from ._diffusion import BranchedDiffusionModule, make_module
from ._network import DROPOUT, N_BLOCKS, WIDTH, BranchedScoreNet
from ._sde import BETA_MAX, BETA_MIN, T_EPS, VPSDE, ComponentwiseVPSDE, make_sde

__all__ = [
           "BETA_MAX",
           "BETA_MIN",
           "DROPOUT",
           "N_BLOCKS",
           "T_EPS",
           "VPSDE",
           "WIDTH",
           "BranchedDiffusionModule",
           "BranchedScoreNet",
           "ComponentwiseVPSDE",
           "make_module",
           "make_sde",
]
