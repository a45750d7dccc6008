"""The AnnData-aware model (setup, training, sampling, save/load) and its typed options."""

from ._config import ModelConfig, SetupConfig, TrainConfig
from ._model import BranchedDiffusion

__all__ = ["BranchedDiffusion", "ModelConfig", "SetupConfig", "TrainConfig"]
