"""torch's intra-op threads while scbranch trains or samples, chosen deliberately and restored afterwards.

Why: a training step is compute-bound, and torch's OpenMP threads spin while they wait for each other. Two
processes with torch's default threads on 2 cores slowed a fit 40× here (300 steps: 422 s vs 10 s with one
thread each). So: an explicit choice wins (``OMP_NUM_THREADS``, or scanpy's ``sc.settings.n_jobs`` when set
to anything but its default 1); otherwise the physical cores, minus the cores other processes keep busy (watched
for 0.2 s when the choice is first made, see :func:`busy_cores`), with a warning (once per process) when that
leaves fewer threads than cores.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

from . import _logging as logg

_warned = False
_auto: tuple[int, str] | None = None  # the automatic choice, made once per process (see choose_threads)


def physical_cores() -> int:
    """Physical cores this process may run on (Linux: distinct (package, core) pairs; else logical CPUs)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores, cpu = set(), None
    try:
        with open("/proc/cpuinfo") as fh:
            info: dict[str, str] = {}
            for line in [*fh, "\n"]:
                if line.strip():
                    key, _, val = line.partition(":")
                    info[key.strip()] = val.strip()
                    continue
                cpu = int(info.get("processor", -1))
                if cpu in allowed:
                    cores.add((info.get("physical id"), info.get("core id", cpu)))
                info = {}
    except (OSError, ValueError):
        cores = set()
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def choose_threads() -> tuple[int, str]:
    """The number of intra-op threads to use, and why."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    try:
        import scanpy as sc

        n_jobs = sc.settings.n_jobs
    except ImportError:  # scanpy is a dependency, but keep this module importable on its own
        n_jobs = 1
    cores = physical_cores()
    if n_jobs not in (None, 1):
        return (cores if n_jobs < 0 else int(n_jobs)), "sc.settings.n_jobs"
    global _auto
    if _auto is None:  # once: later, this process's own threads would count as others' work
        busy = busy_cores()
        free = max(1, cores - round(busy))
        _auto = free, ("physical cores" if free == cores else f"physical cores ({cores}) minus ~{round(busy)} busy")
    return _auto


SAMPLE_S = 0.2  # how long busy_cores watches the machine


def busy_cores() -> float:
    """Cores that other processes keep busy now: the machine's non-idle CPU time over ``SAMPLE_S`` seconds
    (``/proc/stat``) less this process's own. Why not the load average (used where ``/proc/stat`` is missing):
    it trails by a minute, so a fit started just after another one ended counted that one as busy and trained on
    one thread of two (as ``benchmarks/wide.py``'s points, each a fresh process started right after the last)."""
    try:
        start, own, t0 = _cpu_busy_s(), _own_cpu_s(), time.monotonic()
        time.sleep(SAMPLE_S)
        machine, mine, elapsed = _cpu_busy_s() - start, _own_cpu_s() - own, time.monotonic() - t0
        return max(0.0, (machine - mine) / elapsed)
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc/stat or sched_getaffinity (not Linux)
        return max(0.0, os.getloadavg()[0] - 1.0) if hasattr(os, "getloadavg") else 0.0  # minus this process


def _cpu_busy_s() -> float:
    """Seconds of CPU time the CPUs this process may run on have spent on anything but idling and waiting for I/O
    (in a container pinned to some of a host's CPUs, only those: the others' load is not ours to avoid)."""
    allowed = os.sched_getaffinity(0)
    busy = 0
    with open("/proc/stat") as fh:
        for line in fh:
            name, *values = line.split()
            if not name.startswith("cpu"):
                break  # the per-CPU lines come first
            if name == "cpu" or int(name[3:]) not in allowed:
                continue
            fields = [int(v) for v in values]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            busy += sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@contextmanager
def torch_threads():
    """Run the block with :func:`choose_threads` intra-op threads; restore the caller's setting after."""
    global _warned
    n, why = choose_threads()
    if why.startswith("physical cores (") and not _warned:
        _warned = True
        logg.warning(f"other processes keep this machine's cores busy: training with {n} torch thread(s) ({why}); "
                     "set OMP_NUM_THREADS or sc.settings.n_jobs to choose (timings beside other jobs vary)")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
