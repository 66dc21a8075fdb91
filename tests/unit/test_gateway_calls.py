"""The gateway's per-object calls (Secrets, status, finalizer, Events) go through its own HTTP
session: the paths, methods, content types and credentials the apiserver expects, 404 as None
where asked, and the apiserver's message in a KubeError otherwise (against a local HTTP server
standing in for the apiserver; the integration tests use the real one)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes_asyncio import client

from rotor.devenv.process import free_port
from rotor.kube.gateway import KubeError, KubeGateway

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="function")
async def server() -> AsyncIterator[tuple[KubeGateway, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "content_type": request.headers.get("Content-Type"),
                "authorization": request.headers.get("Authorization"),
                "body": json.loads(body) if body else None,
            }
        )
        if "missing" in request.path:
            return web.json_response({"kind": "Status", "message": "not found"}, status=404)
        if "refused" in request.path:
            return web.json_response({"kind": "Status", "message": "data: Invalid value"}, status=422)
        return web.json_response({"metadata": {"name": "x", "resourceVersion": "7"}, "status": {"a": 1}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    cfg = client.Configuration(
        host=f"http://127.0.0.1:{port}",
        api_key={"BearerToken": "not-a-real-token"},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    gateway = KubeGateway(client.ApiClient(cfg))
    try:
        yield gateway, seen
    finally:
        await gateway.close()
        await runner.cleanup()


async def test_the_per_object_calls(server: tuple[KubeGateway, list[dict[str, Any]]]) -> None:
    gateway, seen = server
    created = await gateway.create_secret("team-a", {"metadata": {"name": "app"}, "data": {"k": "dg=="}})
    assert created["metadata"]["resourceVersion"] == "7"
    await gateway.patch_secret("team-a", "app", {"data": {"gone": None}})
    stored = await gateway.patch_status("ManagedSecret", "app", "team-a", {"observedGeneration": 2})
    assert stored is not None and stored["status"] == {"a": 1}
    await gateway.patch_status("ClusterSecretStore", "shared", None, {"observedGeneration": 1})
    await gateway.patch_object("ManagedSecret", "app", "team-a", {"metadata": {"finalizers": []}})
    await gateway.post_event(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": "app", "namespace": "team-a"},
        },
        type_="Normal",
        reason="Synced",
        note="Secret app written (1 keys)",
        action="Sync",
    )
    assert await gateway.get_secret("team-a", "app") is not None
    calls = [(c["method"], c["path"], c["content_type"]) for c in seen]
    merge = "application/merge-patch+json"
    assert calls == [
        ("POST", "/api/v1/namespaces/team-a/secrets", "application/json"),
        ("PATCH", "/api/v1/namespaces/team-a/secrets/app", merge),
        ("PATCH", "/apis/rotor.dev/v1alpha1/namespaces/team-a/managedsecrets/app/status", merge),
        ("PATCH", "/apis/rotor.dev/v1alpha1/clustersecretstores/shared/status", merge),
        ("PATCH", "/apis/rotor.dev/v1alpha1/namespaces/team-a/managedsecrets/app", merge),
        ("POST", "/apis/events.k8s.io/v1/namespaces/team-a/events", "application/json"),
        ("GET", "/api/v1/namespaces/team-a/secrets/app", None),
    ]
    assert {c["authorization"] for c in seen} == {"Bearer not-a-real-token"}
    assert seen[1]["body"] == {"data": {"gone": None}}  # None is sent: the merge patch removes it
    assert seen[2]["body"] == {"status": {"observedGeneration": 2}}
    assert gateway.writes == {
        "create-secret": 1,
        "patch-secret": 1,
        "patch-status": 2,
        "patch-object": 1,
        "event": 1,
    }


async def test_missing_and_refused(server: tuple[KubeGateway, list[dict[str, Any]]]) -> None:
    gateway, _ = server
    assert await gateway.get_secret("team-a", "missing") is None
    assert await gateway.patch_status("ManagedSecret", "missing", "team-a", {}) is None
    await gateway.patch_object("ManagedSecret", "missing", "team-a", {})  # gone: nothing to do
    with pytest.raises(KubeError) as refused:
        await gateway.create_secret("refused", {"metadata": {"name": "app"}})
    assert refused.value.status == 422 and "data: Invalid value" in str(refused.value)
    with pytest.raises(KubeError) as gone:
        await gateway.patch_secret("team-a", "missing", {"data": {}})
    assert gone.value.status == 404
    # an Event the apiserver refuses is dropped (best effort), not raised
    await gateway.post_event(
        {"metadata": {"name": "app", "namespace": "refused"}},
        type_="Normal",
        reason="Synced",
        note="n",
        action="Sync",
    )
