"""Timed logging in scanpy's style (``start = info("running …")`` … ``info("    finished", time=start)``).

Gated by scanpy's ``sc.settings.verbosity`` as scanpy's own tools are: info lines at 2 ("info") and above,
warnings at 1 ("warning", scanpy's default) and above, nothing at 0. So a notebook is quiet by default;
``sc.settings.verbosity = 2`` shows each step with its time (the command line sets it unless ``--quiet``).
"""

from __future__ import annotations

import logging
import time as _time
from contextlib import contextmanager

logger = logging.getLogger("scbranch")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def verbosity() -> int:
    try:
        import scanpy as sc

        return int(sc.settings.verbosity)
    except ImportError:  # pragma: no cover - scanpy is a dependency
        return 2


def info(msg: str, *, time: float | None = None, deep: str | None = None) -> float:
    now = _time.perf_counter()
    if verbosity() < 2:
        return now
    if time is not None:
        msg = f"{msg} ({now - time:.1f}s)"
    if deep:
        msg = f"{msg}\n    {deep}"
    logger.info(msg)
    return now


def warning(msg: str) -> None:
    if verbosity() >= 1:
        logger.warning(f"WARNING: {msg}")


@contextmanager
def quiet(enabled: bool = True):
    """Silence info messages inside the block (e.g. the same check repeated per chunk)."""
    level = logger.level
    if enabled:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
