"""SecretStore and ClusterSecretStore: validated by the store service on every change."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.event("rotor.dev", "v1alpha1", "secretstores")
async def secret_store_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        await controller.observe_store("SecretStore", event["object"], event.get("type"))


@kopf.on.event("rotor.dev", "v1alpha1", "clustersecretstores")
async def cluster_secret_store_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        await controller.observe_store("ClusterSecretStore", event["object"], event.get("type"))
