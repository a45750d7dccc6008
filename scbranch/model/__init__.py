"""The AnnData-aware model (setup, training, sampling, its capabilities, save/load) and its typed options."""

from ._config import ModelConfig, SetupConfig, TrainConfig, route, split_options, to_params
from ._generate import counts_of, lognorm_of
from ._model import BranchedDiffusion
from ._state import ModelState
from ._training import default_steps as default_steps  # documented as sb.tl.default_steps
from ._types import TypeClassifier, TypeScores

__all__ = ["BranchedDiffusion", "ModelConfig", "ModelState", "SetupConfig", "TrainConfig", "TypeClassifier",
           "TypeScores", "counts_of", "lognorm_of", "route", "split_options", "to_params"]
