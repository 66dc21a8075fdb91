"""RotationPolicy and ClusterRotationPolicy: indexed for the rotation service."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.event("rotor.dev", "v1alpha1", "rotationpolicies")
async def rotation_policy_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        controller.observe_policy("RotationPolicy", event["object"], event.get("type"))


@kopf.on.event("rotor.dev", "v1alpha1", "clusterrotationpolicies")
async def cluster_rotation_policy_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    controller = memo.get("controller")
    if controller is not None and event.get("object"):
        controller.observe_policy("ClusterRotationPolicy", event["object"], event.get("type"))
