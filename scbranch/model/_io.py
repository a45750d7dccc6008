"""Saving and loading a model folder: tensors and JSON only, checked by a manifest, exchanged in by renames.

A model folder holds ``model.pt`` (tensors only: the network, the representation and its decoders, scVI's
weights), ``config.json`` (plain JSON: options, hierarchy, history, the representation's metadata) and
``manifest.json`` (format version and the sha256 of both files), and nothing else.

Loading trusts nothing it reads: each file must be a regular file (no symlink, pipe or device) within a size cap
(``_files.CAPS``: manifest 1 MiB, config 256 MiB, model.pt 16 GiB), the manifest is checked before anything is
parsed, ``torch.load(weights_only=True)`` refuses pickled objects, nothing in the folder is handed to a loader
that unpickles (scVI is rebuilt from its state dict, see ``representation._scvi``), and the config's numbers are
checked before anything is allocated from them (``_checks``).

Saving writes a staging folder beside the target and exchanges it in (``_staging``), so a failed save leaves
the previous model — never half a model; a save killed between the two renames is mended by the next load.
``overwrite=True`` replaces only a folder that is exactly a model (:func:`not_a_model` says why another is not):
a folder holding anything else is an error listing what would have been deleted. A symlink at the target is
written through (the folder it points to is replaced, the link kept). New folders get the user's umask.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .. import _logging as logg
from . import _staging
from ._files import parse_json, read_capped, read_json

SAVE_FORMAT = 3  # 3: manifest + scVI as tensors; 2: decoders in the representation; 1: residual on the model
MODEL_FILES = ("model.pt", "config.json")
MANIFEST = "manifest.json"
# what `scbranch fit --out` draws beside the model: part of a model folder, replaced with it
DIAGNOSTICS = ("hierarchy.png", "branch_points.png")
LEGACY_FORMATS = (1, 2)  # config.json and model.pt, no manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """One file, flushed to disk (the rename that publishes the folder must not outrun its contents)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ---- which folder is a model ------------------------------------------------------------------------------------
def not_a_model(path: Path) -> str | None:
    """Why the folder ``path`` is not exactly an scbranch model (``None`` if it is): a parsable manifest listing
    exactly the model's files and those files, regular, and nothing else (but the command line's pictures,
    ``DIAGNOSTICS``); or an older model (format 1 or 2: ``config.json`` saying so and ``model.pt``)."""
    names = set(os.listdir(path))
    try:
        if MANIFEST in names:
            expected = {MANIFEST, *MODEL_FILES}
            files = read_json(path / MANIFEST).get("files")
            if not isinstance(files, dict) or set(files) != set(MODEL_FILES):
                return f"its {MANIFEST} does not list exactly {list(MODEL_FILES)}"
        else:
            expected = set(MODEL_FILES)
            if "config.json" not in names:
                return f"it has no {MANIFEST}"
            if read_json(path / "config.json").get("format", 1) not in LEGACY_FORMATS:
                return f"it has no {MANIFEST}, and its config.json is not an older scbranch model's"
    except (OSError, ValueError) as err:
        return f"its files cannot be read as a model's ({err})"
    other = names - expected - set(DIAGNOSTICS)
    if other:
        return f"it holds more than a model's files ({len(other)} other entries)"
    if expected - names:
        return f"it lacks {sorted(expected - names)}"
    irregular = sorted(n for n in expected if (path / n).is_symlink() or not (path / n).is_file())
    return f"{irregular} are not regular files" if irregular else None


def _listing(path: Path, n: int = 5) -> str:
    entries = sorted(os.listdir(path))
    shown = [e + "/" if (path / e).is_dir() and not (path / e).is_symlink() else e for e in entries[:n]]
    more = f" and {len(entries) - n} more" if len(entries) > n else ""
    return f"{shown}{more}"


def _folder(path: Path) -> Path:
    """The model folder ``path`` names, absolute and through a symlink at ``path``: the staging folders of its
    saves lie beside the folder itself, whatever the path was written as (``m/``, ``a/../m``, a link)."""
    return Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(os.path.abspath(path))


