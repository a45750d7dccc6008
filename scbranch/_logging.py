"""Timed logging through scanpy's logger (``start = info("running …")`` … ``info("    finished", time=start)``).

scverse plugins log with ``scanpy.logging`` rather than a handler of their own, so one setting governs every tool
in a notebook: ``sc.settings.verbosity`` (info lines at 2 and above, warnings at 1, scanpy's default, and nothing
at 0; the ``deep`` detail of a line at 3, as scanpy shows its own) and ``sc.settings.logfile`` (where the lines
go). The command line sets verbosity 2 unless ``--quiet``. scanpy is imported at the first message, not with
scbranch: ``scbranch --help`` does not pay for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

_quiet = 0  # depth of quiet() blocks: info lines inside them are dropped


def _scanpy_logging():
    from scanpy import logging as sc_logging

    return sc_logging


def verbosity() -> int:
    """scanpy's ``sc.settings.verbosity`` as an int (0 nothing, 1 warnings, 2 info, 3 hints)."""
    import scanpy as sc

    return int(sc.settings.verbosity)


def info(msg: str, *, time: datetime | None = None, deep: str | None = None) -> datetime:
    """An info line (with the time since ``time``, and ``deep`` at verbosity 3); returns now, for ``time=``."""
    if _quiet:
        return datetime.now(UTC)
    return _scanpy_logging().info(msg, time=time, deep=deep)


def warning(msg: str) -> None:
    _scanpy_logging().warning(msg)


@contextmanager
def quiet(enabled: bool = True):
    """Drop info lines inside the block (e.g. the same check repeated per chunk); warnings still show."""
    global _quiet
    _quiet += bool(enabled)
    try:
        yield
    finally:
        _quiet -= bool(enabled)
