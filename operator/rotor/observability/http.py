"""/metrics, /healthz and /readyz on one port (aiohttp, on kopf's loop, no blocking)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from rotor.observability.metrics import REGISTRY, StateCollector

if TYPE_CHECKING:
    from rotor.controller.core import Controller

log = logging.getLogger("rotor.metrics")


class MetricsServer:
    def __init__(self, address: str, controller: Controller) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self.controller = controller
        self.collector = StateCollector(controller.samples, controller.stores.samples)
        REGISTRY.register(self.collector)
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        REGISTRY.unregister(self.collector)

    async def metrics(self, request: web.Request) -> web.Response:
        """prometheus_client's own exposition: OpenMetrics when the scraper's Accept header asks
        for it, the text format otherwise; gzip when Accept-Encoding allows it."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(REGISTRY)
        log.debug("serving /metrics: %d bytes of %s", len(body), content_type.split(";")[0])
        response = web.Response(body=body, headers={"Content-Type": content_type})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def healthz(self, _: web.Request) -> web.Response:
        """Alive unless a controller task ended, or the leader's work queue is stalled (keys
        have waited and no sync has finished for five minutes)."""
        if not all(not t.done() for t in self.controller.tasks):
            return web.Response(text="controller stopped", status=500)
        if self.controller.stalled():
            return web.Response(text="work queue stalled: no sync finished for 5 minutes", status=500)
        return web.Response(text="ok", status=200)

    async def readyz(self, _: web.Request) -> web.Response:
        """Ready once every informer has listed (a standby too, so a rolling update proceeds);
        the body says whether this replica leads."""
        ready = bool(self.controller.tasks) and self.controller.listed
        if not ready:
            return web.Response(text="starting", status=503)
        role = "leader" if self.controller.leading else "standby"
        return web.Response(text=f"ready ({role})", status=200)
