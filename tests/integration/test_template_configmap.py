"""Templates from a ConfigMap (``template.from.configMap``), against the real apiserver and Vault:
rendered beside inline template data; an edit of the ConfigMap re-renders every ManagedSecret
that uses it (no force-sync: Rotor watches it); a template that fails to render is TemplateError,
a missing key or ConfigMap TemplateMissing, each with the last good Secret kept; a ConfigMap that
appears later heals the ManagedSecret; the apiserver refuses a key rendered twice."""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import quote

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store, assert_unchanged, data_item, ms_manifest
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")

DSN = "postgresql://{{ username }}:{{ password | urlencode }}@db:5432/app"


async def _put_config_map(cluster: Cluster, namespace: str, data: dict[str, str]) -> None:
    body = {"metadata": {"name": "db-template"}, "data": data}
    try:
        await cluster.core.create_namespaced_config_map(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await cluster.core.replace_namespaced_config_map("db-template", namespace, body)


def _spec(namespace: str, **config_map: str) -> dict[str, Any]:
    return {
        "data": [
            data_item("username", f"{namespace}/db", "username"),
            data_item("password", f"{namespace}/db", "password"),
        ],
        "template": {
            "data": {"HOST": "db:5432"},
            "from": {"configMap": {"name": "db-template", "key": "dsn", **config_map}},
        },
    }


async def _rendered(cluster: Cluster, namespace: str, name: str, key: str, wanted: str) -> None:
    async def probe() -> bool:
        data = await cluster.secret_data(namespace, name)
        return data is not None and data.get(key) == wanted.encode()

    await wait_for(probe, timeout=30, what=f"{namespace}/{name} {key} rendered")


async def _reason(cluster: Cluster, namespace: str, name: str, reason: str, text: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        cond = await cluster.condition("ManagedSecret", name, namespace, "Ready")
        if cond and cond["status"] == "False" and cond["reason"] == reason and text in cond["message"]:
            return cond
        return None

    return await wait_for(probe, timeout=30, what=f"{namespace}/{name} {reason} ({text})")


async def test_shared_template_edit_rerenders_and_bad_input_keeps_the_secret(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{namespace}/db", {"username": "app", "password": password})
    await apply_token_store(cluster, env, namespace)
    await _put_config_map(cluster, namespace, {"dsn": DSN})
    await cluster.apply(ms_manifest("one", **_spec(namespace, secretKey="DATABASE_URL")), namespace)
    await cluster.apply(ms_manifest("two", **_spec(namespace)), namespace)
    await cluster.ready("one", namespace)
    await cluster.ready("two", namespace)
    one = await cluster.secret_data(namespace, "one")
    assert one is not None and set(one) == {"username", "password", "HOST", "DATABASE_URL"}
    assert one["HOST"] == b"db:5432"
    url = f"postgresql://app:{quote(password, safe='')}@db:5432/app"
    assert one["DATABASE_URL"] == url.encode()
    two = await cluster.secret_data(namespace, "two")
    assert two is not None and two["dsn"] == url.encode() and "DATABASE_URL" not in two

    # the ConfigMap is edited: both ManagedSecrets render it again, with no force-sync
    edited = DSN.replace("@db:5432/app", "@db:5432/app?sslmode=require")
    await _put_config_map(cluster, namespace, {"dsn": edited})
    await _rendered(cluster, namespace, "one", "DATABASE_URL", url + "?sslmode=require")
    await _rendered(cluster, namespace, "two", "dsn", url + "?sslmode=require")
    before = {name: await cluster.secret(namespace, name) for name in ("one", "two")}

    # a template that does not render: the existing TemplateError, the Secrets kept
    await _put_config_map(cluster, namespace, {"dsn": "{{ username }"})
    for name in ("one", "two"):
        cond = await _reason(cluster, namespace, name, "TemplateError", "")
        assert password not in cond["message"]
        await assert_unchanged(cluster, namespace, name, before[name])

    # the key is gone: TemplateMissing naming it and the keys there are
    await _put_config_map(cluster, namespace, {"other": "x"})
    cond = await _reason(cluster, namespace, "one", "TemplateMissing", "no key 'dsn'")
    assert "'other'" in cond["message"] and "'db-template'" in cond["message"]
    await assert_unchanged(cluster, namespace, "one", before["one"])

    # the ConfigMap is deleted: TemplateMissing, the Secrets kept
    await cluster.core.delete_namespaced_config_map("db-template", namespace)
    for name in ("one", "two"):
        await _reason(cluster, namespace, name, "TemplateMissing", "does not exist")
        await assert_unchanged(cluster, namespace, name, before[name])
    stalled = await cluster.condition("ManagedSecret", "one", namespace, "Stalled")
    assert stalled is not None and stalled["status"] == "False", "transient at first (created later)"

    # created again: both heal by themselves (the watch sees it appear)
    await _put_config_map(cluster, namespace, {"dsn": DSN})
    await cluster.wait_condition(
        "ManagedSecret", "one", namespace, status="True", reason="Synced", timeout=30
    )
    await _rendered(cluster, namespace, "one", "DATABASE_URL", url)
    await _rendered(cluster, namespace, "two", "dsn", url)


async def test_a_configmap_created_after_the_managed_secret(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{namespace}/db", {"username": "app", "password": password})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(ms_manifest("late", **_spec(namespace)), namespace)
    cond = await _reason(cluster, namespace, "late", "TemplateMissing", "does not exist")
    assert "'db-template'" in cond["message"] and password not in cond["message"]
    assert await cluster.secret(namespace, "late") is None, "nothing is written without the template"
    await _put_config_map(cluster, namespace, {"dsn": "{{ username }}@db"})
    await cluster.ready("late", namespace)
    data = await cluster.secret_data(namespace, "late")
    assert data is not None and data["dsn"] == b"app@db"
    secret = await cluster.secret(namespace, "late")
    assert secret is not None and base64.b64decode(secret["data"]["HOST"]) == b"db:5432"


async def test_the_apiserver_refuses_a_key_rendered_twice(cluster: Cluster, namespace: str) -> None:
    spec = _spec(namespace, secretKey="HOST")
    with pytest.raises(ApiException) as err:
        await cluster.apply(ms_manifest("twice", **spec), namespace)
    assert err.value.status == 422
    assert "template.from renders a key that template.data renders too" in str(err.value.body)
    spec = _spec(namespace)
    spec["template"] = {}
    with pytest.raises(ApiException) as err:
        await cluster.apply(ms_manifest("twice", **spec), namespace)
    assert "template sets data, from or both" in str(err.value.body)
