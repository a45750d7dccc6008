"""Saving and loading a model directory: tensors and JSON only, checked by a manifest, replaced atomically.

A model directory holds ``model.pt`` (tensors only: the network, the representation and its decoders, scVI's
weights), ``config.json`` (plain JSON: options, hierarchy, history, the representation's metadata) and
``manifest.json`` (format version and the sha256 of both files). Loading trusts nothing it reads: the manifest is
checked before anything is parsed, ``torch.load(weights_only=True)`` refuses pickled objects, and nothing in the
directory is handed to a loader that unpickles (scVI is rebuilt from its state dict, see
``representation._scvi``). Saving writes a temporary directory beside the target and renames it into place,
so a failed save leaves the previous model (or no directory) — never half a model.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import _logging as logg

SAVE_FORMAT = 3  # 3: manifest + scVI as tensors; 2: decoders in the representation; 1: residual on the model
MODEL_FILES = ("model.pt", "config.json")
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """One file, flushed to disk (the rename that publishes the directory must not outrun its contents)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save_dir(path: str | os.PathLike, tensors: dict, meta: dict, *, overwrite: bool) -> None:
    """Write ``tensors`` (``torch.save``) and ``meta`` (JSON) as a model directory at ``path``, atomically."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            msg = f"{path} exists and is not a directory"
            raise FileExistsError(msg)
        entries = list(path.iterdir())
        if entries and not overwrite:
            msg = f"{path} exists and is not empty; pass overwrite=True"
            raise FileExistsError(msg)
        if entries and not any((path / f).exists() for f in (MANIFEST, *MODEL_FILES)):
            msg = f"{path} is not empty and holds no scbranch model; refusing to replace it (choose another path)"
            raise FileExistsError(msg)
    try:  # before anything is written: every value must be plain JSON
        config_bytes = json.dumps({"format": SAVE_FORMAT, **meta}, indent=1, allow_nan=True).encode()
    except TypeError as err:
        msg = f"cannot save the model: its configuration holds a value that is not plain JSON ({err})"
        raise TypeError(msg) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    try:
        contents = {"model.pt": _torch_bytes(tensors), "config.json": config_bytes}
        for name in MODEL_FILES:
            _write(tmp / name, contents[name])
        manifest = {"format": SAVE_FORMAT,  # hashed in memory: the bytes just written, not read back
                    "files": {f: hashlib.sha256(contents[f]).hexdigest() for f in MODEL_FILES}}
        _write(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        _publish(tmp, path)
    except BaseException:  # KeyboardInterrupt included: the temporary directory goes, the target is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _torch_bytes(tensors: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def _publish(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``; an existing ``path`` is moved aside first and removed only afterwards."""
    if not path.exists():
        os.rename(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path, data: bytes | None = None) -> dict:
    """``path``'s JSON object (``data``: its bytes, already read), or a clear error naming the file."""
    try:
        out = json.loads(path.read_bytes() if data is None else data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"{path} is not a readable JSON file ({err}); the model directory is damaged"
        raise ValueError(msg) from err
    if not isinstance(out, dict):
        msg = f"{path} does not hold a JSON object; the model directory is damaged"
        raise ValueError(msg)
    return out


def load_dir(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(tensors, meta)`` of a model directory, after checking its manifest (see module docstring)."""
    path = Path(path)
    if not path.is_dir():
        msg = f"{path} is not a model directory"
        raise FileNotFoundError(msg)
    if not (path / MANIFEST).exists():
        return _load_legacy(path)
    manifest = _read_json(path / MANIFEST)
    if manifest.get("format") != SAVE_FORMAT:
        msg = (f"{path} holds a model saved in format {manifest.get('format')}; this scbranch reads format "
               f"{SAVE_FORMAT}: fit the model again")
        raise ValueError(msg)
    files, contents = manifest.get("files", {}), {}
    for name in MODEL_FILES:  # each file read once: hashed, then parsed from the same bytes
        if name not in files:
            msg = f"{path / MANIFEST} does not list {name}; the model directory is damaged"
            raise ValueError(msg)
        if not (path / name).exists():
            msg = f"{path / name} is missing"
            raise FileNotFoundError(msg)
        contents[name] = (path / name).read_bytes()
        if hashlib.sha256(contents[name]).hexdigest() != files[name]:
            msg = (f"integrity check failed: {path / name} changed after the model was saved (sha256 differs from "
                   f"{MANIFEST}); refusing to load it")
            raise ValueError(msg)
    meta = _read_json(path / "config.json", contents["config.json"])
    return _torch_load(path / "model.pt", contents["model.pt"]), meta


def _torch_load(file: Path, data: bytes | None = None) -> dict:
    try:  # tensors only: never unpickles objects
        return torch.load(file if data is None else io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:
        msg = f"{file} is not a tensors-only checkpoint ({type(err).__name__}); refusing to load it"
        raise ValueError(msg) from err


def _load_legacy(path: Path) -> tuple[dict, dict]:
    """Format 2 (no manifest): PCA models load, with a warning; scVI models saved scVI with pickle: refused."""
    if not (path / "config.json").exists():
        msg = f"{path} holds no scbranch model (no {MANIFEST} or config.json)"
        raise FileNotFoundError(msg)
    meta = _read_json(path / "config.json")
    fmt = meta.get("format", 1)
    if fmt != 2:
        msg = (f"{path} holds a model saved in format {fmt}; this scbranch reads format {SAVE_FORMAT} "
               "(and format 2 PCA models): fit the model again")
        raise ValueError(msg)
    if meta.get("representation") != "pca":
        msg = (f"{path} holds a format-2 scVI model, whose scVI part scvi-tools would unpickle (it can run code); "
               "scbranch does not load it: fit the model again")
        raise ValueError(msg)
    logg.warning(f"{path} was saved by an older scbranch (format 2, no integrity manifest); save it again")
    return _torch_load(path / "model.pt"), meta


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
