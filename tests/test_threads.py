"""Thread choice for training and sampling: explicit settings win; a busy machine gets fewer threads."""

import logging
import os

import pytest
import scanpy as sc
import torch

from scbranch import _threads


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_warned", False)
    monkeypatch.setattr(_threads, "_auto", None)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # only this process busy
    n_jobs, threads = sc.settings.n_jobs, torch.get_num_threads()
    sc.settings.n_jobs = 1
    yield monkeypatch
    sc.settings.n_jobs = n_jobs
    torch.set_num_threads(threads)


def test_explicit_settings_win(clean):
    clean.setenv("OMP_NUM_THREADS", "1")
    assert _threads.choose_threads() == (1, "OMP_NUM_THREADS")
    clean.delenv("OMP_NUM_THREADS")
    sc.settings.n_jobs = 3
    assert _threads.choose_threads() == (3, "sc.settings.n_jobs")
    sc.settings.n_jobs = -1
    assert _threads.choose_threads() == (_threads.physical_cores(), "sc.settings.n_jobs")


def test_idle_machine_uses_physical_cores_and_restores(clean):
    cores = _threads.physical_cores()
    assert 1 <= cores <= os.cpu_count()
    assert _threads.choose_threads() == (cores, "physical cores")
    torch.set_num_threads(1)
    with _threads.torch_threads() as n:
        assert n == cores and torch.get_num_threads() == cores
    assert torch.get_num_threads() == 1


def test_busy_machine_gets_fewer_threads_and_one_warning(clean, caplog, monkeypatch):
    monkeypatch.setattr(_threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 2.0))  # ~2 other busy processes
    caplog.set_level(logging.WARNING, logger="scbranch")
    monkeypatch.setattr(logging.getLogger("scbranch"), "propagate", True)
    with _threads.torch_threads() as n:
        assert n == 1
    assert any("busy" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with _threads.torch_threads():
        pass
    assert not any("busy" in r.getMessage() for r in caplog.records)  # warned once per process


def test_logging_follows_scanpy_verbosity(toy_adata, caplog, monkeypatch):
    from scbranch import _logging

    monkeypatch.setattr(logging.getLogger("scbranch"), "propagate", True)
    caplog.set_level(logging.INFO, logger="scbranch")
    before = sc.settings.verbosity
    try:
        sc.settings.verbosity = 0
        _logging.info("step one")
        _logging.warning("careful")
        assert not caplog.records
        sc.settings.verbosity = 1  # scanpy's default: warnings only
        _logging.info("step two")
        _logging.warning("careful")
        assert {r.levelno for r in caplog.records} == {logging.WARNING}
        sc.settings.verbosity = 2
        _logging.info("step three")
        assert caplog.records[-1].getMessage() == "step three"
    finally:
        sc.settings.verbosity = before
