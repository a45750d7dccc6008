"""Model folders on disk: what ``overwrite`` may replace, symlinks and modes, saves killed at every step, and
loading a stranger's folder (symlinks, pipes, sizes, malformed manifests). Tiny tensors through the low-level
``save_dir``/``load_dir``, no fitted model: these run in a second or two."""

import contextlib
import json
import os
import signal
import stat
import threading

import pytest
import torch

from scbranch.model import _files, _io, _staging

FILES = ["config.json", "manifest.json", "model.pt"]


def save(path, version="new", *, overwrite=False):
    _io.save_dir(path, {"w": torch.full((3,), 1.0 if version == "new" else 0.0)}, {"version": version},
                 overwrite=overwrite)


def version(path):
    tensors, meta = _io.load_dir(path)
    assert float(tensors["w"][0]) == (1.0 if meta["version"] == "new" else 0.0)
    return meta["version"]


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ---- what overwrite may replace -------------------------------------------------------------------------------
def test_overwrite_refuses_a_project_folder_with_a_config_json(tmp_path):
    d = tmp_path / "project"
    (d / "raw").mkdir(parents=True)
    for name in ("config.json", "data.h5ad", "raw/counts.mtx"):
        (d / name).write_text("precious")
    with pytest.raises(FileExistsError, match=r"would delete \['config.json', 'data.h5ad', 'raw/'\]"):
        save(d, overwrite=True)
    assert (d / "data.h5ad").read_text() == "precious" and (d / "raw" / "counts.mtx").exists()
    assert listing(tmp_path) == ["project"]


def test_overwrite_refuses_a_model_folder_holding_anything_else(tmp_path):
    save(tmp_path / "m", "old")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"more than a model's files.*notes\.txt"):
        save(tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


def test_overwrite_refuses_a_folder_whose_manifest_lists_other_files(tmp_path):
    save(tmp_path / "m", "old")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["files"]["data.h5ad"] = "0" * 64
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileExistsError, match="does not list exactly"):
        save(tmp_path / "m", overwrite=True)


def test_the_listing_shows_the_first_entries_and_counts_the_rest(tmp_path):
    for i in range(8):
        (tmp_path / "d" / f"f{i}").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"\['f0/', 'f1/', 'f2/', 'f3/', 'f4/'\] and 3 more"):
        save(tmp_path / "d", overwrite=True)


def test_a_model_is_replaced_only_with_overwrite(tmp_path):
    save(tmp_path / "m", "old")
    with pytest.raises(FileExistsError, match="already holds a model; pass overwrite=True"):
        save(tmp_path / "m")
    save(tmp_path / "m", overwrite=True)
    assert version(tmp_path / "m") == "new"
    assert listing(tmp_path) == ["m"] and listing(tmp_path / "m") == FILES


def test_an_older_format_folder_may_be_saved_over(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"format": 2, "representation": "pca"}))
    torch.save({"w": torch.zeros(1)}, d / "model.pt")
    save(d, overwrite=True)
    assert version(d) == "new"


def test_an_empty_folder_is_saved_into(tmp_path):
    (tmp_path / "m").mkdir()
    save(tmp_path / "m")
    assert version(tmp_path / "m") == "new"


# ---- where and how a save writes ------------------------------------------------------------------------------
def test_a_symlink_is_written_through(tmp_path):
    save(tmp_path / "store" / "model-v1", "old")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "store" / "model-v1", target_is_directory=True)
    save(link, overwrite=True)
    assert link.is_symlink() and version(link) == "new" and version(tmp_path / "store" / "model-v1") == "new"
    assert listing(tmp_path) == ["current", "store"] and listing(tmp_path / "store") == ["model-v1"]


def test_a_save_killed_through_a_symlink_is_recovered_through_it(tmp_path):
    save(tmp_path / "store" / "m", "old")
    (tmp_path / "current").symlink_to(tmp_path / "store" / "m", target_is_directory=True)
    assert save_killed_at(tmp_path / "current", "moved_aside", overwrite=True)
    with recovering(True):
        assert version(tmp_path / "current") == "new"
    assert listing(tmp_path / "store") == ["m"] and (tmp_path / "current").is_symlink()


def test_relative_paths_stage_beside_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save("m/", "old")
    save("sub/../m", overwrite=True)
    assert version("./m") == "new" and listing(tmp_path) == ["m"]


