"""Thread choice for training and sampling: explicit settings win; a busy machine gets fewer threads."""

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
    monkeypatch.setattr(_threads, "busy_cores", lambda: 0.0)  # no other process busy
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


def test_busy_machine_gets_fewer_threads_and_one_warning(clean, scanpy_log, monkeypatch):
    monkeypatch.setattr(_threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(_threads, "busy_cores", lambda: 2.2)  # ~2 other busy processes
    with _threads.torch_threads() as n:
        assert n == 1
    assert "busy" in scanpy_log.getvalue()
    scanpy_log.truncate(0)
    scanpy_log.seek(0)
    with _threads.torch_threads():
        pass
    assert "busy" not in scanpy_log.getvalue()  # warned once per process


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="busy_cores watches /proc/stat (Linux)")
def test_busy_cores_sees_another_process_now_and_not_this_one():
    """Another process spinning counts (at once, not a minute later as in the load average); this process's
    own work does not."""
    import subprocess
    import sys
    import threading
    import time

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started
        assert _threads.busy_cores() >= 0.6
    finally:
        spinner.kill()
        spinner.wait()
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            sum(range(1000))

    quiet_before = _threads.busy_cores()
    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert _threads.busy_cores() <= quiet_before + 0.4  # this process's own thread is not "another process"
    finally:
        stop.set()
        worker.join()


def test_logging_follows_scanpy_verbosity(toy_adata, scanpy_log):
    from scbranch import _logging

    before = sc.settings.verbosity
    try:
        sc.settings.verbosity = 0
        _logging.info("step one")
        _logging.warning("careful")
        assert scanpy_log.getvalue() == ""
        sc.settings.verbosity = 1  # scanpy's default: warnings only
        _logging.info("step two")
        _logging.warning("careful")
        assert scanpy_log.getvalue() == "WARNING: careful\n"
        sc.settings.verbosity = 2
        start = _logging.info("step three")
        _logging.info("    finished", time=start, deep="added .obs['x']")  # deep: only at verbosity 3, as scanpy's
        assert scanpy_log.getvalue().splitlines()[1:] == ["step three", "    finished (0:00:00)"]
        sc.settings.verbosity = 3
        _logging.info("    finished", time=start, deep="added .obs['x']")
        assert scanpy_log.getvalue().splitlines()[-1] == "    finished: added .obs['x'] (0:00:00)"
    finally:
        sc.settings.verbosity = before
