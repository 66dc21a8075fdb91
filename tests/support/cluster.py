"""Async helpers the integration tests use to talk to the cluster (kubernetes_asyncio)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

T = TypeVar("T")
GROUP, VERSION = "rotor.dev", "v1alpha1"
PLURALS = {
    "ManagedSecret": "managedsecrets",
    "SecretStore": "secretstores",
    "ClusterSecretStore": "clustersecretstores",
    "RotationPolicy": "rotationpolicies",
    "ClusterRotationPolicy": "clusterrotationpolicies",
    "PushSecret": "pushsecrets",
    "ClusterManagedSecret": "clustermanagedsecrets",
}
CLUSTER_KINDS = {"ClusterSecretStore", "ClusterRotationPolicy", "ClusterManagedSecret"}


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.25, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what or probe}; last: {last!r}"
            )
        await asyncio.sleep(interval)


class Cluster:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)

    @classmethod
    async def connect(cls, kubeconfig: str) -> Cluster:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return cls(client.ApiClient(cfg))

    async def close(self) -> None:
        await self.api.close()

    # ---------------------------------------------------------------- namespaces
    async def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self.core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})

    async def label_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Set labels of a namespace (the client drops None values: labels cannot be removed so)."""
        await self.core.patch_namespace(name, {"metadata": {"labels": labels}})

    async def delete_namespace(self, name: str) -> None:
        try:
            await self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # ---------------------------------------------------------------- generic apply
    async def apply(
        self, manifest: dict[str, Any] | str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        docs = [d for d in yaml.safe_load_all(manifest) if d] if isinstance(manifest, str) else [manifest]
        out = []
        for doc in docs:
            kind = doc["kind"]
            ns = None if kind in CLUSTER_KINDS else (doc.get("metadata", {}).get("namespace") or namespace)
            if kind in PLURALS:
                out.append(await self._apply_custom(kind, doc, ns))
            elif kind == "Secret":
                out.append(await self._apply_core(doc, ns))
            elif kind in ("Deployment", "StatefulSet", "DaemonSet"):
                creator = {
                    "Deployment": self.apps.create_namespaced_deployment,
                    "StatefulSet": self.apps.create_namespaced_stateful_set,
                    "DaemonSet": self.apps.create_namespaced_daemon_set,
                }[kind]
                out.append(self.api.sanitize_for_serialization(await creator(ns, doc)))
            elif kind == "ServiceAccount":
                out.append(
                    self.api.sanitize_for_serialization(
                        await self.core.create_namespaced_service_account(ns, doc)
                    )
                )
            else:
                raise ValueError(f"apply() does not know {kind}")
        return out

    async def _apply_core(self, doc: dict[str, Any], ns: str | None) -> dict[str, Any]:
        name = doc["metadata"]["name"]
        try:
            obj = await self.core.create_namespaced_secret(ns, doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            obj = await self.core.replace_namespaced_secret(name, ns, doc)
        return dict(self.api.sanitize_for_serialization(obj))

    async def _apply_custom(self, kind: str, doc: dict[str, Any], ns: str | None) -> dict[str, Any]:
        plural = PLURALS[kind]
        name = doc["metadata"]["name"]
        try:
            if ns:
                return dict(
                    await self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, doc)
                )
            return dict(await self.custom.create_cluster_custom_object(GROUP, VERSION, plural, doc))
        except ApiException as exc:
            if exc.status != 409:
                raise
        patch = {k: v for k, v in doc.items() if k in ("spec", "metadata")}
        return await self.patch(kind, name, patch, ns)

    async def patch(
        self, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        plural = PLURALS[kind]
        if namespace:
            return dict(
                await self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    patch,
                    _content_type="application/merge-patch+json",
                )
            )
        return dict(
            await self.custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, patch, _content_type="application/merge-patch+json"
            )
        )

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            if namespace and kind not in CLUSTER_KINDS:
                return dict(
                    await self.custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURALS[kind], name
                    )
                )
            return dict(await self.custom.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            if namespace and kind not in CLUSTER_KINDS:
                await self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], name
                )
            else:
                await self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # ---------------------------------------------------------------- secrets
    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(self.api.sanitize_for_serialization(obj))

    async def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = await self.secret(namespace, name)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    # ---------------------------------------------------------------- conditions and events
    async def condition(
        self, kind: str, name: str, namespace: str | None, type_: str
    ) -> dict[str, Any] | None:
        obj = await self.get(kind, name, namespace)
        for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
            if cond.get("type") == type_:
                return dict(cond)
        return None

    async def wait_condition(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        type_: str = "Ready",
        *,
        status: str = "True",
        reason: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            cond = await self.condition(kind, name, namespace, type_)
            if cond and cond.get("status") == status and (reason is None or cond.get("reason") == reason):
                return cond
            return None

        return await wait_for(
            probe, timeout=timeout, what=f"{kind} {namespace}/{name} {type_}={status} {reason or ''}"
        )

    async def ready(self, name: str, namespace: str, timeout: float = 30.0) -> dict[str, Any]:
        await self.wait_condition("ManagedSecret", name, namespace, timeout=timeout)
        obj = await self.get("ManagedSecret", name, namespace)
        assert obj is not None
        return obj

    async def event_reasons(self, namespace: str, name: str | None = None) -> list[str]:
        resp = await self.events.list_namespaced_event(namespace)
        return [e.reason for e in resp.items if name is None or e.regarding.name == name]

    async def event_notes(self, namespace: str) -> list[str]:
        resp = await self.events.list_namespaced_event(namespace)
        return [e.note or "" for e in resp.items]
