"""The package's layout: no import cycle, ``tl`` over public model methods only, one default per option."""

import importlib.util
import inspect
from pathlib import Path

import pytest

import scbranch as sb

ROOT = Path(__file__).parents[1]


def _graph() -> dict:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.graph()


def test_no_import_cycle_and_no_private_model_name_in_tl():
    g = _graph()
    assert g["file_cycles"] == [] and g["unit_cycles"] == []
    assert g["tl_private"] == []


@pytest.mark.parametrize("name", ["generate", "transmute", "transfer", "impute", "score_types", "add_cell_type"])
def test_tl_functions_take_the_model_methods_options_with_their_defaults(name):
    """Each tl function is an adapter over the model method of its name: same options, same defaults (the tl
    function may add what it writes into the AnnData: ``key_added``, ``copy``)."""
    tool = inspect.signature(getattr(sb.tl, name)).parameters
    method = inspect.signature(getattr(sb.BranchedDiffusion, name)).parameters
    shared = [p for p in method if p in tool and p not in ("self", "adata", "adata_new", "adata_panel", "model")]
    assert set(method) - {"self"} - set(shared) <= {"adata", "adata_new", "adata_panel"}, name
    for p in shared:
        assert tool[p].default == method[p].default, (name, p)


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect._empty}


def test_every_default_is_defined_once():
    """tl.fit's own options, the training loop and the pure-torch module take the configs' defaults: one value
    per option, wherever it can be given."""
    import dataclasses

    from scbranch.model import ModelConfig, SetupConfig, TrainConfig
    from scbranch.model._training import train_module
    from scbranch.module import BranchedDiffusionModule, BranchedScoreNet, make_sde

    config = {f.name: f.default for c in (SetupConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(c)
              if f.default is not dataclasses.MISSING}
    for fn in (sb.tl.fit, train_module, BranchedDiffusionModule, BranchedScoreNet, make_sde, sb.module.VPSDE):
        shared = {k: v for k, v in _defaults(fn).items() if k in config}
        assert shared, fn
        assert shared == {k: config[k] for k in shared}, fn
    assert set(_defaults(train_module)) >= set(TrainConfig.__dataclass_fields__) - {"max_steps", "max_epochs"}


def test_model_state_is_typed_versioned_and_round_trips(toy_model):
    model, _ = toy_model
    state = model.state
    current = sb.model.ModelState.__dataclass_fields__["version"].default  # what this scbranch writes
    assert isinstance(state, sb.model.ModelState) and state.version == current
    assert sb.model.ModelState.from_json(state.to_json()) == state
    with pytest.raises(ValueError, match="update scbranch"):
        sb.model.ModelState.from_json({**state.to_json(), "version": state.version + 1})
    with pytest.raises(KeyError, match="lacks"):
        sb.model.ModelState.from_json({k: v for k, v in state.to_json().items() if k != "width"})
    with pytest.warns(FutureWarning, match="model.state"):
        assert model.config["width"] == state.width  # the old dict, read-only, until 0.4
