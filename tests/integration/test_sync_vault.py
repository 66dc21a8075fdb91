"""ManagedSecrets over a real Vault dev server: KV v1 and v2, versions, extract and find, decoding,
every validate format, templates, the written Secret's metadata, refresh policies and every Vault
auth method."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import urllib.parse
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support.cluster import Cluster, wait_for
from support.objects import (
    API,
    apply_token_store,
    approle_store,
    audit,
    data_item,
    metric,
    ms_manifest,
    private_pem,
    reader_policy,
    self_signed,
    vault_store,
)
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")


# --------------------------------------------------------------------------- helpers


def _self_signed(key: Any) -> bytes:
    """A certificate for web.example, valid for 30 days."""
    now = dt.datetime.now(dt.UTC)
    return self_signed(key, "web.example", now - dt.timedelta(minutes=5), now + dt.timedelta(days=30))


async def _data_is(
    cluster: Cluster, namespace: str, name: str, want: dict[str, bytes]
) -> dict[str, bytes] | None:
    data = await cluster.secret_data(namespace, name)
    return data if data == want else None


# --------------------------------------------------------------------------- KV engines and versions


async def test_kv2_property_and_version_pin(cluster: Cluster, env, namespace: str, leaks) -> None:
    first, second = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
    leaks.add(first, second)
    key = f"{namespace}/db"
    kv2_write(env, key, {"username": "app", "password": first})
    kv2_write(env, key, {"username": "app", "password": second})
    await apply_token_store(cluster, env, namespace)
    store_ready = await cluster.wait_condition(
        "SecretStore", "vault", namespace, status="True", reason="Valid"
    )
    assert store_ready["observedGeneration"] == 1
    store = await cluster.get("SecretStore", "vault", namespace)
    assert store is not None and store["status"]["capabilities"] == "ReadWrite"

    await cluster.apply(
        ms_manifest(
            "db",
            data=[
                data_item("password", key, "password"),
                data_item("old-password", key, "password", version="1"),
                data_item("username", key, "username"),
            ],
        ),
        namespace,
    )
    ms = await cluster.ready("db", namespace)
    assert await cluster.secret_data(namespace, "db") == {
        "password": second.encode(),
        "old-password": first.encode(),
        "username": b"app",
    }
    assert ms["status"]["sourceVersions"]["password"] == "2"
    assert ms["status"]["sourceVersions"]["old-password"] == "1"
    assert ms["status"]["secretName"] == "db"
    assert ms["status"]["observedGeneration"] == ms["metadata"]["generation"]
    ready = next(c for c in ms["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Synced" and ready["observedGeneration"] == ms["metadata"]["generation"]
    status_text = json.dumps(ms["status"])
    assert first not in status_text and second not in status_text
    assert "Synced" in await cluster.event_reasons(namespace, "db")


async def test_kv1_mount(cluster: Cluster, env, namespace: str, leaks) -> None:
    token = secrets.token_hex(20)
    leaks.add(token)
    env.vault_client().secrets.kv.v1.create_or_update_secret(
        path=f"{namespace}/api", secret={"token": token, "url": "https://api.example"}, mount_point="kv"
    )
    await apply_token_store(cluster, env, namespace, "kv1", mount="kv", version=1)
    await cluster.apply(
        ms_manifest(
            "api",
            "kv1",
            data=[data_item("api-token", f"{namespace}/api", "token")],
            dataFrom=[{"extract": {"key": f"{namespace}/api"}}],
        ),
        namespace,
    )
    await cluster.ready("api", namespace)
    assert await cluster.secret_data(namespace, "api") == {
        "api-token": token.encode(),
        "token": token.encode(),
        "url": b"https://api.example",
    }


async def test_data_from_extract_and_find(cluster: Cluster, env, namespace: str, leaks) -> None:
    pw, a, b, other = (secrets.token_urlsafe(16) for _ in range(4))
    leaks.add(pw, a, b, other)
    kv2_write(env, f"{namespace}/db", {"username": "app", "password": pw})
    kv2_write(env, f"{namespace}/found/db-a", {"user": "a", "pass": a})
    kv2_write(env, f"{namespace}/found/db-b", {"user": "b", "pass": b})
    kv2_write(env, f"{namespace}/found/cache", {"user": "c", "pass": other})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "many",
            dataFrom=[
                {"extract": {"key": f"{namespace}/db"}},
                {"find": {"path": f"{namespace}/found/", "name": {"regexp": "^db-.*"}}},
            ],
        ),
        namespace,
    )
    await cluster.ready("many", namespace)
    data = await cluster.secret_data(namespace, "many")
    assert data is not None
    assert sorted(data) == ["db-a", "db-b", "password", "username"]
    assert data["username"] == b"app" and data["password"] == pw.encode()
    # a multi-property secret found becomes its JSON document
    assert json.loads(data["db-a"]) == {"user": "a", "pass": a}
    assert json.loads(data["db-b"]) == {"user": "b", "pass": b}
    # find without a name filter takes everything under the path
    await cluster.apply(ms_manifest("all", dataFrom=[{"find": {"path": f"{namespace}/found"}}]), namespace)
    await cluster.ready("all", namespace)
    data = await cluster.secret_data(namespace, "all")
    assert data is not None and sorted(data) == ["cache", "db-a", "db-b"]
    assert json.loads(data["cache"]) == {"user": "c", "pass": other}


async def test_single_property_secret_gives_its_value(cluster: Cluster, env, namespace: str, leaks) -> None:
    a, b = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    leaks.add(a, b)
    kv2_write(env, f"{namespace}/found/db-a", {"value": a})
    kv2_write(env, f"{namespace}/found/db-b", {"password": b})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "one",
            data=[data_item("whole", f"{namespace}/found/db-b")],
            dataFrom=[{"find": {"path": f"{namespace}/found/"}}],
        ),
        namespace,
    )
    await cluster.ready("one", namespace)
    assert await cluster.secret_data(namespace, "one") == {
        "db-a": a.encode(),
        "db-b": b.encode(),
        "whole": b.encode(),
    }


async def test_decode_base64_and_auto(cluster: Cluster, env, namespace: str, leaks) -> None:
    raw = os.urandom(32)
    encoded = base64.b64encode(raw).decode()
    plain = "plain text, not base64!"
    leaks.add(encoded)
    kv2_write(env, f"{namespace}/enc", {"b64": encoded, "plain": plain})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "enc",
            data=[
                data_item("explicit", f"{namespace}/enc", "b64", decode="Base64"),
                data_item("auto-decoded", f"{namespace}/enc", "b64", decode="Auto"),
                data_item("auto-kept", f"{namespace}/enc", "plain", decode="Auto"),
                data_item("as-is", f"{namespace}/enc", "b64"),
            ],
        ),
        namespace,
    )
    await cluster.ready("enc", namespace)
    assert await cluster.secret_data(namespace, "enc") == {
        "explicit": raw,
        "auto-decoded": raw,
        "auto-kept": plain.encode(),
        "as-is": encoded.encode(),
    }


# --------------------------------------------------------------------------- validation


async def test_every_validate_format_accepts_good_values(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    values = {
        "password": secrets.token_urlsafe(32),
        "username": "app",
        "aes": base64.b64encode(os.urandom(32)).decode(),
        "salt": secrets.token_hex(16),
        "settings": json.dumps({"pool": 5, "tls": True}),
        "endpoint": "https://api.example.com:8443/v1?x=1",
        "rsa-key": private_pem(rsa_key).decode(),
        "ec-key": private_pem(ec_key).decode(),
        "rsa-pub": rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "cert": _self_signed(ec_key).decode(),
        "fernet": Fernet.generate_key().decode(),
        "jwt": secrets.token_urlsafe(48),
    }
    for k in ("password", "aes", "salt", "rsa-key", "ec-key", "fernet", "jwt"):
        leaks.add(values[k])
    key = f"{namespace}/all"
    kv2_write(env, key, values)
    await apply_token_store(cluster, env, namespace)
    rules = {
        "password": {"format": "min-length", "minLength": 24},
        "username": {"format": "regex", "pattern": "[a-z]+"},
        "aes": {"format": "base64", "bytes": 32},
        "salt": {"format": "hex", "bytes": 16},
        "settings": {"format": "json"},
        "endpoint": {"format": "url"},
        "rsa-key": {"format": "pem-private-key"},
        "ec-key": {"format": "pem-private-key"},
        "rsa-pub": {"format": "pem-public-key"},
        "cert": {"format": "pem-certificate", "notExpiredWithin": "72h"},
        "fernet": {"format": "fernet-key"},
        "jwt": {"format": "jwt-hs256-key"},
    }
    data = [data_item(k, key, k, validate=rule) for k, rule in rules.items()]
    data.append(
        data_item(
            "cert-checked", key, "cert", validate={"format": "certificate-matches-key", "key": "ec-key"}
        )
    )
    await cluster.apply(ms_manifest("all", data=data), namespace)
    await cluster.ready("all", namespace)
    got = await cluster.secret_data(namespace, "all")
    assert got == {**{k: v.encode() for k, v in values.items()}, "cert-checked": values["cert"].encode()}


# --------------------------------------------------------------------------- templates and the target


async def _database_url(
    cluster: Cluster, env, namespace: str, leaks, password: str
) -> tuple[dict[str, bytes], urllib.parse.SplitResult]:
    """``password`` at the source, templated (urlencoded) into a DATABASE_URL; returns the
    Secret's data and the URL's parts."""
    leaks.add(password, urllib.parse.quote(password, safe=""))
    kv2_write(env, f"{namespace}/db", {"username": "app", "password": password})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "db",
            dataFrom=[{"extract": {"key": f"{namespace}/db"}}],
            template={
                "data": {"DATABASE_URL": "postgresql://{{ username }}:{{ password | urlencode }}@db:5432/app"}
            },
        ),
        namespace,
    )
    await cluster.ready("db", namespace)
    data = await cluster.secret_data(namespace, "db")
    assert data is not None
    url = data["DATABASE_URL"].decode()
    leaks.add(url)
    return data, urllib.parse.urlsplit(url)


async def test_template_database_url(cluster: Cluster, env, namespace: str, leaks) -> None:
    password = "p@ss:w?rd#%+ " + secrets.token_hex(8)
    data, parts = await _database_url(cluster, env, namespace, leaks, password)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("postgresql", "db", 5432, "/app")
    assert parts.username == "app"
    assert urllib.parse.unquote(parts.password or "") == password
    assert data["password"] == password.encode() and data["username"] == b"app"


async def test_template_urlencode_escapes_slash(cluster: Cluster, env, namespace: str, leaks) -> None:
    password = "ab/cd+ef==" + secrets.token_hex(8)
    _, parts = await _database_url(cluster, env, namespace, leaks, password)
    intact = parts.hostname == "db" and parts.path == "/app"
    assert intact, "the password broke out of the URL's userinfo"
    assert urllib.parse.unquote(parts.password or "") == password


async def test_tls_target_with_labels_annotations_and_owner(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem, cert_pem = private_pem(key).decode(), _self_signed(key).decode()
    leaks.add(key_pem)
    kv2_write(env, f"{namespace}/web", {"key": key_pem, "certificate": cert_pem})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "web",
            target={
                "name": "web-tls",
                "type": "kubernetes.io/tls",
                "labels": {"app.kubernetes.io/name": "web", "tier": "edge"},
                "annotations": {"example.com/owner": "team-web"},
            },
            data=[
                data_item("tls.key", f"{namespace}/web", "key", validate={"format": "pem-private-key"}),
                data_item(
                    "tls.crt",
                    f"{namespace}/web",
                    "certificate",
                    validate={"format": "certificate-matches-key", "key": "tls.key"},
                ),
            ],
        ),
        namespace,
    )
    ms = await cluster.ready("web", namespace)
    secret = await cluster.secret(namespace, "web-tls")
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    assert await cluster.secret_data(namespace, "web-tls") == {
        "tls.key": key_pem.encode(),
        "tls.crt": cert_pem.encode(),
    }
    meta = secret["metadata"]
    assert meta["labels"]["rotor.dev/managed-by"] == "web"
    assert meta["labels"]["app.kubernetes.io/name"] == "web" and meta["labels"]["tier"] == "edge"
    assert meta["annotations"]["example.com/owner"] == "team-web"
    assert meta["annotations"]["rotor.dev/data-hash"] == ms["status"]["dataHash"]
    assert ms["status"]["dataHash"].startswith("hmac-sha256:")
    assert ms["status"]["secretName"] == "web-tls"
    refs = meta["ownerReferences"]
    assert len(refs) == 1
    assert (refs[0]["kind"], refs[0]["name"], refs[0]["uid"]) == (
        "ManagedSecret",
        "web",
        ms["metadata"]["uid"],
    )
    assert refs[0]["apiVersion"] == API and refs[0].get("controller") is True
    # the certificate's expiry is reported
    assert (ms["status"].get("expiry") or {}).get("source") == "Certificate"


# --------------------------------------------------------------------------- refresh


async def _refreshed_app(cluster: Cluster, env, namespace: str, value: str, interval: str) -> None:
    """``value`` at ``{namespace}/app`` and a Ready ManagedSecret "app" refreshing it every ``interval``."""
    kv2_write(env, f"{namespace}/app", {"value": value})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest(
            "app", refresh={"interval": interval}, data=[data_item("value", f"{namespace}/app", "value")]
        ),
        namespace,
    )
    await cluster.ready("app", namespace)


async def test_force_sync_reads_the_source_now(cluster: Cluster, env, namespace: str, leaks) -> None:
    old, new = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
    leaks.add(old, new)
    await _refreshed_app(cluster, env, namespace, old, "1h")
    assert await cluster.secret_data(namespace, "app") == {"value": old.encode()}
    kv2_write(env, f"{namespace}/app", {"value": new})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    await wait_for(
        lambda: _data_is(cluster, namespace, "app", {"value": new.encode()}),
        timeout=15,
        what="new value after force-sync",
    )
    ms = await cluster.ready("app", namespace)
    assert ms["status"]["sourceVersions"]["value"] == "2"
    # a second force-sync with a new value works as well
    newer = secrets.token_urlsafe(20)
    leaks.add(newer)
    kv2_write(env, f"{namespace}/app", {"value": newer})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "2"}}}, namespace
    )
    await wait_for(
        lambda: _data_is(cluster, namespace, "app", {"value": newer.encode()}),
        timeout=15,
        what="newer value after the second force-sync",
    )


async def test_periodic_refresh_picks_up_changes(cluster: Cluster, env, namespace: str, leaks) -> None:
    old, new = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
    leaks.add(old, new)
    await _refreshed_app(cluster, env, namespace, old, "2s")
    kv2_write(env, f"{namespace}/app", {"value": new})
    await wait_for(
        lambda: _data_is(cluster, namespace, "app", {"value": new.encode()}),
        timeout=20,
        what="new value after the refresh interval",
    )
    ms = await cluster.ready("app", namespace)
    assert ms["status"]["nextRefreshTime"]


async def test_unchanged_refresh_writes_nothing(cluster: Cluster, env, namespace: str, leaks) -> None:
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    await _refreshed_app(cluster, env, namespace, value, "1s")
    # let the first refresh after the initial sync pass, then take the baseline
    reads0 = len(audit(env.operator, namespace, "app"))
    await wait_for(
        lambda: _async(len(audit(env.operator, namespace, "app")) > reads0),
        timeout=20,
        what="a first refresh",
    )
    ms = await cluster.get("ManagedSecret", "app", namespace)
    secret = await cluster.secret(namespace, "app")
    assert ms is not None and secret is not None
    ms_rv, secret_rv = ms["metadata"]["resourceVersion"], secret["metadata"]["resourceVersion"]
    unchanged0 = metric(env.operator, "rotor_sync_total", 'result="unchanged"')
    reads1 = len(audit(env.operator, namespace, "app"))

    async def three_more() -> bool:
        return (
            metric(env.operator, "rotor_sync_total", 'result="unchanged"') >= unchanged0 + 3
            and len(audit(env.operator, namespace, "app")) >= reads1 + 3
        )

    await wait_for(three_more, timeout=30, interval=0.5, what="three unchanged refreshes")
    ms = await cluster.get("ManagedSecret", "app", namespace)
    secret = await cluster.secret(namespace, "app")
    assert ms is not None and secret is not None
    assert secret["metadata"]["resourceVersion"] == secret_rv, "an unchanged refresh wrote the Secret"
    assert ms["metadata"]["resourceVersion"] == ms_rv, "an unchanged refresh wrote the ManagedSecret"
    assert (await cluster.event_reasons(namespace, "app")).count("Synced") == 1


async def _async(value: Any) -> Any:
    return value


async def _control_and_subject(cluster: Cluster, env, namespace: str, leaks, policy: str) -> tuple[str, str]:
    """A Periodic 1s control and a subject under ``policy`` on the same path; the source then
    changes, and the control proves the change was visible and refreshes have happened."""
    old, new = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
    leaks.add(old, new)
    kv2_write(env, f"{namespace}/app", {"value": old})
    await apply_token_store(cluster, env, namespace)
    item = [data_item("value", f"{namespace}/app", "value")]
    await cluster.apply(ms_manifest("control", refresh={"interval": "1s"}, data=item), namespace)
    await cluster.apply(
        ms_manifest("subject", refresh={"interval": "1s", "policy": policy}, data=item), namespace
    )
    await cluster.ready("control", namespace)
    subject = await cluster.ready("subject", namespace)
    assert subject["status"].get("nextRefreshTime") is None
    reads = len(audit(env.operator, namespace, "subject"))
    kv2_write(env, f"{namespace}/app", {"value": new})
    await wait_for(
        lambda: _data_is(cluster, namespace, "control", {"value": new.encode()}),
        timeout=20,
        what="the control picking up the change",
    )
    # and a few more control refreshes after that, to be sure time has passed for the subject too
    control_reads = len(audit(env.operator, namespace, "control"))
    await wait_for(
        lambda: _async(len(audit(env.operator, namespace, "control")) >= control_reads + 2),
        timeout=20,
        what="more control refreshes",
    )
    assert await cluster.secret_data(namespace, "subject") == {"value": old.encode()}
    assert len(audit(env.operator, namespace, "subject")) == reads, (
        f"{policy} read the source on the interval"
    )
    return old, new


async def test_refresh_on_change_only_on_spec_change(cluster: Cluster, env, namespace: str, leaks) -> None:
    _, new = await _control_and_subject(cluster, env, namespace, leaks, "OnChange")
    await cluster.patch(
        "ManagedSecret", "subject", {"spec": {"target": {"labels": {"touched": "yes"}}}}, namespace
    )
    await wait_for(
        lambda: _data_is(cluster, namespace, "subject", {"value": new.encode()}),
        timeout=20,
        what="OnChange refreshing after a spec change",
    )


async def test_refresh_once(cluster: Cluster, env, namespace: str, leaks) -> None:
    await _control_and_subject(cluster, env, namespace, leaks, "Once")
    ms = await cluster.ready("subject", namespace)
    assert ms["status"]["observedGeneration"] == ms["metadata"]["generation"]


# --------------------------------------------------------------------------- auth methods


async def test_approle_auth(cluster: Cluster, env, namespace: str, leaks) -> None:
    await approle_store(cluster, env, namespace, leaks)
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"value": value})
    store = await cluster.get("SecretStore", "approle", namespace)
    # the reader policy grants no writes, but Vault judges writes per path, when a rotation writes
    assert store is not None and store["status"]["capabilities"] == "PerPath"
    await cluster.apply(
        ms_manifest("app", "approle", data=[data_item("value", f"{namespace}/app", "value")]), namespace
    )
    await cluster.ready("app", namespace)
    assert await cluster.secret_data(namespace, "app") == {"value": value.encode()}


def _kubernetes_role(env, namespace: str) -> str:
    """A Kubernetes auth role ``k8s-{namespace}`` (the reader policy) bound to the ServiceAccount
    "reader" of ``namespace``, audience "vault"; its name."""
    vault = env.vault_client()
    policy = reader_policy(env, namespace)
    role = f"k8s-{namespace}"
    vault.auth.kubernetes.create_role(
        role,
        bound_service_account_names=["reader"],
        bound_service_account_namespaces=[namespace],
        policies=[policy],
        ttl="1h",
        audience="vault",
    )
    return role


async def test_kubernetes_auth(cluster: Cluster, env, namespace: str, leaks) -> None:
    role = _kubernetes_role(env, namespace)
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"value": value})
    await cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}, namespace
    )
    await cluster.apply(
        vault_store(
            "k8s",
            env.vault_addr,
            {
                "kubernetes": {
                    "mount": "kubernetes",
                    "role": role,
                    "serviceAccountRef": {"name": "reader", "audiences": ["vault"]},
                }
            },
            kv=False,
        ),
        namespace,
    )
    await cluster.wait_condition("SecretStore", "k8s", namespace, status="True", reason="Valid")
    await cluster.apply(
        ms_manifest("app", "k8s", data=[data_item("value", f"{namespace}/app", "value")]), namespace
    )
    await cluster.ready("app", namespace)
    assert await cluster.secret_data(namespace, "app") == {"value": value.encode()}


async def test_kubernetes_auth_wrong_service_account(cluster: Cluster, env, namespace: str) -> None:
    """A ServiceAccount the Vault role is not bound to cannot log in: the store says so."""
    role = _kubernetes_role(env, namespace)
    await cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "intruder"}}, namespace
    )
    await cluster.apply(
        vault_store(
            "k8s",
            env.vault_addr,
            {"kubernetes": {"role": role, "serviceAccountRef": {"name": "intruder", "audiences": ["vault"]}}},
            kv=False,
        ),
        namespace,
    )
    cond = await cluster.wait_condition("SecretStore", "k8s", namespace, status="False")
    assert cond["reason"] == "AuthFailed", cond
    assert "intruder" in cond["message"] or "login" in cond["message"], cond


async def test_a_pinned_version_that_is_not_a_number_is_invalid_spec(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    """Vault KV v2 versions are numbers: "latest" is the spec's mistake (InvalidSpec, Stalled),
    not a backend failure, and the message names the ref."""
    value = secrets.token_urlsafe(16)
    leaks.add(value)
    kv2_write(env, f"{namespace}/pinned", {"value": value})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        ms_manifest("pinned", data=[data_item("value", f"{namespace}/pinned", "value", version="latest")]),
        namespace,
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "pinned", namespace, status="False", reason="InvalidSpec"
    )
    assert f"'{namespace}/pinned'" in cond["message"] and "'latest'" in cond["message"], cond
    assert value not in cond["message"]
    stalled = await cluster.condition("ManagedSecret", "pinned", namespace, "Stalled")
    assert stalled is not None and stalled["status"] == "True", stalled