def _save_target(path: Path) -> Path:
    """Where a save to ``path`` writes (:func:`_folder`: a symlink is written through, the link kept); an error
    if a parent is a file."""
    path = _folder(path)
    for parent in path.parents:
        if os.path.exists(parent):
            if not os.path.isdir(parent):
                msg = f"cannot save the model to {path}: {parent} is a file, not a folder; choose another path"
                raise NotADirectoryError(msg)
            break
    return path


def check_target(path: Path, overwrite: bool) -> Path:
    """Where a save to ``path`` writes (:func:`_save_target`), after checking that nothing but a model (or an
    empty folder) would be replaced, and a model only with ``overwrite`` (the command line checks before training)."""
    path = _save_target(Path(path))
    _check_replaceable(path, overwrite)
    return path


def _check_replaceable(path: Path, overwrite: bool) -> None:
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        msg = f"{path} exists and is not a folder; choose another path"
        raise FileExistsError(msg)
    if not os.listdir(path):
        return
    reason = not_a_model(path)
    if reason is not None:
        msg = (f"{path} is not an scbranch model folder ({reason}); saving there would delete {_listing(path)}: "
               "choose another path, or move its contents away first")
        raise FileExistsError(msg)
    if not overwrite:
        msg = f"{path} already holds a model; pass overwrite=True to replace it"
        raise FileExistsError(msg)


# ---- save -------------------------------------------------------------------------------------------------------
def save_dir(path: str | os.PathLike, tensors: dict, meta: dict, *, overwrite: bool) -> None:
    """Write ``tensors`` (``torch.save``) and ``meta`` (JSON) as a model folder at ``path`` (see module docstring)."""
    path = _save_target(Path(path))
    _staging.recover(path, _complete)  # an interrupted save's model back in place first: this save may fail too
    _staging.clean(path)
    _check_replaceable(path, overwrite)
    try:  # before anything is written: every value must be plain JSON
        config_bytes = json.dumps({"format": SAVE_FORMAT, **meta}, indent=1, allow_nan=True).encode()
    except TypeError as err:
        msg = f"cannot save the model: its configuration holds a value that is not plain JSON ({err})"
        raise TypeError(msg) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = {"model.pt": _torch_bytes(tensors), "config.json": config_bytes}
    manifest = {"format": SAVE_FORMAT,  # hashed in memory: the bytes about to be written, not read back
                "files": {f: hashlib.sha256(contents[f]).hexdigest() for f in MODEL_FILES}}
    contents[MANIFEST] = json.dumps(manifest, indent=1).encode()
    tmp = _staging.new(path, _staging.SAVING)
    os.mkdir(tmp)  # mode 0o777 less the umask, as any folder the user makes (mkdtemp's would be 0o700)
    try:
        _staging.reached("created")
        for name in (*MODEL_FILES, MANIFEST):  # the manifest last: a staged folder with one is complete
            _write(tmp / name, contents[name])
            _staging.reached(f"wrote {name}")
        _staging.exchange(tmp, path)
    except BaseException:  # KeyboardInterrupt included: the staging folder goes, the target is as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _torch_bytes(tensors: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


