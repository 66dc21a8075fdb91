"""The one place kopf is tuned, and where the controller is built and started."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from rotor.clock import Clock
from rotor.controller.core import Controller, Settings
from rotor.kube.gateway import KubeGateway
from rotor.observability.http import MetricsServer
from rotor.services.backend import thread_pool
from rotor.services.hashkey import load_hash_key

log = logging.getLogger("rotor")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    options = memo.get("options") or {}
    settings.posting.enabled = False  # Rotor posts its own Events, on transitions only
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # one kopf worker per object: no cap (a cap made new objects wait for idle workers to expire),
    # and idle workers end quickly so 5,000 objects do not keep 5,000 tasks alive
    settings.batching.worker_limit = None
    settings.batching.idle_timeout = 5.0
    settings.scanning.disabled = False
    settings.execution.max_workers = 4  # kopf's own pool; backends use rotor.services.backend's pool
    settings.peering.name = options.get("peering") or "rotor"
    settings.peering.standalone = bool(options.get("standalone", True))
    settings.peering.mandatory = not settings.peering.standalone
    settings.peering.priority = int(options.get("priority", 0))
    settings.peering.lifetime = int(options.get("peering_lifetime", 60))
    thread_pool(int(options.get("backend_threads", 16)))

    gateway = await KubeGateway.connect(os.environ.get("KUBECONFIG"))
    hash_key = await load_hash_key(gateway)
    controller = Controller(
        gateway,
        Clock.from_env(),
        Settings(
            concurrency=int(options.get("concurrency", 8)),
            restart_limit=int(options.get("restart_limit", 2)),
            restart_debounce=float(options.get("restart_debounce", 30.0)),
            hash_key=hash_key,
            namespaces=list(options.get("namespaces") or []),
        ),
    )
    if not settings.peering.standalone:
        controller.watch_peering(
            name=settings.peering.name,
            identity=str(options.get("identity")),
            priority=settings.peering.priority,
            namespaces=list(options.get("namespaces") or []),
        )
    await controller.start()
    memo["controller"] = controller
    memo["gateway"] = gateway
    server = MetricsServer(options.get("metrics_addr", "0.0.0.0:8080"), controller)
    await server.start()
    memo["metrics_server"] = server
    log.info("rotor started", extra={"concurrency": controller.settings.concurrency})


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.services.aclose()
        await controller.stop()
    server = memo.get("metrics_server")
    if server is not None:
        await server.stop()
    gateway = memo.get("gateway")
    if gateway is not None:
        await gateway.close()
