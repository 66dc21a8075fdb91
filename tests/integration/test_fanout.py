"""ClusterManagedSecret (DESIGN §11, issue 17) against the real apiserver and Vault: one
ManagedSecret per selected namespace, removed when a namespace stops matching, never over a
ManagedSecret it did not generate (NameConflict), spec changes propagated, an unchanged pass
writing nothing; and no way around tenancy: the ClusterSecretStore's conditions and allowedKeys
refuse a copy exactly as they refuse a tenant's own ManagedSecret (Forbidden, no backend read).

Each test's fan-out namespaces are created beside its own namespace (which holds the store's
token) and carry a label unique to the test, so no two tests select each other's namespaces.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import yaml

from rotor.api.names import CLUSTER_MANAGED_BY_LABEL
from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import API, audit, metric, ms_manifest, root_cluster_store
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")

MS = "app-db"


@pytest_asyncio.fixture(loop_scope="session")
async def spaces(cluster: Cluster, namespace: str) -> AsyncIterator[Callable[..., Any]]:
    """``await make(i, **labels)``: a namespace beside the test's own; all deleted afterwards."""
    made: list[str] = []

    async def make(i: int, **labels: str) -> str:
        name = f"{namespace[:52]}-f{i}"
        await cluster.create_namespace(name, labels)
        made.append(name)
        return name

    yield make
    for name in made:
        await cluster.delete_namespace(name)


def cms_manifest(name: str, store: str, **spec: Any) -> dict[str, Any]:
    template = spec.pop(
        "template",
        {
            "storeRef": {"name": store, "kind": "ClusterSecretStore"},
            "dataFrom": [{"extract": {"key": "tenants/{namespace}/db"}}],
        },
    )
    return {
        "apiVersion": API,
        "kind": "ClusterManagedSecret",
        "metadata": {"name": name},
        "spec": {"managedSecretName": MS, "template": template, **spec},
    }


def tenant_value(env: TestEnvironment, leaks: LeakRegistry, namespace: str) -> str:
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"tenants/{namespace}/db", {"password": value})
    return value