# ---- load -------------------------------------------------------------------------------------------------------
def load_dir(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(tensors, meta)`` of a model folder, after checking its files and manifest (see module docstring)."""
    path = _folder(path)
    _wait_for_exchange(path)
    folder = _staging.recover(path, _complete) or path
    if folder == path:  # (not while the model is read from a staged folder that could not be put back)
        _staging.clean(path)
    if not folder.is_dir():
        msg = f"{path} is not a model folder"
        raise FileNotFoundError(msg)
    if not os.path.lexists(folder / MANIFEST):
        return _load_legacy(folder)
    contents = _verified(folder, _manifest(folder))
    meta = parse_json(folder / "config.json", contents["config.json"])
    return _torch_load(folder / "model.pt", contents["model.pt"]), meta


def _wait_for_exchange(path: Path, seconds: float = 2.0) -> None:
    """A save running now leaves ``path`` missing for the instant between its two renames: wait that out."""
    deadline = time.monotonic() + seconds
    while (not os.path.lexists(path) and time.monotonic() < deadline
           and any(s.kind == _staging.OLD and not s.stale for s in _staging.staged(path))):
        time.sleep(0.02)


def _manifest(folder: Path) -> dict:
    """The manifest, checked: an integer format this scbranch reads, and a sha256 for each model file."""
    file = folder / MANIFEST
    manifest = read_json(file)
    fmt = manifest.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        msg = f"{file}: format must be an integer, got {fmt!r}; the model folder is damaged"
        raise ValueError(msg)
    if fmt != SAVE_FORMAT:
        msg = (f"{folder} holds a model saved in format {fmt}; this scbranch reads format {SAVE_FORMAT}: "
               "fit the model again")
        raise ValueError(msg)
    files = manifest.get("files")
    if not isinstance(files, dict):
        msg = (f"{file}: 'files' must map each file name to its sha256, got a {type(files).__name__}; "
               "the model folder is damaged")
        raise ValueError(msg)
    for name in MODEL_FILES:
        if name not in files:
            msg = f"{file} does not list {name}; the model folder is damaged"
            raise ValueError(msg)
        if not isinstance(files[name], str):
            msg = f"{file}: the sha256 of {name} must be a string, got {files[name]!r}; the model folder is damaged"
            raise ValueError(msg)
    return manifest


def _verified(folder: Path, manifest: dict) -> dict[str, bytes]:
    """Each model file's bytes, read once (capped) and checked against the manifest's sha256: the same bytes are
    then parsed, so nothing can change between the check and the use."""
    contents = {}
    for name in MODEL_FILES:
        contents[name] = read_capped(folder / name)
        if hashlib.sha256(contents[name]).hexdigest() != manifest["files"][name]:
            msg = (f"integrity check failed: {folder / name} changed after the model was saved (sha256 differs from "
                   f"{MANIFEST}); refusing to load it")
            raise ValueError(msg)
    return contents


def _complete(folder: Path) -> bool:
    """A model folder whose files all match its manifest (what recovery may put back)."""
    try:
        if not_a_model(folder) is not None:
            return False
        _verified(folder, _manifest(folder))
        return True
    except (OSError, ValueError):
        return False


def _torch_load(file: Path, data: bytes) -> dict:
    try:  # tensors only: never unpickles objects
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:
        msg = f"{file} is not a tensors-only checkpoint ({type(err).__name__}); refusing to load it"
        raise ValueError(msg) from err


def _load_legacy(path: Path) -> tuple[dict, dict]:
    """Format 2 (no manifest): PCA models load, with a warning; scVI models saved scVI with pickle: refused."""
    if not os.path.lexists(path / "config.json"):
        msg = f"{path} holds no scbranch model (no {MANIFEST} or config.json)"
        raise FileNotFoundError(msg)
    meta = read_json(path / "config.json")
    fmt = meta.get("format", 1)
    if fmt != 2:
        msg = (f"{path} holds a model saved in format {fmt!r}; this scbranch reads format {SAVE_FORMAT} "
               "(and format 2 PCA models): fit the model again")
        raise ValueError(msg)
    if meta.get("representation") != "pca":
        msg = (f"{path} holds a format-2 scVI model, whose scVI part scvi-tools would unpickle (it can run code); "
               "scbranch does not load it: fit the model again")
        raise ValueError(msg)
    logg.warning(f"{path} was saved by an older scbranch (format 2, no integrity manifest); save it again")
    return _torch_load(path / "model.pt", read_capped(path / "model.pt")), meta


def plain(obj, where: str = "config"):
    """``obj`` as plain JSON values (numpy scalars and arrays converted), or a TypeError naming the key."""
    if isinstance(obj, dict):
        return {str(k): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, where) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    msg = f"{where} holds a {type(obj).__name__}, not a plain JSON value"
    raise TypeError(msg)
