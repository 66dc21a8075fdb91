"""ManagedSecret and the Secrets it writes: watch events go to the controller's index."""
# Handlers are coroutines on purpose: kopf runs plain functions in threads, and the controller's
# queue (asyncio) must only be touched from the event loop.

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.event("rotor.dev", "v1alpha1", "managedsecrets")
async def managed_secret_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        controller.observe(event["object"], event.get("type"))


@kopf.on.event("", "v1", "secrets", labels={"rotor.dev/managed-by": kopf.PRESENT})
async def managed_secret_target_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        controller.observe_secret(event["object"], event.get("type"))
