"""Fault injection: malicious files in a model directory, saves that die midway, interrupted model updates,
damaged configs, and inputs that used to be accepted silently or fail obscurely."""

import copy
import json
import os
import pickle
import shutil
import signal
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import scbranch as sb
from scbranch.model import _io

from .conftest import assert_adata_equal, fast

MARKER_NAME = "payload_ran"


class Payload:
    """Unpickling this creates a marker file: the proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_payload(file, marker):
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as fh:
        pickle.dump({"module": Payload(marker)}, fh)


def rehash(model_dir):
    """Re-sign the manifest, as an attacker who edits a shared model directory would."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["files"] = {f: _io.sha256(model_dir / f) for f in manifest["files"]}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


def state_of(model):
    return ({k: v.clone() for k, v in model.module.state_dict().items()},
            json.dumps(model.state.to_json(), sort_keys=True), model.hierarchy.to_newick(), len(model.branches))


def assert_same_state(a, b):
    assert a[1:] == b[1:]
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])


# ---- loading never runs code ----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["model.pt", "config.json", "manifest.json"])
@pytest.mark.parametrize("resign", [False, True])
def test_malicious_pickle_in_any_file_is_refused_without_running(toy_model, tmp_path, target, resign):
    model, _ = toy_model
    model.save(tmp_path / "m")
    marker = tmp_path / MARKER_NAME
    write_payload(tmp_path / "m" / target, marker)
    if resign and target != "manifest.json":
        rehash(tmp_path / "m")
    with pytest.raises((ValueError, FileNotFoundError)):
        sb.BranchedDiffusion.load(tmp_path / "m")
    assert not marker.exists()


def test_legacy_scvi_directory_is_refused_before_scvi_unpickles(toy_model, tmp_path):
    model, _ = toy_model
    model.save(tmp_path / "m")
    d = tmp_path / "m"
    meta = json.loads((d / "config.json").read_text())
    meta.update(format=2, representation="scvi")
    (d / "config.json").write_text(json.dumps(meta))
    (d / "manifest.json").unlink()
    marker = tmp_path / MARKER_NAME
    write_payload(d / "scvi" / "model.pt", marker)
    with pytest.raises(ValueError, match="does not load it"):
        sb.BranchedDiffusion.load(d)
    assert not marker.exists()


def test_legacy_pca_directory_loads_with_a_warning(toy_model, tmp_path, caplog):
    model, _ = toy_model
    model.save(tmp_path / "m")
    d = tmp_path / "m"
    meta = json.loads((d / "config.json").read_text())
    meta["format"] = 2
    (d / "config.json").write_text(json.dumps(meta))
    (d / "manifest.json").unlink()
    again = sb.BranchedDiffusion.load(d)
    assert_same_state(state_of(again), state_of(model))


@pytest.mark.parametrize("edit", ["truncate", "reorder_types", "drop_manifest_entry"])
def test_damaged_or_edited_directory_is_a_clear_error(toy_model, tmp_path, edit):
    model, _ = toy_model
    model.save(tmp_path / "m")
    d = tmp_path / "m"
    if edit == "truncate":
        (d / "config.json").write_text((d / "config.json").read_text()[:100])
        match = "integrity check failed.*config.json"
    elif edit == "reorder_types":  # would swap the generated labels: the manifest catches it
        meta = json.loads((d / "config.json").read_text())
        meta["config"]["types"] = meta["config"]["types"][::-1]
        (d / "config.json").write_text(json.dumps(meta))
        match = "integrity check failed"
    else:
        manifest = json.loads((d / "manifest.json").read_text())
        del manifest["files"]["config.json"]
        (d / "manifest.json").write_text(json.dumps(manifest))
        match = "does not list config.json"
    with pytest.raises(ValueError, match=match):
        sb.BranchedDiffusion.load(d)


def test_corrupt_config_names_the_file(toy_model, tmp_path):
    model, _ = toy_model
    model.save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    rehash(tmp_path / "m")
    with pytest.raises(ValueError, match=r"config\.json is not a readable JSON"):
        sb.BranchedDiffusion.load(tmp_path / "m")


