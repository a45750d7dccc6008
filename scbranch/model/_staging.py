"""The folders a save stages beside its target, and what a later save or load does with those a killed save left.

A save of ``NAME`` writes ``.NAME.saving-PID-TOKEN`` beside it, then exchanges it in by two renames: the current
``NAME`` (if any) to ``.NAME.old-PID-TOKEN``, the staged folder to ``NAME``; the old one is removed last. A
process killed between the two renames leaves no ``NAME`` for a moment, and one killed anywhere leaves staging
folders behind; POSIX has no rename that swaps two folders, so instead the next :func:`recover` (every load) puts
the newest complete model back at ``NAME`` (with a warning) and :func:`clean` (every save and load) removes the
staging folders of saves that are no longer running.

``TOKEN`` is a hash of the host name and a random part: a staging folder is judged stale only if it was made on
this host by a process that no longer exists. A save running on another machine that shares the disk cannot be
told from a dead one, so its folders are left alone (and never used for recovery).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import _logging as logg

SAVING, OLD = "saving", "old"
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_SUFFIX = re.compile(r"(saving|old)-(\d+)-([0-9a-f]{8})[0-9a-f]{8}")


def reached(step: str) -> None:
    """Called after each step of a save; a no-op. The kill tests replace it to kill the process right there."""


@dataclass(frozen=True)
class Staged:
    path: Path
    kind: str  # SAVING or OLD
    pid: int
    host: str

    @property
    def stale(self) -> bool:
        """Left by a save that is no longer running (made on this host by a process that is gone)."""
        return self.host == _HOST and self.pid != os.getpid() and not _alive(self.pid)


def new(target: Path, kind: str) -> Path:
    """A fresh staging path beside ``target`` (not created)."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{_HOST}{secrets.token_hex(4)}"


def staged(target: Path) -> list[Staged]:
    """The staging folders beside ``target``."""
    prefix = f".{target.name}."
    try:
        entries = list(target.parent.iterdir())
    except OSError:  # no parent folder (yet), or unreadable: nothing staged that we could use
        return []
    out = []
    for entry in entries:
        m = _SUFFIX.fullmatch(entry.name[len(prefix):]) if entry.name.startswith(prefix) else None
        if m and entry.is_dir() and not entry.is_symlink():
            out.append(Staged(entry, m.group(1), int(m.group(2)), m.group(3)))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def exchange(staging: Path, target: Path) -> None:
    """Put the complete folder ``staging`` at ``target``; an existing ``target`` is moved aside first and removed
    only once the new one is in place (a failure in between moves it back; a kill is mended by :func:`recover`)."""
    if not target.exists():
        os.rename(staging, target)
        reached("renamed")
        return
    old = new(target, OLD)
    os.rename(target, old)
    reached("moved_aside")
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    reached("renamed")
    shutil.rmtree(old, ignore_errors=True)  # the new model is in place: a leftover is cleaned by the next save/load
    reached("removed_old")


def recover(target: Path, is_complete) -> Path | None:
    """If ``target`` is missing, put back the newest complete model a killed save left beside it (a staged
    new model or the moved-aside old one; ``is_complete(folder)`` judges) and warn; returns the folder
    to load (``target``, or the staged folder itself where it cannot be renamed), or None."""
    if os.path.lexists(target):
        return None
    candidates = [s for s in staged(target) if s.stale and is_complete(s.path)]
    if not candidates:
        return None
    # newest first: a complete staged save is newer than the model it was replacing
    best = max(candidates, key=lambda s: (s.kind == SAVING, _mtime(s.path)))
    what = "the model it was writing" if best.kind == SAVING else "the model it was replacing"
    try:
        os.rename(best.path, target)
        found = target
    except OSError:
        if os.path.lexists(target):  # another process recovered it first
            return None
        found = best.path  # a read-only disk: load it where it lies
    msg = (f"{target} was missing because a save was interrupted; put back {what} (from {best.path.name})"
           if found == target else
           f"{target} is missing because a save was interrupted; using {what} where it lies, in {best.path}")
    logg.warning(msg)
    warnings.warn(msg, UserWarning, stacklevel=4)
    return found


def clean(target: Path) -> list[Path]:
    """Remove the staging folders of interrupted saves of ``target`` (see module docstring); returns them."""
    removed = []
    for s in staged(target):
        if s.stale:
            shutil.rmtree(s.path, ignore_errors=True)
            if not s.path.exists():
                removed.append(s.path)
    if removed:
        logg.info(f"    removed {len(removed)} folder(s) left by interrupted saves of {target}")
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
