"""The signed HTTP receiver of change notifications (``--notify-addr``; aiohttp on kopf's loop).

``POST /v1/notify`` with a JSON body naming a store and keys, and ``X-Rotor-Signature:
sha256=<hex>``, the HMAC-SHA256 of the exact body under the key of the notify Secret. Answers:

- 202 ``{"queued": n, "coalesced": m}``: the readers of those keys are refreshed (now, or at the
  end of the store's share window when the keys were refreshed less than a window ago);
- 401: the signature is missing or wrong (an audit line records it; nothing is refreshed);
- 413: the body is larger than 64 KiB; 400: the body is no notification (the message says why);
- 404: no such store; 429: the store's notification rate is exceeded (``Retry-After``);
- 503: this replica is a standby, or the notify Secret is missing (``Retry-After``).

The body is checked for size before anything else and authenticated before it is parsed.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from rotor.api.names import NOTIFY_PATH, NOTIFY_SIGNATURE_HEADER
from rotor.notify.message import MAX_BODY_BYTES, InvalidNotification, parse_notification
from rotor.notify.signature import verify
from rotor.observability.logging import audit
from rotor.services.notifications import NotificationService, NotifyKey, count
from rotor.services.ports import StoreKey

log = logging.getLogger("rotor.notify")

SOURCE = "http"


def _store_id(store: StoreKey) -> str:
    kind, ns, name = store
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def _answer(status: int, result: str, message: str, **extra: object) -> web.Response:
    count(SOURCE, result)
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    body = json.dumps({"result": result, "message": message, **extra})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


class NotifyReceiver:
    def __init__(self, address: str, service: NotificationService, key: NotifyKey) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self.service = service
        self.key = key
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
        app.router.add_post(NOTIFY_PATH, self.notify)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        log.info("change notifications on %s:%d%s", self.host, self.port, NOTIFY_PATH)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def notify(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _answer(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(16384):  # a chunked body has no length
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return _answer(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        key = await self.key.get()
        if key is None:
            return _answer(503, "unavailable", f"the notify Secret {self.key.id} (key hmac-key) is missing")
        signature = request.headers.get(NOTIFY_SIGNATURE_HEADER)
        if not verify(key, body, signature):
            reloaded = await self.key.get(reload=True)  # the key may have been rotated
            if reloaded is None or reloaded == key or not verify(reloaded, body, signature):
                audit(
                    "notify",
                    managed_secret=None,
                    store=None,
                    key=None,
                    result="unauthorized",
                    target=request.remote,
                )
                log.warning(
                    "refused a notification from %s: %s",
                    request.remote,
                    "no signature" if not signature else "the signature does not verify",
                    extra={"reason": "Unauthorized"},
                )
                return _answer(
                    401,
                    "unauthorized",
                    f"sign the body with HMAC-SHA256 under the notify key: {NOTIFY_SIGNATURE_HEADER}: sha256=<hex>",
                )
        try:
            notification = parse_notification(body)
        except InvalidNotification as err:
            return _answer(400, "invalid", str(err))
        store = notification.store
        if not self.service.known_store(store):
            return _answer(404, "unknown_store", f"no {_store_id(store)}")
        if not self.service.scheduler.leading:
            return _answer(503, "not_leader", "this replica is a standby; send again (the leader refreshes)")
        if not self.service.allow(store):
            return _answer(429, "rate_limited", f"too many notifications for {_store_id(store)}")
        outcome = self.service.refresh(store, notification.keys)
        audit(
            "notify",
            managed_secret=None,
            store=_store_id(store),
            key=",".join(notification.keys)[:512],
            result=outcome.result,
        )
        return _answer(
            202,
            outcome.result,
            f"{outcome.queued} ManagedSecrets queued, {outcome.coalesced} at the end of the share window",
            queued=outcome.queued,
            coalesced=outcome.coalesced,
        )
