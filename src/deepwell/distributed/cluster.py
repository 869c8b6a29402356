"""Joining a Ray cluster: the one named by `cluster.address` or $RAY_ADDRESS, else a one-machine cluster."""

from __future__ import annotations

import logging
import math
import os

from deepwell.config import ClusterConfig
from deepwell.errors import ConfigError


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.train  # noqa: F401
    except ImportError:
        raise ConfigError("cluster.backend ray needs Ray: pip install 'deepwell[ray]'.") from None


def connect(cluster: ClusterConfig) -> str:
    """Join (or start) the cluster once per process; returns where it is, for messages."""
    require_ray()
    import ray

    address = cluster.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return address or "the cluster this process joined"
    _quiet_ray()
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:  # enough logical CPUs for the workers and Ray Data's coordinator on any machine
            from deepwell.runtime import available_cpus

            cpus = max(available_cpus(), math.ceil(cluster.workers * cluster.cpus_per_worker) + 1)
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cluster.address {address!r}: no Ray cluster could be joined ({exc}). Start one with "
                          "`ray start --head` on the head machine and give its HOST:6379 (docs/ray.md).") from None
    return address or "a one-machine cluster started for this run"


def _quiet_ray() -> None:
    """No Ray Data progress bars over deepwell's own."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
