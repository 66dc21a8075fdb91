"""The one place kopf is tuned, and where the controller is built and started."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import kopf

from rotor.clock import Clock
from rotor.controller.core import Controller, Settings
from rotor.kube.gateway import KubeGateway
from rotor.kube.lease import LeaderElector, LeaseConfig
from rotor.observability.http import MetricsServer
from rotor.services.backend import thread_pool
from rotor.services.hashkey import load_hash_key
from rotor.services.notifications import NotifyKey
from rotor.services.notify_receiver import NotifyReceiver

log = logging.getLogger("rotor")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    options = memo.get("options") or {}
    # kopf watches nothing (no handlers, no peering, no scanning): it runs startup and cleanup
    settings.posting.enabled = False  # Rotor posts its own Events, on transitions only
    settings.scanning.disabled = True
    settings.peering.standalone = True
    thread_pool(int(options.get("backend_threads", 16)))

    gateway = await KubeGateway.connect(os.environ.get("KUBECONFIG"))
    hash_key = await load_hash_key(gateway)
    lease: LeaseConfig | None = options.get("lease")  # None: --no-leader-elect
    elector = None
    if lease is not None:
        if not lease.namespace:
            namespace = KubeGateway.default_namespace(os.environ.get("KUBECONFIG"), None)
            lease = dataclasses.replace(lease, namespace=namespace)
        elector = LeaderElector(gateway, lease)
        log.info(
            "leader election on Lease %s/%s as %s",
            lease.namespace,
            lease.name,
            lease.identity,
            extra={"identity": lease.identity},
        )
    controller = Controller(
        gateway,
        Clock.from_env(),
        Settings(
            concurrency=int(options.get("concurrency", 8)),
            restart_limit=int(options.get("restart_limit", 2)),
            restart_limit_cluster=int(options.get("restart_limit_cluster", 0)),
            restart_min_interval=float(options.get("restart_min_interval", 600.0)),
            restart_debounce=float(options.get("restart_debounce", 30.0)),
            hash_key=hash_key,
            namespaces=list(options.get("namespaces") or []),
            shard=lease.name if lease is not None else "rotor",
            notify_rate=float(options.get("notify_rate", 10.0)),
            notify_burst=int(options.get("notify_burst", 100)),
        ),
        elector=elector,
    )
    await controller.start()
    memo["controller"] = controller
    memo["gateway"] = gateway
    server = MetricsServer(options.get("metrics_addr", "0.0.0.0:8080"), controller)
    await server.start()
    memo["metrics_server"] = server
    notify_addr = options.get("notify_addr")
    if notify_addr:
        namespace, name = options["notify_secret"]
        receiver = NotifyReceiver(
            notify_addr, controller.services.notifications, NotifyKey(gateway, namespace, name)
        )
        await receiver.start()
        memo["notify_receiver"] = receiver
    log.info("rotor started", extra={"concurrency": controller.settings.concurrency})


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.services.aclose()
        await controller.stop()
    receiver = memo.get("notify_receiver")
    if receiver is not None:
        await receiver.stop()
    server = memo.get("metrics_server")
    if server is not None:
        await server.stop()
    gateway = memo.get("gateway")
    if gateway is not None:
        await gateway.close()
