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
def test_busy_cores_sees_another_process_now():
    """Another process spinning counts at once (the load average would show it a minute later)."""
    import subprocess
    import sys
    import time

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started
        assert _threads.busy_cores() >= 0.6
    finally:
        spinner.kill()
        spinner.wait()


def test_busy_cores_leaves_out_this_process_and_falls_back_to_the_load_average(monkeypatch):
    """The machine's busy time over the window, less this process's own: 1.5 cores busy, 1.0 of them ours."""

    class Clock:
        now = iter([0.0, 1.0])

        @staticmethod
        def monotonic():
            return next(Clock.now)

        @staticmethod
        def sleep(_):
            pass

    machine, own = iter([100.0, 101.5]), iter([5.0, 6.0])
    monkeypatch.setattr(_threads, "time", Clock)
    monkeypatch.setattr(_threads, "_cpu_busy_s", lambda: next(machine))
    monkeypatch.setattr(_threads, "_own_cpu_s", lambda: next(own))
    assert _threads.busy_cores() == pytest.approx(0.5)

    def missing():
        msg = "no /proc/stat"
        raise OSError(msg)

    monkeypatch.setattr(_threads, "_cpu_busy_s", missing)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.25, 1.0, 1.0), raising=False)
    assert _threads.busy_cores() == pytest.approx(1.25)  # the load average less this process


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
