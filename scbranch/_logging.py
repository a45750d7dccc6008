"""Timed logging in scanpy's style (``start = info("running …")`` … ``info("    finished", time=start)``)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
import time as _time

logger = logging.getLogger("scbranch")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def info(msg: str, *, time: float | None = None, deep: str | None = None) -> float:
    now = _time.perf_counter()
    if time is not None:
        msg = f"{msg} ({now - time:.1f}s)"
    if deep:
        msg = f"{msg}\n    {deep}"
    logger.info(msg)
    return now


def warning(msg: str) -> None:
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
