"""Reading the files of a model folder that may come from a stranger: regular files only, each with a size cap.

A file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so a symlink
(to ``/dev/zero``, or to a file outside the folder) and anything that is not a regular file (a named pipe, a
device) are refused instead of read until memory runs out or waited on forever; the size is checked against the
cap before reading and the read stops at the cap should the file grow meanwhile.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MiB, GiB = 2**20, 2**30
# the most each file of a model folder may hold (a model of 20,000 genes and 100 types has a model.pt of
# ~100 MiB and a config.json of ~2 MiB)
CAPS = {"manifest.json": 1 * MiB, "config.json": 256 * MiB, "model.pt": 16 * GiB}


def read_capped(path: Path, cap: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (not a symlink), at most ``cap`` (default: its entry in CAPS)."""
    cap = CAPS[path.name] if cap is None else cap
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if path.is_symlink():  # O_NOFOLLOW refuses it too; checked first for the clearer message
        msg = f"{path} is a symbolic link; a model folder holds regular files only, refusing to read it"
        raise ValueError(msg)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        msg = f"{path} is missing; the model folder is incomplete"
        raise FileNotFoundError(msg) from err
    except OSError as err:
        msg = f"{path} cannot be opened as a regular file ({err.strerror}); refusing to read it"
        raise ValueError(msg) from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            msg = f"{path} is not a regular file; a model folder holds regular files only, refusing to read it"
            raise ValueError(msg)
        if info.st_size > cap:
            msg = f"{path} holds {info.st_size:,} bytes, more than the {cap:,} a model's {path.name} may hold"
            raise ValueError(msg)
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(64 * MiB, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                msg = f"{path} grew past the {cap:,} bytes a model's {path.name} may hold while it was read"
                raise ValueError(msg)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_json(path: Path, data: bytes) -> dict:
    """``data`` (the bytes of ``path``) as a JSON object, or a clear error naming the file."""
    try:
        out = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"{path} is not a readable JSON file ({err}); the model folder is damaged"
        raise ValueError(msg) from err
    except RecursionError as err:  # "[[[[…": Python's parser gives up; no model nests that deep
        msg = f"{path} nests its JSON too deeply to be a model's; the model folder is damaged"
        raise ValueError(msg) from err
    if not isinstance(out, dict):
        msg = f"{path} does not hold a JSON object; the model folder is damaged"
        raise ValueError(msg)
    return out


def read_json(path: Path) -> dict:
    """:func:`read_capped` then :func:`parse_json`."""
    return parse_json(path, read_capped(path))
