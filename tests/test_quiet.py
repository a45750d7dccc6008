"""Quiet by default the scanpy way: ``progress=None`` follows ``sc.settings.verbosity``; at 0 nothing is printed."""

import pytest
import scanpy as sc

import scbranch as sb

from .conftest import fast


@pytest.fixture
def verbosity():
    before = sc.settings.verbosity
    yield lambda v: setattr(sc.settings, "verbosity", v)
    sc.settings.verbosity = before


def _quiet_fit(**kw):
    opts = fast(max_steps=120, **kw)
    del opts["progress"]  # the default, None: follow scanpy's verbosity
    return opts


@pytest.mark.parametrize("representation", ["pca", "scvi"])
def test_fit_and_generate_print_nothing_at_verbosity_0(toy_adata, verbosity, capfd, representation):
    verbosity(0)
    adata = toy_adata.copy()
    extra = {"scvi_epochs": 2} if representation == "scvi" else {}
    model = sb.tl.fit(adata, groupby="cell_type", representation=representation, **_quiet_fit(**extra))
    for t in model.types:  # a loop over types once stacked empty "sampling: 0%" bars
        sb.tl.generate(model, {t: 5})
    sb.tl.generate(model, 20, shared=False)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out[-500:], err[-500:])


def test_default_verbosity_shows_one_training_bar_with_its_total(toy_adata, verbosity, capfd):
    verbosity(1)  # scanpy's default: warnings and bars, no step-by-step log
    model = sb.tl.fit(toy_adata.copy(), groupby="cell_type", **_quiet_fit())
    out, err = capfd.readouterr()
    assert out == ""  # Lightning's "Epoch 0/-2" bar went to stdout
    assert "training" in err and "/120" in err and "Epoch" not in err
    sb.tl.generate(model, 5)  # far quicker than the bar's half-second delay: no bar at all
    out, err = capfd.readouterr()
    assert out == "" and "sampling" not in err


def test_progress_false_overrides_verbosity(toy_adata, verbosity, capfd):
    verbosity(1)
    sb.tl.fit(toy_adata.copy(), groupby="cell_type", **fast(max_steps=60))  # fast() passes progress=False
    out, err = capfd.readouterr()
    assert out == "" and err == ""
