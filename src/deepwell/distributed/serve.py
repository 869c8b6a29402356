"""`deepwell serve MODEL --backend ray --replicas N`: the server's own FastAPI app as a Ray Serve deployment.

Each replica builds the app from the same settings `deepwell serve` uses (serving/app.app_from_settings): the same
routes, limits, token, request log and drift gauges; Ray Serve's proxy spreads requests over the replicas.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepwell.config import ClusterConfig
from deepwell.distributed.cluster import connect


def serve_on_ray(settings: dict[str, Any], *, host: str, port: int, replicas: int, address: str | None,
                 announce: Any = print) -> None:
    """Deploy and keep serving until Ctrl-C or SIGTERM; then the deployment is removed."""
    import signal

    from ray import serve

    from deepwell.serving.app import app_from_settings

    log = settings["monitoring"].get("log")
    if log:  # a replica's working folder is Ray's, not this shell's
        settings = {**settings, "monitoring": {**settings["monitoring"], "log": str(Path(log).resolve())}}
    where = connect(ClusterConfig(backend="ray", address=address, workers=replicas,
                                  cpus_per_worker=settings["threads"]))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM as Ctrl-C: the deployment is removed
    serve.start(http_options={"host": host, "port": port}, detached=False)
    @serve.deployment(name=f"deepwell-{settings['name']}", num_replicas=replicas,
                      ray_actor_options={"num_cpus": settings["threads"]})
    @serve.ingress()
    class Server:  # each replica builds the app once it starts
        def __init__(self, settings: dict[str, Any]) -> None:
            self.settings = settings

        def __serve_build_asgi_app__(self) -> Any:
            return app_from_settings(self.settings)

    try:
        serve.run(Server.bind(settings), name=settings["name"], route_prefix="/")
        announce(f"Ray Serve: {replicas} replica(s) of {settings['model']} on http://{host}:{port} ({where})")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(settings["name"])