def _set(path, value):
    """An edit of config.json: ``path`` a tuple of keys, the last one set to ``value``."""
    def edit(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value(d[path[-1]]) if callable(value) else value
    return edit


@pytest.mark.parametrize(("edit", "match"), [
    (_set(("config", "type_counts", "A"), -5), r"type_counts\['A'\] must be an integer in \[0"),
    (_set(("config", "beta_max"), float("inf")), r"beta_max must be a finite number"),
    (_set(("config", "beta_min"), 30.0), r"0 < beta_min < beta_max"),
    (_set(("config", "var_names"), lambda v: v[:-1]), r"var_names lists 59 genes but the saved weights are for 60"),
    (_set(("config", "width"), 200_000), r"width must be an integer in \[1, 16,384\]"),
    (_set(("config", "n_blocks"), "3"), r"n_blocks must be an integer"),
    (_set(("config", "width"), 4096), r"weights do not fit the score network its config describes"),
    (_set(("representation_meta", "counts_decoder", "hidden"), 4096), r"weights do not fit the count decoder"),
    (_set(("config", "classifier", "types"), lambda v: [*v, "X"]), r"weights do not fit the type classifier"),
    (_set(("config", "types"), []), r"types must be a non-empty list"),
])
def test_resigned_configs_out_of_range_are_refused_before_building(toy_model, tmp_path, edit, match):
    model, _ = toy_model
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    edit(meta)
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    rehash(tmp_path / "m")
    with pytest.raises(ValueError, match=match):
        sb.BranchedDiffusion.load(tmp_path / "m")


# ---- saving never loses a model -----------------------------------------------------------------------------
@pytest.mark.parametrize("fail_at", [1, 2, 3, "publish"])
def test_save_killed_midway_keeps_the_previous_model(toy_model, tmp_path, monkeypatch, fail_at):
    model, _ = toy_model
    model.save(tmp_path / "m")
    before = {f: (tmp_path / "m" / f).read_bytes() for f in ("model.pt", "config.json", "manifest.json")}
    calls = {"n": 0}
    real_write = _io._write

    def dying_write(path, data):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt  # Ctrl-C between files
        real_write(path, data)

    monkeypatch.setattr(_io, "_write", dying_write)
    if fail_at == "publish":
        monkeypatch.setattr(_io.os, "rename", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises((KeyboardInterrupt, OSError)):
        model.save(tmp_path / "m", overwrite=True)
    monkeypatch.undo()
    assert {f: (tmp_path / "m" / f).read_bytes() for f in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary directory left behind
    sb.BranchedDiffusion.load(tmp_path / "m")


def test_failed_save_into_a_new_directory_leaves_nothing(toy_model, tmp_path, monkeypatch):
    model, _ = toy_model
    monkeypatch.setattr(_io, "_write", lambda path, data: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_numpy_scalar_options_save_and_load(toy_adata, tmp_path):
    adata = toy_adata.copy()
    model = sb.tl.fit(adata, groupby="cell_type", random_state=np.int64(1), **fast(max_steps=60))
    model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    again = sb.BranchedDiffusion.load(tmp_path / "m")
    assert again.state.random_state == 1 and type(again.state.random_state) is int


def test_overwrite_refuses_a_directory_that_holds_no_model(toy_model, tmp_path):
    model, _ = toy_model
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match=r"is not an scbranch model folder .*would delete \['thesis.tex'\]"):
        model.save(tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "precious"


# ---- a failed call never half-changes the model --------------------------------------------------------------
@pytest.fixture(scope="module")
def ab_model(toy_adata):
    """A model of types A and B, fitted once: each test changes a copy of it."""
    old = toy_adata[toy_adata.obs["cell_type"] != "C"].copy()
    return sb.tl.fit(old, groupby="cell_type", random_state=0, **fast())


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_add_cell_type_leaves_the_model_as_it_was(toy_adata, ab_model, monkeypatch, error):
    model = copy.deepcopy(ab_model)
    before = state_of(model)
    new = toy_adata[toy_adata.obs["cell_type"] == "C"].copy()
    new_before = new.copy()

    def dying_decoder(*args, **kwargs):  # the last step of the transaction: the tree and heads have grown by then
        msg = "interrupted"
        raise error(msg)

    monkeypatch.setattr(sb.BranchedDiffusion, "fit_decoder", dying_decoder)
    with pytest.raises(error):
        sb.tl.add_cell_type(new, model, max_steps=50, progress=False)
    monkeypatch.undo()
    assert_same_state(state_of(model), before)
    assert model.types == ["A", "B"]
    assert_adata_equal(new, new_before)
    assert sb.tl.generate(model, 3, progress=False).n_obs == 6
    if error is KeyboardInterrupt:  # and the same call then works (once: the slowest part of these tests)
        sb.tl.add_cell_type(new, model, max_steps=50, progress=False)
        assert sorted(model.types) == ["A", "B", "C"]


@pytest.fixture
def ctrl_c_at_step_3(monkeypatch):
    """A real SIGINT to this process at the 3rd training step (Lightning's own handling of it is what runs)."""
    from scbranch.model import _training

    real = _training.DiffusionTask.on_train_batch_end

    def ctrl_c(self, *args):
        real(self, *args)
        if self.global_step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_training.DiffusionTask, "on_train_batch_end", ctrl_c)
    # Python's own Ctrl-C handler, as in a terminal or notebook: a run started in the background (`cmd &`, nohup)
    # inherits SIGINT ignored, and then no KeyboardInterrupt could come whatever scbranch does
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Lightning left SIGINT ignored
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_ctrl_c_during_fit_is_a_keyboard_interrupt(toy_adata, ctrl_c_at_step_3):
    adata = toy_adata.copy()
    with pytest.raises(KeyboardInterrupt):  # was SystemExit(1)
        sb.tl.fit(adata, groupby="cell_type", **fast(max_steps=50))
    assert_adata_equal(adata, toy_adata)


def test_ctrl_c_during_add_cell_type_is_a_keyboard_interrupt(toy_model, ctrl_c_at_step_3):
    model, adata = toy_model
    new = adata[adata.obs["cell_type"] == "C"][:30].copy()
    new.obs["cell_type"] = pd.Categorical(["D"] * new.n_obs)
    new_before, before = new.copy(), state_of(model)
    with pytest.raises(KeyboardInterrupt):
        sb.tl.add_cell_type(new, model, max_steps=50, progress=False)
    assert_same_state(state_of(model), before)
    assert_adata_equal(new, new_before)


# ---- strict trees and options -------------------------------------------------------------------------------
def fit_quick(adata, **kw):
    return sb.tl.fit(adata, groupby="cell_type", **{"random_state": 0, **fast(), "max_steps": 40, **kw})


@pytest.mark.parametrize(("newick", "match"), [
    ("((A:0,B:0):0.5,C:0.5);", "zero-length"),
    ("((A:0.2,B:0.3):0.3,C:0.5);", "not ultrametric"),
    ("((A:0.2,B:0.2),C:0.5);", "branch lengths for 3 of its 4"),
])
def test_trees_that_were_silently_wrong_are_errors(toy_adata, newick, match):
    adata = toy_adata.copy()
    with pytest.raises(ValueError, match=match):
        fit_quick(adata, hierarchy=newick)
    assert_adata_equal(adata, toy_adata)


def test_partly_given_branch_times_are_an_error(toy_adata):
    table = pd.DataFrame({"node": ["root", "AB", "A", "B", "C"], "parent": ["", "root", "AB", "AB", "root"],
                          "time": [0.6, np.nan, 0.0, 0.0, 0.0]})
    adata = toy_adata.copy()
    with pytest.raises(ValueError, match="branch times for \\['root'\\] but not for every"):
        fit_quick(adata, hierarchy=table)
    assert_adata_equal(adata, toy_adata)


def test_labels_named_like_internal_nodes_do_not_collide(toy_adata):
    adata = toy_adata.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].map({"A": "n0", "B": "n1", "C": "n2"}).astype("category")
    model = fit_quick(adata)
    assert sorted(model.types) == ["n0", "n1", "n2"]
    assert set(model.hierarchy.leaves) == {"n0", "n1", "n2"}
    assert not {n.name for n in model.hierarchy.internal_nodes} & {"n0", "n1", "n2"}
    newick = sb.Hierarchy.from_newick("((n0,n1),n2);")
    assert not {n.name for n in newick.internal_nodes} & {"n0", "n1", "n2"}


@pytest.mark.parametrize("case", ["seed", "key", "mixed_labels", "huge", "dup_genes", "blank_label"])
def test_bad_fit_inputs_fail_first_and_clearly(toy_adata, case):
    adata = toy_adata.copy()
    kw, match = {}, None
    if case == "seed":
        kw, match = {"random_state": -1}, "random_state must be an integer"
    elif case == "key":
        kw, match = {"key_added": "run/1"}, "without '/'"
    elif case == "mixed_labels":
        labels = adata.obs["cell_type"].astype(str).to_numpy().astype(object)
        labels[labels == "A"] = 1
        labels[labels == "B"] = "1"
        adata.obs["cell_type"] = labels
        match = "distinct values with the same text"
    elif case == "huge":
        x = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float64)
        x[0, 0] = 1e30
        adata.X = x
        match = "values up to 1e\\+30"
    elif case == "dup_genes":
        adata.var_names = ["g0", *adata.var_names[:-1]]
        match = "occur more than once"
    else:
        adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"A": " "})
        match = "empty or blank labels"
    before = adata.copy()
    with pytest.raises(ValueError, match=match):
        fit_quick(adata, **kw)
    assert_adata_equal(adata, before)


