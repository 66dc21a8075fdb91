"""Rotation against a real Vault: every generator writes a valid value to the source and the Secret
gets exactly that value; KV v2 check-and-set keeps the path's other properties; KV v1 is a plain
write; ``rotor rotate`` and ``rotor rollback`` work on Vault; policies report what uses them."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store
from support.rotation import (
    condition,
    kv2_current,
    kv2_write,
    managed_secret,
    policy,
    request_rotation,
    run_rotor,
    vault_source,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --------------------------------------------------------------------------- checks per generator
def _password(values: dict[str, str]) -> None:
    pw = values["password"]
    assert len(pw) == 40
    assert sum(c in string.ascii_lowercase for c in pw) >= 2
    assert sum(c in string.ascii_uppercase for c in pw) >= 2
    assert sum(c in string.digits for c in pw) >= 3
    assert sum(c in "!#$%&()*+,-./:;<=>?@[]^_{|}~" for c in pw) >= 2
    assert not set(pw) & set("abcXYZ019!#\"'`\\")


def _bytes_of(decode: Callable[[str], bytes]) -> Callable[[dict[str, str]], None]:
    def check(values: dict[str, str]) -> None:
        assert len(decode(values["token"])) == 32

    return check


def _strict_b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _strict_b64url(text: str) -> bytes:
    assert re.fullmatch(r"[A-Za-z0-9_\-]+=*", text), "not base64url"
    return base64.urlsafe_b64decode(text)


def _api_key(values: dict[str, str]) -> None:
    assert re.fullmatch(r"sk_[A-Za-z0-9]{40}", values["token"])


def _key_pair(kind: type, check: Callable[[Any], None] | None = None) -> Callable[[dict[str, str]], None]:
    def verify(values: dict[str, str]) -> None:
        private = serialization.load_pem_private_key(values["signing"].encode(), password=None)
        public = serialization.load_pem_public_key(values["signing.pub"].encode())
        assert values["signing"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
        assert isinstance(private, kind)
        assert _spki(private.public_key()) == _spki(public)
        if check is not None:
            check(private)

    return verify


def _fernet(values: dict[str, str]) -> None:
    f = Fernet(values["token"].encode())
    assert f.decrypt(f.encrypt(b"probe")) == b"probe"


def _certificate(issuer_cn: str | None, names: list[str]) -> Callable[[dict[str, str]], None]:
    def verify(values: dict[str, str]) -> None:
        cert = x509.load_pem_x509_certificate(values["tls.crt"].encode())
        key = serialization.load_pem_private_key(values["tls.key"].encode(), password=None)
        assert _spki(cert.public_key()) == _spki(key.public_key())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(names) <= set(sans.get_values_for_type(x509.DNSName))
        assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)
        issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert issuer == (issuer_cn or subject)

    return verify


CASES: dict[str, tuple[dict[str, Any], list[str], Callable[[dict[str, str]], None]]] = {
    # name: (generator, rotated keys, check of the new values)
    "password": (
        {
            "password": {
                "length": 40,
                "lower": 2,
                "upper": 2,
                "digits": 3,
                "symbols": 2,
                "exclude": "abcXYZ019!#\"'`\\",
            }
        },
        ["password"],
        _password,
    ),
    "random-base64": (
        {"randomBytes": {"length": 32, "encoding": "base64"}},
        ["token"],
        _bytes_of(_strict_b64),
    ),
    "random-base64url": (
        {"randomBytes": {"length": 32, "encoding": "base64url"}},
        ["token"],
        _bytes_of(_strict_b64url),
    ),
    "random-hex": (
        {"randomBytes": {"length": 32, "encoding": "hex"}},
        ["token"],
        _bytes_of(binascii.unhexlify),
    ),
    "api-key": ({"apiKey": {"prefix": "sk_", "length": 40}}, ["token"], _api_key),
    "rsa": (
        {"rsaKeyPair": {"bits": 2048}},
        ["signing"],
        _key_pair(rsa.RSAPrivateKey, lambda k: _check(k.key_size == 2048)),
    ),
    "ec": (
        {"ecKeyPair": {"curve": "P-384"}},
        ["signing"],
        _key_pair(ec.EllipticCurvePrivateKey, lambda k: _check(k.curve.name == "secp384r1")),
    ),
    "ed25519": ({"ed25519KeyPair": {}}, ["signing"], _key_pair(ed25519.Ed25519PrivateKey)),
    "fernet": ({"fernetKey": {}}, ["token"], _fernet),
    "self-signed": (
        {
            "selfSignedCertificate": {
                "commonName": "web.example.test",
                "dnsNames": ["web.example.test", "www.example.test"],
                "duration": "720h",
                "keyAlgorithm": "ECDSA-P256",
            }
        },
        ["tls.crt"],
        _certificate(None, ["web.example.test", "www.example.test"]),
    ),
    "vault-pki": (
        {
            "vaultPKI": {
                "role": "web",
                "commonName": "app.example.test",
                "altNames": ["api.example.test"],
                "ttl": "24h",
            }
        },
        ["tls.crt"],
        _certificate("rotor-test-root", ["app.example.test", "api.example.test"]),
    ),
}


def _check(ok: bool) -> None:
    assert ok


def _pki_role(env: Any) -> str:
    client = env.vault_client()
    client.secrets.pki.create_or_update_role(
        "web",
        {
            "allowed_domains": "example.test",
            "allow_subdomains": True,
            "max_ttl": "72h",
            "key_type": "ec",
            "key_bits": 256,
        },
        mount_point="pki",
    )
    ca = client.secrets.pki.read_ca_certificate(mount_point="pki")
    return str(
        x509.load_pem_x509_certificate(ca.encode())
        .subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        .value
    )


@pytest.mark.parametrize("case", list(CASES))
async def test_generator_writes_source_then_secret(
    cluster: Cluster, env: Any, namespace: str, leaks: Any, case: str
) -> None:
    generator, keys, check = CASES[case]
    if case == "vault-pki":
        check = _certificate(_pki_role(env), ["app.example.test", "api.example.test"])
    path = f"{namespace}/generated"
    initial = {k: f"initial-{k}-{secrets.token_hex(8)}" for k in keys}
    if keys == ["signing"]:
        initial["signing.pub"] = "initial-public"
    if keys == ["tls.crt"]:
        initial["tls.key"] = "initial-key"
    leaks.add(*initial.values())
    base_version = kv2_write(env, path, {**initial, "other": "kept-as-is"})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(policy("policy", {"schedule": {"every": "720h"}, "generator": generator}), namespace)
    target = {"type": "kubernetes.io/tls"} if keys == ["tls.crt"] else {}
    await cluster.apply(managed_secret("gen", key=path, keys=keys, target=target), namespace)
    await cluster.ready("gen", namespace, timeout=60)

    request = await request_rotation(cluster, namespace, "gen")
    obj = await wait_rotated(cluster, namespace, "gen", request=request, timeout=60)

    version, source = kv2_current(env, path)
    leaks.add(*(str(v) for v in source.values()))
    assert version == base_version + 1, "exactly one new version at the source"
    assert source["other"] == "kept-as-is"
    written = [k for k in source if k != "other"]
    assert all(source[k] != initial.get(k) for k in written)
    check({k: str(v) for k, v in source.items()})
    data = await cluster.secret_data(namespace, "gen") or {}
    for key in written:
        assert data[key] == source[key].encode(), f"Secret key {key} differs from the source"
    assert not any(k.endswith("_previous") for k in data), "no grace period: no previous key"
    assert condition(obj, "Rotating")["reason"] == "Succeeded"
    if keys == ["tls.crt"]:
        cert = x509.load_pem_x509_certificate(source["tls.crt"].encode())
        expiry = obj["status"]["expiry"]
        assert expiry["source"] == "Certificate"
        assert expiry["notAfter"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- write-back semantics
async def test_kv1_rotation_is_a_plain_write(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    client = env.vault_client()
    path = f"{namespace}/kv1"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    client.secrets.kv.v1.create_or_update_secret(
        path=path, secret={"password": old, "user": "app"}, mount_point="kv"
    )
    await apply_token_store(cluster, env, namespace, mount="kv", version=1)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "1h"}), namespace)
    await cluster.apply(managed_secret("app", key=path), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request)
    source = client.secrets.kv.v1.read_secret(path=path, mount_point="kv")["data"]
    leaks.add(source["password"])
    assert source["password"] != old and len(source["password"]) == 32 and source["user"] == "app"
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == source["password"].encode()
    assert data["password_previous"] == old.encode()
    assert data["user"] == b"app"


async def test_rotate_cli_on_vault_and_data_key(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    """``rotor rotate`` on Vault, for a key read by spec.data with a property of its own name."""
    path = f"{namespace}/db"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    base = kv2_write(env, path, {"pw": old, "user": "app"})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(policy("policy", {"preset": "database-password"}), namespace)
    await cluster.apply(
        managed_secret(
            "db",
            keys=["password"],
            data=[
                {"secretKey": "password", "remoteRef": {"key": path, "property": "pw"}},
                {"secretKey": "username", "remoteRef": {"key": path, "property": "user"}},
            ],
        ),
        namespace,
    )
    await cluster.ready("db", namespace, timeout=60)

    done = await run_rotor(env, leaks, "rotate", "db", "-n", namespace, "--timeout", "90s")
    assert done.code == 0, done.lines
    assert done.lines[-1].startswith("✔ rotated db: "), done.lines
    version, source = kv2_current(env, path)
    leaks.add(source["pw"])
    assert version == base + 1 and source["pw"] != old and source["user"] == "app"
    assert f"(version {version})" in done.lines[-1]
    data = await cluster.secret_data(namespace, "db") or {}
    assert data["password"] == source["pw"].encode() and data["username"] == b"app"
    assert data["password_previous"] == old.encode()  # the preset's 24h grace period


async def test_rollback_on_vault(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    path = f"{namespace}/app"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    kv2_write(env, path, {"password": old, "user": "app"})
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "0"}), namespace)
    await cluster.apply(managed_secret("app", key=path), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request)
    rotated_version, rotated = kv2_current(env, path)
    leaks.add(rotated["password"])
    assert rotated["password"] != old

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert done.lines[-1].startswith("✔ rolled back "), done.lines
    assert any(line.startswith("requested sync") for line in done.lines)
    version, source = kv2_current(env, path)
    assert version == rotated_version + 1, "the previous value is restored as a new version"
    assert source == {"password": old, "user": "app"}
    assert f"version {version} now holds the value of version {rotated_version - 1}" in done.lines[-1]
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()

    missing = await run_rotor(env, leaks, "rollback", "nope", "-n", namespace)
    assert missing.code == 1 and "not found" in missing.err


async def test_rollback_refused_on_kv1(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    path = f"{namespace}/v1"
    env.vault_client().secrets.kv.v1.create_or_update_secret(
        path=path, secret={"password": "kv1-value-x"}, mount_point="kv"
    )
    await apply_token_store(cluster, env, namespace, mount="kv", version=1)
    await cluster.apply(managed_secret("app", key=path, policy_name=None), namespace)
    await cluster.ready("app", namespace, timeout=60)
    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace)
    assert done.code == 1 and "keeps no versions" in done.err, done.lines


# --------------------------------------------------------------------------- policy status
async def test_policy_status_counts_bound_secrets(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        policy("policy", {"preset": "api-key", "generator": {"apiKey": {"length": 24}}}), namespace
    )
    for name in ("a", "b"):
        kv2_write(env, f"{namespace}/{name}", {"token": f"value-{name}-{secrets.token_hex(6)}"})
        await cluster.apply(managed_secret(name, key=f"{namespace}/{name}", keys=["token"]), namespace)

    async def status(bound: int) -> dict[str, Any] | None:
        obj = await cluster.get("RotationPolicy", "policy", namespace)
        st = (obj or {}).get("status") or {}
        return st if st.get("boundManagedSecrets") == bound and st.get("earliestNextRotation") else None

    st = await wait_for(lambda: status(2), timeout=30, what="boundManagedSecrets 2")
    assert condition({"status": st}, "Ready")["reason"] == "Valid"
    objs = [await cluster.get("ManagedSecret", n, namespace) for n in ("a", "b")]
    earliest = min(o["status"]["rotation"]["nextRotationTime"] for o in objs if o)
    assert st["earliestNextRotation"] == earliest

    # rotating "a" moves its next rotation 90 days out: the earliest becomes b's
    request = await request_rotation(cluster, namespace, "a")
    await wait_rotated(cluster, namespace, "a", request=request)
    b = await cluster.get("ManagedSecret", "b", namespace)
    assert b is not None

    async def moved() -> dict[str, Any] | None:
        obj = await cluster.get("RotationPolicy", "policy", namespace)
        st = (obj or {}).get("status") or {}
        return st if st.get("earliestNextRotation") == b["status"]["rotation"]["nextRotationTime"] else None

    await wait_for(moved, timeout=30, what="earliestNextRotation to follow b")
    await cluster.delete("ManagedSecret", "b", namespace)
    await cluster.delete("ManagedSecret", "a", namespace)
    await wait_for(lambda: _bound_zero(cluster, namespace), timeout=30, what="boundManagedSecrets 0")


async def _bound_zero(cluster: Cluster, namespace: str) -> bool:
    obj = await cluster.get("RotationPolicy", "policy", namespace)
    st = (obj or {}).get("status") or {}
    return st.get("boundManagedSecrets") == 0 and st.get("earliestNextRotation") is None


async def test_rotation_with_a_least_privilege_policy(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    """A Vault policy granting create/update on exactly the rotated path (read elsewhere) rotates:
    write access is judged for that path, not for a probe path."""
    client = env.vault_client()
    name = f"lp-{namespace}"
    client.sys.create_or_update_policy(
        name=name,
        policy=f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/metadata/{namespace}/*" {{ capabilities = ["read", "list"] }}\n'
        f'path "secret/data/{namespace}/app" {{ capabilities = ["create", "update", "read"] }}\n',
    )
    token = client.auth.token.create(policies=[name], ttl="2h")["auth"]["client_token"]
    leaks.add(token)
    path, version, old = await vault_source(
        cluster, env, namespace, leaks, {"preset": "database-password"}, token=token
    )
    await cluster.apply(managed_secret("app", key=path), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request)
    new_version, data = kv2_current(env, path)
    leaks.add(data["password"])
    assert new_version == version + 1 and data["password"] != old and data["user"] == "app"

    async def synced() -> bool:
        secret = await cluster.secret_data(namespace, "app") or {}
        return secret.get("password") == data["password"].encode()

    await wait_for(synced, timeout=30, what="the Secret to hold the rotated password")
