"""Covariates (``condition_keys``): from ``{key: value}`` to the codes the network takes, and a conditioned ε model.

The network learns each covariate with a "not given" code (condition dropout at training), so a condition may
name some keys and leave the others out (or give them as ``None``): those are marginalized, as is everything
with ``condition=None``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def condition_codes(model, condition: Mapping[str, str] | None) -> torch.Tensor | None:
    """(K,) codes for ``{key: value}`` (keys left out: "not given"), or None for a model without covariates."""
    spec = model.state.conditions
    if spec is None:
        if condition:
            msg = "this model has no covariates; fit it with condition_keys=[...] to generate under a condition"
            raise ValueError(msg)
        return None
    keys, cats = spec["keys"], spec["categories"]
    if condition is not None and not isinstance(condition, Mapping):
        msg = f"condition must be a {{covariate: value}} mapping, got {condition!r}"
        raise TypeError(msg)
    condition = {k: v for k, v in (condition or {}).items() if v is not None}  # None: marginalized, as left out
    unknown = sorted(set(condition) - set(keys))
    if unknown:
        msg = f"unknown condition keys {unknown}; the model is conditioned on {keys}"
        raise KeyError(msg)
    codes = [len(c) for c in cats]  # "not given"
    for k, (key, values) in enumerate(zip(keys, cats)):
        if key in condition:
            value = str(condition[key])
            if value not in values:
                msg = f"unknown {key} {value!r}; the model knows {values}"
                raise KeyError(msg)
            codes[k] = values.index(value)
    return torch.as_tensor(codes, dtype=torch.long)


def conditioned(module, codes: torch.Tensor | None):
    """The module as a sampler's ε model, every row under covariate ``codes`` (the module itself if None)."""
    if codes is None:
        return module

    def eps(x, t, **extra):
        return module(x, t, condition=codes, **extra)

    return eps