async def cms_status(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = await cluster.get("ClusterManagedSecret", name)
    return dict((obj or {}).get("status") or {})


async def wait_cms(
    cluster: Cluster, name: str, *, selected: int, ready: int, timeout: float = 60
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = await cms_status(cluster, name)
        counts = status.get("namespaces") or {}
        if counts.get("selected") == selected and counts.get("ready") == ready:
            return status
        return None

    return await wait_for(
        probe, timeout=timeout, what=f"ClusterManagedSecret {name} {ready}/{selected} Ready"
    )


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == "Ready")


async def gone(cluster: Cluster, namespace: str, name: str = MS) -> bool:
    async def probe() -> bool:
        return await cluster.get("ManagedSecret", name, namespace) is None

    return await wait_for(probe, timeout=60, what=f"ManagedSecret {namespace}/{name} deleted")


@pytest_asyncio.fixture(loop_scope="session")
async def cleanup(cluster: Cluster) -> AsyncIterator[list[tuple[str, str]]]:
    """Cluster-scoped objects a test made: (kind, name), deleted afterwards."""
    made: list[tuple[str, str]] = []
    yield made
    for kind, name in made:
        await cluster.delete(kind, name)


# ---------------------------------------------------------------------------------------------- happy path
async def test_fanout_follows_the_selector_and_the_list(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    spaces: Callable[..., Any],
    leaks: LeakRegistry,
    cleanup: list[tuple[str, str]],
) -> None:
    tag = secrets.token_hex(4)
    a = await spaces(1, fanout=tag)
    b = await spaces(2, fanout=tag)
    listed = await spaces(3)
    values = {ns: tenant_value(env, leaks, ns) for ns in (a, b, listed)}
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        conditions=[{"namespaceSelector": {"matchLabels": {"fanout": tag}}}, {"namespaces": [listed]}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    cleanup.append(("ClusterSecretStore", store))
    name = f"cms-{tag}"
    cleanup.append(("ClusterManagedSecret", name))
    await cluster.apply(
        cms_manifest(name, store, namespaceSelector={"matchLabels": {"fanout": tag}}, namespaces=[listed])
    )
    status = await wait_cms(cluster, name, selected=3, ready=3)
    ready = ready_condition(status)
    assert (ready["status"], ready["reason"]) == ("True", "Synced")
    cms = await cluster.get("ClusterManagedSecret", name)
    assert cms is not None and status["observedGeneration"] == cms["metadata"]["generation"]
    for ns in (a, b, listed):
        ms = await cluster.get("ManagedSecret", MS, ns)
        assert ms is not None
        assert ms["metadata"]["labels"][CLUSTER_MANAGED_BY_LABEL] == name
        (owner,) = ms["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("ClusterManagedSecret", cms["metadata"]["uid"])
        assert ms["spec"]["dataFrom"][0]["extract"]["key"] == f"tenants/{ns}/db"
        assert await cluster.secret_data(ns, MS) == {"password": values[ns].encode()}

    # a namespace that stops matching loses its ManagedSecret
    await cluster.label_namespace(a, {"fanout": "off"})
    assert await gone(cluster, a)
    await wait_cms(cluster, name, selected=2, ready=2)
    # a new matching namespace gets one
    c = await spaces(4, fanout=tag)
    values[c] = tenant_value(env, leaks, c)
    await wait_cms(cluster, name, selected=3, ready=3)
    assert await cluster.secret_data(c, MS) == {"password": values[c].encode()}

    # a spec change reaches every copy
    await cluster.patch(
        "ClusterManagedSecret",
        name,
        {"spec": {"template": {"refresh": {"interval": "2h"}, "target": {"name": "app-db-secret"}}}},
    )

    async def propagated() -> bool:
        for ns in (b, listed, c):
            ms = await cluster.get("ManagedSecret", MS, ns)
            if ms is None or ms["spec"].get("refresh", {}).get("interval") != "2h":
                return False
            if await cluster.secret_data(ns, "app-db-secret") != {"password": values[ns].encode()}:
                return False
        return True

    await wait_for(propagated, timeout=60, what="the new template in every namespace")
    status = await wait_cms(cluster, name, selected=3, ready=3)
    cms = await cluster.get("ClusterManagedSecret", name)
    assert cms is not None and status["observedGeneration"] == cms["metadata"]["generation"] == 2

    # deleting the ClusterManagedSecret removes its ManagedSecrets
    await cluster.delete("ClusterManagedSecret", name)
    for ns in (b, listed, c):
        assert await gone(cluster, ns)


async def test_an_unchanged_pass_writes_nothing(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    spaces: Callable[..., Any],
    leaks: LeakRegistry,
    cleanup: list[tuple[str, str]],
) -> None:
    tag = secrets.token_hex(4)
    targets = [await spaces(i, fanout=tag) for i in (1, 2)]
    for ns in targets:
        tenant_value(env, leaks, ns)
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        conditions=[{"namespaceSelector": {"matchLabels": {"fanout": tag}}}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    cleanup.append(("ClusterSecretStore", store))
    name = f"cms-{tag}"
    cleanup.append(("ClusterManagedSecret", name))
    await cluster.apply(cms_manifest(name, store, namespaceSelector={"matchLabels": {"fanout": tag}}))
    await wait_cms(cluster, name, selected=2, ready=2)
    labels = f'clustermanagedsecret="{name}",result="unchanged"'
    # once settled, an unrelated namespace change makes a pass that writes nothing
    await wait_for(
        lambda: _async(metric(env.operator, "rotor_clustermanagedsecret_passes_total", labels) > 0),
        timeout=60,
        what="a first unchanged pass",
    )
    before = {ns: await cluster.get("ManagedSecret", MS, ns) for ns in targets}
    cms_before = await cluster.get("ClusterManagedSecret", name)
    passes = metric(env.operator, "rotor_clustermanagedsecret_passes_total", labels)
    await cluster.label_namespace(targets[0], {"unrelated": "x"})
    await wait_for(
        lambda: _async(metric(env.operator, "rotor_clustermanagedsecret_passes_total", labels) > passes),
        timeout=60,
        what="an unchanged pass after the namespace change",
    )
    for ns in targets:
        after = await cluster.get("ManagedSecret", MS, ns)
        assert after is not None and before[ns] is not None
        assert after["metadata"]["resourceVersion"] == before[ns]["metadata"]["resourceVersion"], ns
    cms_after = await cluster.get("ClusterManagedSecret", name)
    assert cms_after is not None and cms_before is not None
    assert cms_after["metadata"]["resourceVersion"] == cms_before["metadata"]["resourceVersion"]


async def _async(value: bool) -> bool:
    return value


# ---------------------------------------------------------------------------------------------- conflicts
async def test_a_managed_secret_it_did_not_generate_is_never_overwritten(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    spaces: Callable[..., Any],
    leaks: LeakRegistry,
    cleanup: list[tuple[str, str]],
) -> None:
    tag = secrets.token_hex(4)
    mine, taken = await spaces(1, fanout=tag), await spaces(2, fanout=tag)
    for ns in (mine, taken):
        tenant_value(env, leaks, ns)
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        conditions=[{"namespaceSelector": {"matchLabels": {"fanout": tag}}}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    cleanup.append(("ClusterSecretStore", store))
    # a tenant's own ManagedSecret, of the name the fan-out wants
    theirs = ms_manifest(
        MS, store, "ClusterSecretStore", dataFrom=[{"extract": {"key": f"tenants/{taken}/db"}}]
    )
    theirs["spec"]["target"] = {"name": "their-secret"}
    await cluster.apply(theirs, taken)
    name = f"cms-{tag}"
    cleanup.append(("ClusterManagedSecret", name))
    await cluster.apply(cms_manifest(name, store, namespaceSelector={"matchLabels": {"fanout": tag}}))
    status = await wait_cms(cluster, name, selected=2, ready=1)

    async def conflict() -> dict[str, Any] | None:
        failed = (await cms_status(cluster, name)).get("failedNamespaces") or []
        return next((f for f in failed if f["namespace"] == taken), None)

    entry = await wait_for(conflict, timeout=60, what="NameConflict listed")
    assert entry["reason"] == "NameConflict" and MS in entry["message"]
    status = await cms_status(cluster, name)
    ready = ready_condition(status)
    assert (ready["status"], ready["reason"]) == ("False", "NamespacesFailed")
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    obj = await cluster.get("ManagedSecret", MS, taken)
    assert obj is not None
    assert CLUSTER_MANAGED_BY_LABEL not in (obj["metadata"].get("labels") or {})
    assert not obj["metadata"].get("ownerReferences")
    assert obj["spec"]["target"]["name"] == "their-secret"
    # once the tenant's object goes, the fan-out takes the name
    await cluster.delete("ManagedSecret", MS, taken)
    await wait_cms(cluster, name, selected=2, ready=2)
    obj = await cluster.get("ManagedSecret", MS, taken)
    assert obj is not None and obj["metadata"]["labels"][CLUSTER_MANAGED_BY_LABEL] == name


# ---------------------------------------------------------------------------------------------- tenancy
async def _forbidden(cluster: Cluster, name: str, ns: str) -> dict[str, Any]:
    cond = await cluster.wait_condition(
        "ManagedSecret", MS, ns, status="False", reason="Forbidden", timeout=60
    )

    async def listed() -> dict[str, Any] | None:
        failed = (await cms_status(cluster, name)).get("failedNamespaces") or []
        return next((f for f in failed if f["namespace"] == ns and f["reason"] == "Forbidden"), None)

    await wait_for(listed, timeout=60, what=f"{ns} Forbidden in the CMS status")
    return cond


async def test_store_conditions_refuse_a_copy_in_an_excluded_namespace(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    spaces: Callable[..., Any],
    leaks: LeakRegistry,
    cleanup: list[tuple[str, str]],
) -> None:
    tag = secrets.token_hex(4)
    allowed, excluded = await spaces(1, fanout=tag), await spaces(2, fanout=tag)
    values = {ns: tenant_value(env, leaks, ns) for ns in (allowed, excluded)}
    # the store admits only ``allowed``; the CMS selects both
    store = await root_cluster_store(
        cluster, env, namespace, conditions=[{"namespaces": [allowed]}], allowedKeys=["tenants/{namespace}/*"]
    )
    cleanup.append(("ClusterSecretStore", store))
    name = f"cms-{tag}"
    cleanup.append(("ClusterManagedSecret", name))
    await cluster.apply(cms_manifest(name, store, namespaceSelector={"matchLabels": {"fanout": tag}}))
    cond = await _forbidden(cluster, name, excluded)
    assert values[excluded] not in cond["message"]
    await wait_cms(cluster, name, selected=2, ready=1)
    assert await cluster.secret(excluded, MS) is None
    assert audit(env.operator, excluded, MS) == [], "a namespace the store's conditions exclude was read for"
    assert audit(env.operator, allowed, MS), "the control: the admitted namespace was read"
    status = await cms_status(cluster, name)
    assert ready_condition(status)["reason"] == "NamespacesFailed"


async def test_allowed_keys_refuse_a_namespace_expansion(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    spaces: Callable[..., Any],
    leaks: LeakRegistry,
    cleanup: list[tuple[str, str]],
) -> None:
    tag = secrets.token_hex(4)
    target = await spaces(1, fanout=tag)
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"tenants/{target}-shared/db", {"password": value})
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        conditions=[{"namespaceSelector": {"matchLabels": {"fanout": tag}}}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    cleanup.append(("ClusterSecretStore", store))
    name = f"cms-{tag}"
    cleanup.append(("ClusterManagedSecret", name))
    # tenants/<ns>-shared/db expands fine, and lies outside tenants/<ns>/*
    template = {
        "storeRef": {"name": store, "kind": "ClusterSecretStore"},
        "dataFrom": [{"extract": {"key": "tenants/{namespace}-shared/db"}}],
    }
    await cluster.apply(
        cms_manifest(name, store, namespaceSelector={"matchLabels": {"fanout": tag}}, template=template)
    )
    cond = await _forbidden(cluster, name, target)
    assert "allowedKeys" in cond["message"] and value not in cond["message"]
    assert await cluster.secret(target, MS) is None
    assert audit(env.operator, target, MS) == [], "a key outside allowedKeys was read"
    status = await wait_cms(cluster, name, selected=1, ready=0)
    assert status["namespaces"]["failed"] == 1


async def test_invalid_spec_is_refused_by_the_crd(
    kubectl_run: Callable[..., Any],
) -> None:
    bad = cms_manifest("cms-invalid-" + secrets.token_hex(3), "x")  # neither selector nor list
    result = kubectl_run("apply", "-f", "-", input_=yaml.safe_dump(bad))
    assert result.returncode != 0 and "namespaceSelector, namespaces or both" in result.stderr, result.stderr
    bad = cms_manifest("cms-invalid-" + secrets.token_hex(3), "x", namespaces=["a"])
    bad["spec"]["template"]["storeRef"] = {"name": "x"}
    result = kubectl_run("apply", "-f", "-", input_=yaml.safe_dump(bad))
    assert result.returncode != 0 and "must be ClusterSecretStore" in result.stderr, result.stderr
