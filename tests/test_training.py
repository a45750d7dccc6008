"""The training budget: the stopping rule on a validation curve, and through fit."""

import numpy as np
import pytest

import scbranch as sb
from scbranch.model._training import StopRule

from .conftest import assert_adata_equal, fast


def replay(rule: StopRule, losses, every: int = 250):
    for i, loss in enumerate(losses, start=1):
        reason = rule.update(i * every, loss)
        if reason:
            return i * every, reason
    return None, None


def test_stop_rule_stops_on_a_plateau_and_says_why():
    losses = [1.0 / (1 + 0.5 * i) for i in range(8)] + [0.2224] * 10  # falls, then flat from step 2,000
    step, reason = replay(StopRule(tol=0.005, window=1000, min_steps=1000), losses)
    assert step == 3000  # the first check a full window after the last improvement
    assert "improved 0.00 % over the last 1000 steps" in reason


def test_stop_rule_keeps_going_while_the_loss_improves():
    losses = [np.exp(-0.02 * i) for i in range(60)]  # ~8 % per 1,000 steps, never below tol
    assert replay(StopRule(tol=0.005, window=1000), losses) == (None, None)


def test_stop_rule_respects_min_steps_and_tol_zero():
    flat = [1.0] * 20
    step, _ = replay(StopRule(tol=0.005, window=500, min_steps=3000), flat)
    assert step == 3000
    assert replay(StopRule(tol=0.0, window=500, min_steps=0), flat) == (None, None)
    with pytest.raises(ValueError, match="stopping rule"):
        StopRule(tol=-1)


def test_stop_rule_ignores_non_finite_checks():
    rule = StopRule(tol=0.01, window=500, min_steps=0)
    assert rule.update(250, np.nan) is None and rule.steps == []


def test_fit_stops_by_the_rule_and_records_why(toy_adata):
    adata = toy_adata.copy()
    kw = fast(max_steps=3000, train_kwargs={"stop_tol": 0.05, "stop_window": 200, "min_steps": 200,
                                                  "check_every": 50})
    model = sb.tl.fit(adata, groupby="cell_type", random_state=0, **kw)
    hist = model.history
    assert 200 <= hist["n_steps"] < 3000
    assert hist["stop_reason"].startswith(f"stopped at step {hist['n_steps']} of 3000")
    assert str(adata.uns["scbranch"]["training"]["stop_reason"]) == hist["stop_reason"]
    full = sb.tl.fit(toy_adata.copy(), groupby="cell_type", random_state=0,
                     **fast(max_steps=100, train_kwargs={"stop_tol": 0.0}))
    assert full.history["n_steps"] == 100 and full.history["stop_reason"] == "reached max_steps=100"


def test_unknown_train_kwargs_fail_first(toy_adata):
    adata = toy_adata.copy()
    with pytest.raises(TypeError, match="unknown train_kwargs \\['patience'\\]"):
        sb.tl.fit(adata, groupby="cell_type", **fast(train_kwargs={"patience": 3}))
    assert_adata_equal(adata, toy_adata)