def test_new_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save(tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert {stat.S_IMODE((tmp_path / "m" / f).stat().st_mode) for f in FILES} == {0o644}


def test_saving_below_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"a_file is a file, not a folder"):
        save(tmp_path / "a_file" / "sub" / "m")
    assert listing(tmp_path) == ["a_file"]


def test_saving_onto_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "m").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        save(tmp_path / "m", overwrite=True)


# ---- saves killed at every step -------------------------------------------------------------------------------
STEPS_FIRST = ["created", "wrote model.pt", "wrote config.json", "wrote manifest.json", "renamed"]
STEPS_REPLACE = [*STEPS_FIRST[:-1], "moved_aside", "renamed", "removed_old"]


def save_killed_at(path, step, *, overwrite):
    """Save in a forked child that SIGKILLs itself right after ``step``; True if it died there."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            def die(reached):
                if reached == step:
                    os.kill(os.getpid(), signal.SIGKILL)

            _staging.reached = die
            save(path, "new", overwrite=overwrite)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def recovering(expected: bool):
    """The next load or save puts back a model a killed save left aside, with a warning."""
    return pytest.warns(UserWarning, match="a save was interrupted; put back the model it was writing") if expected \
        else contextlib.nullcontext()


@pytest.mark.parametrize("step", STEPS_REPLACE)
@pytest.mark.parametrize("then", ["load", "save"])
def test_a_save_killed_at_any_step_loses_no_model_and_leaves_nothing(tmp_path, step, then):
    save(tmp_path / "m", "old")
    assert save_killed_at(tmp_path / "m", step, overwrite=True)
    if step == "moved_aside":  # no model at the path for now: the next load or save puts the newest back
        assert not (tmp_path / "m").exists()
    expected = "old" if STEPS_REPLACE.index(step) <= STEPS_REPLACE.index("wrote manifest.json") else "new"
    with recovering(step == "moved_aside"):
        if then == "load":
            assert version(tmp_path / "m") == expected
        else:
            with pytest.raises(FileExistsError, match="already holds a model"):
                save(tmp_path / "m", "old")  # after recovery the path holds a model again
    if then == "save":
        save(tmp_path / "m", "old", overwrite=True)
        assert version(tmp_path / "m") == "old"
    assert listing(tmp_path) == ["m"] and listing(tmp_path / "m") == FILES


@pytest.mark.parametrize("step", STEPS_FIRST)
def test_a_first_save_killed_at_any_step(tmp_path, step):
    assert save_killed_at(tmp_path / "m", step, overwrite=False)
    if step in ("created", "wrote model.pt", "wrote config.json"):  # no complete model was ever written
        with pytest.raises(FileNotFoundError, match="is not a model folder"):
            _io.load_dir(tmp_path / "m")
        assert listing(tmp_path) == []
    else:
        with recovering(step == "wrote manifest.json"):
            assert version(tmp_path / "m") == "new"
        assert listing(tmp_path) == ["m"]


def test_a_killed_save_on_a_read_only_disk_is_loaded_where_it_lies(tmp_path, monkeypatch):
    save(tmp_path / "m", "old")
    assert save_killed_at(tmp_path / "m", "moved_aside", overwrite=True)
    left = listing(tmp_path)

    def read_only(*args):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(_staging.os, "rename", read_only)
    with pytest.warns(UserWarning, match="using the model it was writing where it lies"):
        assert version(tmp_path / "m") == "new"
    assert listing(tmp_path) == left  # nothing removed: the model was read from there


def test_staging_folders_of_running_saves_are_left_alone(tmp_path):
    save(tmp_path / "m", "old")
    alive = tmp_path / f".m.saving-{os.getppid()}-{_staging._HOST}00000000"  # a running process's
    other_host = tmp_path / ".m.old-1-0123456700000000"  # a save on another machine sharing the disk
    alive.mkdir()
    other_host.mkdir()
    version(tmp_path / "m")
    save(tmp_path / "m", overwrite=True)
    assert listing(tmp_path) == sorted([alive.name, other_host.name, "m"])


def test_a_load_during_the_exchange_waits_for_it(tmp_path, monkeypatch):
    """A load that finds the path missing while a live save holds a moved-aside folder waits for the rename."""
    save(tmp_path / "m", "old")
    aside = tmp_path / f".m.old-{os.getpid()}-{_staging._HOST}00000000"
    os.rename(tmp_path / "m", aside)
    timer = threading.Timer(0.2, os.rename, (aside, tmp_path / "m"))
    timer.start()
    try:
        assert version(tmp_path / "m") == "old"
    finally:
        timer.join()


# ---- loading a stranger's folder: regular files within caps ----------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_a_symlink_inside_a_model_folder_is_refused(tmp_path, name):
    save(tmp_path / "m")
    (tmp_path / "m" / name).unlink()
    (tmp_path / "m" / name).symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=f"{name} is a symbolic link"):
        _io.load_dir(tmp_path / "m")


@pytest.mark.parametrize("name", FILES)
def test_a_named_pipe_inside_a_model_folder_is_refused_without_blocking(tmp_path, name):
    save(tmp_path / "m")
    (tmp_path / "m" / name).unlink()
    os.mkfifo(tmp_path / "m" / name)
    with pytest.raises(ValueError, match=f"{name} is not a regular file"):
        _io.load_dir(tmp_path / "m")


def test_a_folder_in_place_of_a_file_is_refused(tmp_path):
    save(tmp_path / "m")
    (tmp_path / "m" / "model.pt").unlink()
    (tmp_path / "m" / "model.pt").mkdir()
    with pytest.raises(ValueError, match=r"model\.pt is not a regular file"):
        _io.load_dir(tmp_path / "m")


@pytest.mark.parametrize("name", FILES)
def test_files_over_their_cap_are_refused_before_reading(tmp_path, monkeypatch, name):
    save(tmp_path / "m")
    monkeypatch.setitem(_files.CAPS, name, 10)
    with pytest.raises(ValueError, match=f"{name} holds .* bytes, more than the 10"):
        _io.load_dir(tmp_path / "m")


def test_the_caps_are_as_documented():
    assert _files.CAPS == {"manifest.json": 2**20, "config.json": 256 * 2**20, "model.pt": 16 * 2**30}


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: "[" * 100_000 + "]" * 100_000, "manifest.json nests its JSON too deeply"),
    (lambda m: json.dumps({**m, "files": list(m["files"])}), "'files' must map each file name to its sha256"),
    (lambda m: json.dumps({**m, "format": "3"}), "format must be an integer, got '3'"),
    (lambda m: json.dumps({**m, "format": 99}), "saved in format 99; this scbranch reads format 3"),
    (lambda m: json.dumps({**m, "files": {**m["files"], "model.pt": 5}}), "sha256 of model.pt must be a string"),
    (lambda m: "", "manifest.json is not a readable JSON file"),
])
def test_malformed_manifests_are_clear_errors(tmp_path, edit, match):
    save(tmp_path / "m")
    file = tmp_path / "m" / "manifest.json"
    file.write_text(edit(json.loads(file.read_text())))
    with pytest.raises(ValueError, match=match):
        _io.load_dir(tmp_path / "m")


def test_a_deeply_nested_config_names_the_file(tmp_path):
    save(tmp_path / "m")
    d = tmp_path / "m"
    (d / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"]["config.json"] = _io.sha256(d / "config.json")
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"config\.json nests its JSON too deeply"):
        _io.load_dir(d)


def test_the_command_lines_pictures_are_replaced_with_the_model(tmp_path):
    save(tmp_path / "m", "old")
    (tmp_path / "m" / "hierarchy.png").write_bytes(b"png")
    save(tmp_path / "m", overwrite=True)
    assert listing(tmp_path / "m") == FILES


def test_cli_overwrite_refuses_a_project_folder_before_training(tmp_path, capsys):
    from scbranch.cli import main

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "config.json").write_text("{}")
    (tmp_path / "project" / "data.h5ad").write_text("precious")
    assert main(["fit", str(tmp_path / "missing.h5ad"), "--groupby", "cell_type", "--out", str(tmp_path / "project"),
                 "--overwrite", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not an scbranch model folder" in err and "data.h5ad" in err and len(err.splitlines()) == 1
    assert (tmp_path / "project" / "data.h5ad").read_text() == "precious"


def test_a_listed_file_that_is_missing_is_named(tmp_path):
    save(tmp_path / "m")
    (tmp_path / "m" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.pt is missing; the model folder is incomplete"):
        _io.load_dir(tmp_path / "m")