@pytest.mark.parametrize(("call", "match"), [
    (lambda m, a: sb.tl.generate(m, 3, n_steps=0), "n_steps must be an integer >= 1"),
    (lambda m, a: sb.tl.generate(m, 2.7), "whole numbers of cells"),
    (lambda m, a: sb.tl.generate(m, {"A": 2.7}), "whole numbers of cells"),
    (lambda m, a: sb.tl.generate(m, 3, random_state=-1), "random_state"),
    (lambda m, a: sb.tl.generate(m, 3, key_added="a/b"), "without '/'"),
    (lambda m, a: sb.tl.transmute(a, m, source="A", target="C", n_steps=0), "n_steps must be an integer >= 1"),
    (lambda m, a: sb.tl.augment(a, m, min_cells=0), "min_cells must be an integer >= 1"),
])
def test_bad_sampling_options_are_errors(toy_model, call, match):
    model, adata = toy_model
    before = adata.copy()
    with pytest.raises((ValueError, TypeError), match=match):
        call(model, adata)
    assert_adata_equal(adata, before)


# ---- any label string round-trips ---------------------------------------------------------------------------
ALPHABET = list("aZ09 _-+./|:()'\",;[]{}éß漢😀\t")


@pytest.mark.parametrize("seed", [0, 1])
def test_random_label_strings_round_trip(toy_adata, tmp_path, seed):
    rng = np.random.default_rng(seed)
    names = set()
    while len(names) < 3:
        name = "".join(rng.choice(ALPHABET, size=rng.integers(1, 12)))
        if name.strip():
            names.add(name)
    mapping = dict(zip(["A", "B", "C"], sorted(names)))
    adata = toy_adata.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).map(mapping).astype("category")
    model = fit_quick(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adata.write_h5ad(tmp_path / "a.h5ad")
        back = ad.read_h5ad(tmp_path / "a.h5ad")
    table = back.uns["scbranch"]["hierarchy_table"]
    assert set(mapping.values()) <= set(table["node"])
    assert {t for v in back.uns["scbranch"]["branches"]["cell_types"] for t in json.loads(v)} == set(mapping.values())
    model.save(tmp_path / "m")
    again = sb.BranchedDiffusion.load(tmp_path / "m", back)
    syn = sb.tl.generate(again, 2, progress=False)
    assert sorted(syn.obs["cell_type"].unique()) == sorted(mapping.values())
    pd.testing.assert_index_equal(syn.var_names, adata.var_names)
    shutil.rmtree(tmp_path / "m")
    assert not os.path.exists(tmp_path / MARKER_NAME)


# ---- inputs that were accepted silently or failed obscurely ---------------------------------------------------
TERM = "[Term]\nid: TOY:{0}\nname: {1}\n{2}\n"


def obo_file(tmp_path, body):
    path = tmp_path / "onto.obo"
    path.write_text(body)
    return path


@pytest.mark.parametrize(("body", "match"), [
    ("format-version: 1.2\n\n" + TERM.format(1, "cell", "is_a: TOY:3") + TERM.format(2, "alpha cell", "is_a: TOY:1")
     + TERM.format(3, "beta cell", "is_a: TOY:2"), r"is_a links .* form a cycle through TOY:"),
    ("", r"could not read the ontology file .*onto\.obo"),
    ("format-version: 1.2\n[Term]\nid TOY:1\nname: x\n[[[\n", r"could not read the ontology file .*onto\.obo"),
    ("format-version: 1.2\n", r"onto\.obo holds no ontology terms"),
])
def test_ontology_files_that_make_no_tree_are_clear_errors(toy_adata, tmp_path, body, match):
    adata = toy_adata.copy()
    with pytest.raises(ValueError, match=match):
        fit_quick(adata, hierarchy=str(obo_file(tmp_path, body)))
    assert_adata_equal(adata, toy_adata)


def test_two_terms_with_one_labels_name_are_an_error(tmp_path):
    from scbranch.hierarchy._ontology import map_labels, read_ontology

    body = ("format-version: 1.2\n\n" + TERM.format(1, "cell", "") + TERM.format(2, "alpha cell", "is_a: TOY:1")
            + TERM.format(3, "alpha cell", "is_a: TOY:1"))
    onto = read_ontology(obo_file(tmp_path, body))
    with pytest.raises(ValueError, match=r"'alpha cell' is the name of 2 ontology terms \['TOY:2', 'TOY:3'\]"):
        map_labels(["alpha cell"], onto=onto)
    assert map_labels(["alpha cell"], mapping={"alpha cell": "TOY:3"}, onto=onto) == {"alpha cell": "TOY:3"}


@pytest.mark.parametrize("name", ["missing.obo", "missing.nwk"])
def test_a_missing_hierarchy_file_is_reported_as_missing(toy_adata, tmp_path, name):
    adata = toy_adata.copy()
    with pytest.raises(FileNotFoundError, match="not found"):  # was: could not parse Newick
        fit_quick(adata, hierarchy=str(tmp_path / name))
    assert_adata_equal(adata, toy_adata)


def test_a_cycle_in_a_parent_table_is_reported_as_a_cycle(toy_adata):
    table = pd.DataFrame({"node": ["root", "AB", "A", "B", "C", "X", "Y"],
                          "parent": ["", "root", "AB", "AB", "root", "Y", "X"]})
    adata = toy_adata.copy()
    with pytest.raises(ValueError, match="parent links form a cycle through"):  # was: types not leaves
        fit_quick(adata, hierarchy=table)
    assert_adata_equal(adata, toy_adata)


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"condition_keys": ["age"]}, ValueError, r"'age' holds 300 distinct numbers.*pd\.cut"),
    ({"model_kwargs": {"width": 64, "n_blocks": 2, "min_cells": 1}}, ValueError, "min_cells must be at least 2"),
    ({"width": 32}, TypeError, r"fit\(\) got width= and model_kwargs\['width'\]; pass it once"),
])
def test_options_that_were_taken_silently_are_errors(toy_adata, kw, error, match):
    adata = toy_adata.copy()
    adata.obs["age"] = np.random.default_rng(0).random(adata.n_obs)  # continuous: 300 categories before
    before = adata.copy()
    with pytest.raises(error, match=match):
        fit_quick(adata, **kw)
    assert_adata_equal(adata, before)


