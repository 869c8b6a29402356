"""How much of the machine this process may use, and making torch use exactly that.

deepwell runs beside other work: a notebook, a second training, tuning trials, server workers, Ray workers.
torch's default (one thread per core it can see, OpenMP threads spinning while they wait) turns two busy
processes on one machine into many times slower runs. So:
- threads = the CPUs this process may run on (its affinity mask), capped by a cgroup CPU quota (containers);
  `training.threads` / `--threads` / `$DEEPWELL_THREADS` override it;
- the command line asks OpenMP to sleep, not spin, while waiting (`OMP_WAIT_POLICY=PASSIVE`, unless set),
  which must happen before torch is imported — so it is done by `deepwell.cli.main.run`, never on import.

And Ctrl-C is never lost: Python drops an exception raised inside a garbage-collection callback or `__del__`
(MLflow's SQLAlchemy registers such callbacks), so a Ctrl-C landing there would vanish and the run would go on.
`remember_interrupts` (installed by the command line) notes each Ctrl-C; the training loop re-raises one that
nobody handled, and whoever handles it calls `interrupt_handled`.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from types import FrameType

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
_interrupts = {"pending": False}
_threads_set = {"count": None}  # what use_threads last set, to tell it from a count the user chose


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_quota() -> float | None:
    """The container's CPU limit in CPUs (cgroup v2 `cpu.max`, or v1 quota/period); None when unlimited."""
    try:
        if CGROUP_V2.is_file():
            quota, period = CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if CGROUP_V1[0].is_file():
            quota, period = (int(p.read_text()) for p in CGROUP_V1)
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def available_memory() -> int:
    """Bytes of memory this process may use: the machine's, capped by a cgroup memory limit (v2 `memory.max`,
    v1 `memory.limit_in_bytes`) and by $DEEPWELL_MEMORY_LIMIT (bytes, or with a K / M / G suffix: what deepwell
    should plan for on a shared machine)."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    setting = os.environ.get("DEEPWELL_MEMORY_LIMIT", "").strip().upper()
    if setting:
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(setting[-1], 1)
        number = setting[:-1] if setting[-1] in "KMG" else setting
        try:
            physical = min(physical, int(float(number) * scale))
        except ValueError:
            from deepwell.errors import warn

            warn(f"DEEPWELL_MEMORY_LIMIT={setting!r} is not a number of bytes (e.g. 8G); ignored.")
    for limit in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            value = limit.read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            return min(physical, int(value))
    return physical


def requested_threads(setting: int | str | None = None) -> int:
    """`setting` (an int, or "auto"/None), else $DEEPWELL_THREADS, else `available_cpus()`."""
    if isinstance(setting, int):
        return setting
    return _threads_from_env() or available_cpus()


def _threads_from_env() -> int | None:
    from_env = os.environ.get("DEEPWELL_THREADS", "").strip()
    return int(from_env) if from_env.isdigit() and int(from_env) > 0 else None


def use_threads(setting: int | str | None = None) -> int:
    """Set torch's intra-op threads for this process; returns the number used.

    An explicit number (`setting`, `$DEEPWELL_THREADS`) is used as given. "auto" never raises a count the user
    chose with `torch.set_num_threads` — it only lowers one above the CPUs this process may use."""
    import torch

    current = torch.get_num_threads()
    threads = requested_threads(setting)
    explicit = isinstance(setting, int) or _threads_from_env() is not None
    if not explicit and current != _threads_set["count"]:  # torch's default or the user's own choice
        threads = min(current, threads)
    if current != threads:
        torch.set_num_threads(threads)
    _threads_set["count"] = threads
    return threads


def prefer_passive_waiting() -> None:
    """Ask OpenMP to sleep rather than spin while waiting (unless the user chose); only effective before torch
    is imported, so only an application entry point (the CLI, a worker) calls it."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def remember_interrupts() -> None:
    """Ctrl-C still raises KeyboardInterrupt at once, and is also noted until handled (see the module note)."""
    signal.signal(signal.SIGINT, _note_interrupt)


def _note_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupts["pending"] = True
    raise KeyboardInterrupt


def interrupt_pending() -> bool:
    """A Ctrl-C arrived and no handler has dealt with it (it was swallowed where Python ignores exceptions)."""
    return _interrupts["pending"]


def interrupt_handled() -> None:
    _interrupts["pending"] = False
