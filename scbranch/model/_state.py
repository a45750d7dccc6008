"""The model's state: one typed, versioned record of everything a model is besides its tensors.

What the data were (genes, types and their order, colours and counts, how the matrix was read), the network's and
the schedule's options, the branch heads, covariates, annotation levels and the type classifier's entries. It is
the ``"config"`` of ``config.json`` (:meth:`ModelState.to_json` / :meth:`ModelState.from_json`); its numbers are
checked against their ranges before it is built (``_checks.check_meta``), and :meth:`from_json` refuses states
saved by a newer version or lacking a required entry. The model changes it only by replacing it
(``dataclasses.replace``): capabilities compute, the model applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _logging as logg
from ._config import ModelConfig, SetupConfig

VERSION = 1  # of the state's fields; the folder's own format is _io.SAVE_FORMAT
# saved before the sharing option existed: those models split at the earliest time, which sharing 0 gives
LEGACY_SHARING = 0.0


@dataclass(frozen=True)
class ModelState:
    """See the module docstring. Options' defaults are the configs' (never restated here)."""

    groupby: str
    types: list[str]
    var_names: list[str]
    n_comps: int  # model-space dimensions
    width: int
    n_blocks: int
    beta_min: float
    beta_max: float
    input_kind: str = "lognorm"  # what the matrix held: "counts" or "lognorm"
    layer: str | None = SetupConfig.layer
    use_raw: bool = SetupConfig.use_raw
    batch_key: str | None = SetupConfig.batch_key
    dropout: float = ModelConfig.dropout
    softness: float | None = ModelConfig.softness
    sharing: float = LEGACY_SHARING
    random_state: int = 0
    type_order: list[str] = field(default_factory=list)  # the real data's category order
    type_colors: dict[str, str] | None = None
    type_counts: dict[str, int] | None = None  # training proportions (generating at a node)
    variances: list[float] | None = None  # per model-space dimension (component-wise schedules)
    conditions: dict[str, Any] | None = None  # {"keys", "categories"} of condition_keys
    levels: dict[str, Any] | None = None  # coarse annotation columns: {column: [categories, {type: label}]}
    heads: dict[str, int] | None = None  # network head of each branch's node
    branch_blocks: list[int] | None = None  # blocks of branch parameters (one until a type is added)
    classifier: dict[str, Any] | None = None  # the type classifier's {"types", "steps"}
    type_weights: list[float] | None = None  # its training mixture
    branch_ess: dict[str, float] | None = None  # rows each resampling child keeps, by node
    version: int = VERSION

    def to_json(self) -> dict:
        """Plain JSON values, ``None`` left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping) -> ModelState:
        """The state a saved ``config`` describes (checked against its ranges first: ``_checks.check_meta``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:  # entries an older scbranch wrote and this one no longer reads: nothing is built from them
            logg.warning(f"the model's config holds entries this scbranch does not read, ignored: {unknown}")
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            msg = f"the model's state is version {version!r}; this scbranch reads up to {VERSION}: update scbranch"
            raise ValueError(msg)
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and f.name not in data)
        if missing:
            msg = f"the model's config lacks {missing}"
            raise KeyError(msg)
        return cls(**{k: v for k, v in data.items() if k in names})

    def condition_categories(self, key: str) -> list[str]:
        """The categories of covariate ``key``."""
        return self.conditions["categories"][self.conditions["keys"].index(key)]