def test_proportions_as_a_string_is_an_error(toy_model):
    model, _ = toy_model
    node = model.hierarchy.internal_nodes[-1].name
    with pytest.raises(TypeError, match=r"proportions must be a \{type: weight\} mapping, got 'even'"):
        sb.tl.generate(model, {node: 10}, proportions="even")


def test_a_condition_given_as_none_is_marginalized():
    from types import SimpleNamespace

    from scbranch.model._conditions import condition_codes

    model = SimpleNamespace(state=SimpleNamespace(conditions={"keys": ["phase", "donor"],
                                                              "categories": [["G1", "S"], ["D1"]]}))
    assert condition_codes(model, {"phase": None, "donor": "D1"}).tolist() == [2, 0]  # 2: "not given"
    assert condition_codes(model, {"phase": None}).tolist() == condition_codes(model, None).tolist() == [2, 1]


@pytest.mark.parametrize(("tool", "kw"), [("transmute", {"source": "A", "target": "C"}), ("augment", {}),
                                          ("score_types", {}), ("add_cell_type", {}), ("impute", {}),
                                          ("transfer", {"condition": {"donor": "D1"}})])
def test_two_anndata_and_no_model_is_a_type_error(toy_adata, tool, kw):
    adata = toy_adata.copy()
    with pytest.raises(TypeError, match=r"takes an AnnData first, then the model .*got AnnData, AnnData"):
        getattr(sb.tl, tool)(adata, adata, **kw)
    assert_adata_equal(adata, toy_adata)
