"""The Google Secret Manager provider and its test server, driven by the official SDKs over gRPC
with TLS (no cluster needed). The server is shown to refuse what Secret Manager and Google's
token services refuse; the provider is shown to map each refusal to Rotor's reason."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api_core import exceptions as gexc
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.oauth2 import service_account
from google.protobuf import field_mask_pb2

from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    Capabilities,
    InvalidSpec,
    KeyNotFound,
    RemoteRef,
    Unreachable,
    WriteConflict,
)
from rotor.providers.gcp import GcpConfig, GcpSecretManagerProvider
from rotor.providers.gcp.auth_service_account_key import ServiceAccountKeyAuth
from rotor.providers.gcp.auth_workload_identity import WorkloadIdentityAuth
from support.gcp_secretmanager import (
    ACCESSOR,
    ADMIN,
    VERSION_ADDER,
    VERSION_MANAGER,
    VIEWER,
    SecretManagerServer,
)


@pytest.fixture
def sm(clouds) -> SecretManagerServer:  # type: ignore[no-untyped-def]
    return clouds.secretmanager


def _id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _key(sm: SecretManagerServer, *roles: str) -> ServiceAccountKeyAuth:
    return ServiceAccountKeyAuth(json.dumps(sm.add_service_account(_id("sa"), *roles)))


def _provider(sm: SecretManagerServer, auth: object, **extra: object) -> GcpSecretManagerProvider:
    config = GcpConfig(sm.project_id, "SecretStore/t/gcp", auth, endpoint=sm.endpoint, **extra)  # type: ignore[arg-type]
    return GcpSecretManagerProvider(config)


def _sdk(sm: SecretManagerServer, *roles: str) -> SecretManagerServiceClient:
    info = sm.add_service_account(_id("admin"), *roles)
    creds = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    return SecretManagerServiceClient(credentials=creds, client_options={"api_endpoint": sm.endpoint})


# --------------------------------------------------------------------------- the server's semantics


def test_server_version_states_latest_aliases_and_etags(sm: SecretManagerServer) -> None:
    sdk = _sdk(sm, ADMIN)
    secret_id = _id("states")
    name = sm.secret_name(secret_id)
    sdk.create_secret(
        parent=f"projects/{sm.project_id}",
        secret_id=secret_id,
        secret={"replication": {"automatic": {}}, "labels": {"team": "a"}},
    )
    v1 = sdk.add_secret_version(parent=name, payload={"data": b"first-value-0001"})
    v2 = sdk.add_secret_version(parent=name, payload={"data": b"second-value-0002"})
    assert v1.name.endswith("/versions/1") and v2.name.endswith("/versions/2")
    latest = sdk.access_secret_version(name=f"{name}/versions/latest")
    assert latest.name == v2.name and latest.payload.data == b"second-value-0002"
    # aliases, set with the secret's etag; a stale etag is FAILED_PRECONDITION
    secret = sdk.get_secret(name=name)
    secret.version_aliases = {"prod": 1}
    sdk.update_secret(secret=secret, update_mask=field_mask_pb2.FieldMask(paths=["version_aliases"]))
    assert sdk.access_secret_version(name=f"{name}/versions/prod").payload.data == b"first-value-0001"
    with pytest.raises(gexc.FailedPrecondition, match="etag"):
        sdk.update_secret(secret=secret, update_mask=field_mask_pb2.FieldMask(paths=["labels"]))
    # disable: reading it is FAILED_PRECONDITION; latest stays the newest version whatever its state
    disabled = sdk.disable_secret_version(request={"name": v2.name, "etag": v2.etag})
    with pytest.raises(gexc.FailedPrecondition, match="DISABLED"):
        sdk.access_secret_version(name=f"{name}/versions/latest")
    with pytest.raises(gexc.FailedPrecondition, match="etag"):
        sdk.enable_secret_version(request={"name": v2.name, "etag": v2.etag})  # the etag changed
    sdk.enable_secret_version(request={"name": v2.name, "etag": disabled.etag})
    # destroyed versions lose their data and cannot come back
    sdk.destroy_secret_version(request={"name": v1.name})
    with pytest.raises(gexc.FailedPrecondition, match="DESTROYED"):
        sdk.access_secret_version(name=v1.name)
    with pytest.raises(gexc.FailedPrecondition, match="DESTROYED"):
        sdk.enable_secret_version(request={"name": v1.name})
    with pytest.raises(gexc.NotFound):
        sdk.access_secret_version(name=f"{name}/versions/7")


def test_server_requires_a_token_and_the_permission(sm: SecretManagerServer) -> None:
    secret_id = _id("iam")
    sm.put(secret_id, "iam-value-000001")
    reader = _sdk(sm, ACCESSOR)
    assert reader.access_secret_version(name=f"{sm.secret_name(secret_id)}/versions/latest").payload.data
    with pytest.raises(gexc.PermissionDenied, match=r"secretmanager\.secrets\.list"):
        list(reader.list_secrets(parent=f"projects/{sm.project_id}"))
    info = sm.add_service_account(_id("gone"), ADMIN)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()  # a key Google does not know for this account
    creds = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    forged = SecretManagerServiceClient(credentials=creds, client_options={"api_endpoint": sm.endpoint})
    with pytest.raises(gexc.Unauthenticated):
        forged.get_secret(name=sm.secret_name(secret_id))


def test_server_pages_lists(sm: SecretManagerServer) -> None:
    sdk = _sdk(sm, ADMIN)
    prefix = _id("paged")
    for i in range(5):
        sm.put(f"{prefix}-{i}", f"value-{i:08d}")
    before = sm.rpcs.count("ListSecrets")
    found = [
        s.name.rsplit("/", 1)[-1]
        for s in sdk.list_secrets(request={"parent": f"projects/{sm.project_id}", "page_size": 2})
    ]
    assert [f for f in found if f.startswith(prefix)] == [f"{prefix}-{i}" for i in range(5)]
    assert sm.rpcs.count("ListSecrets") - before >= 3


# --------------------------------------------------------------------------- the provider


def test_provider_reads_latest_numbers_aliases_and_json(sm: SecretManagerServer, leaks) -> None:  # type: ignore[no-untyped-def]
    provider = _provider(sm, _key(sm, ACCESSOR, VIEWER))
    secret_id = _id("db")
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    sm.put(secret_id, "plain-old-value-1")
    sm.put(secret_id, json.dumps({"username": "app", "password": password}))
    sm.record(secret_id).aliases["stable"] = 1
    assert provider.validate() == Capabilities.READ_WRITE
    current = provider.read(RemoteRef(secret_id))
    assert (current.version, current.data) == ("2", {"username": "app", "password": password})
    assert provider.read(RemoteRef(secret_id, "1")).raw == b"plain-old-value-1"
    assert provider.read(RemoteRef(secret_id, "stable")).version == "1"
    full = f"projects/{sm.project_id}/secrets/{secret_id}"
    assert provider.read(RemoteRef(full, "latest")).version == "2"
    with pytest.raises(InvalidSpec, match="not valid"):
        provider.read(RemoteRef("apps/db"))
    assert provider.find(secret_id[:10], None) == [secret_id]
    meta = provider.describe(secret_id)
    assert meta.current_version == "2" and set(meta.versions) == {"1", "2"}


def test_provider_validates_per_path_without_list_permission(sm: SecretManagerServer) -> None:
    secret_id = _id("perpath")
    sm.put(secret_id, "only-this-one-0001")
    provider = _provider(sm, _key(sm, ACCESSOR))
    assert provider.validate() == Capabilities.PER_PATH
    assert provider.read(RemoteRef(secret_id)).raw == b"only-this-one-0001"


def test_provider_errors_map_to_reasons(sm: SecretManagerServer) -> None:
    secret_id = _id("err")
    sm.put(secret_id, "a-value-that-never-leaks")
    provider = _provider(sm, _key(sm, ACCESSOR, VIEWER))
    with pytest.raises(KeyNotFound, match="not found"):
        provider.read(RemoteRef(secret_id + "-missing"))
    sm.put(secret_id, "second-value-0002")
    sm.record(secret_id).versions[-1].state = 2  # DISABLED
    with pytest.raises(KeyNotFound, match="DISABLED"):
        provider.read(RemoteRef(secret_id))
    with pytest.raises(AccessDenied, match="secretAccessor"):
        _provider(sm, _key(sm, VIEWER)).read(RemoteRef(secret_id, "1"))
    sm.throttle(1)
    with pytest.raises(Unreachable) as err:
        provider.read(RemoteRef(secret_id, "1"))
    assert err.value.throttled
    gone = GcpSecretManagerProvider(
        GcpConfig(
            sm.project_id,
            "SecretStore/t/gcp",
            provider.config.auth,
            endpoint="127.0.0.1:9",
            retry_for=0.5,
            timeout=2,
        )
    )
    with pytest.raises(Unreachable):
        gone.read(RemoteRef(secret_id))


def test_provider_writes_versions_with_check_and_set_and_rolls_back(sm: SecretManagerServer, leaks) -> None:  # type: ignore[no-untyped-def]
    writer = _provider(sm, _key(sm, ACCESSOR, VIEWER, VERSION_MANAGER))
    secret_id = _id("rot")
    sm.put(secret_id, "initial-value-0001")
    current = writer.read(RemoteRef(secret_id))
    new = secrets.token_urlsafe(20)
    leaks.add(new)
    assert writer.write(secret_id, {"password": new}, current.version).version == "2"
    assert writer.read(RemoteRef(secret_id)).data == {"password": new}
    with pytest.raises(WriteConflict, match="changed since it was read"):
        writer.write(secret_id, "late-writer-0001", current.version)
    sm.record(secret_id).versions[0].state = 2  # the previous version, disabled after grace
    rolled = writer.rollback(secret_id)
    assert (rolled.before, rolled.restored, rolled.version) == ("2", "1", "3")
    assert writer.read(RemoteRef(secret_id)).raw == b"initial-value-0001"
    assert sm.record(secret_id).versions[0].state == 1  # enabled again
    adder_only = _provider(sm, _key(sm, ACCESSOR, VERSION_ADDER))
    assert adder_only.write(secret_id, "added-by-adder-01", None).version == "4"
    reader = _provider(sm, _key(sm, ACCESSOR, VIEWER))
    with pytest.raises(AccessDenied, match="secretVersionAdder"):
        reader.write(secret_id, "denied-value-0001", None)
    assert reader.validate() == Capabilities.READ_ONLY


def test_provider_workload_identity_federation_and_a_wrong_audience(sm: SecretManagerServer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = f"https://oidc.test/{secrets.token_hex(4)}"
    sm.trust_issuer(
        issuer,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    pool = sm.add_pool_provider(_id("pool"), "k8s")
    subject = "system:serviceaccount:team:reader"
    sm.grant(pool.principal(subject), ACCESSOR, VIEWER)
    secret_id = _id("wif")
    sm.put(secret_id, "federated-value-1234")

    def token(aud: str) -> str:
        now = int(time.time())
        return jwt.encode(
            {"iss": issuer, "sub": subject, "aud": [aud], "iat": now, "exp": now + 600}, key, "RS256"
        )

    good = WorkloadIdentityAuth(
        pool.audience, lambda: token(pool.allowed_audience), sm.sts_url, "team/reader"
    )
    provider = _provider(sm, good)
    assert provider.validate() == Capabilities.READ_WRITE
    assert provider.read(RemoteRef(secret_id)).raw == b"federated-value-1234"
    assert provider.calls["Token"] == 1  # one exchange, reused
    wrong = WorkloadIdentityAuth(pool.audience, lambda: token("vault"), sm.sts_url, "team/reader")
    with pytest.raises(AuthFailed, match="audience"):
        _provider(sm, wrong).read(RemoteRef(secret_id))


def test_expire_time_feeds_expires_with_one_get_secret_per_window(sm: SecretManagerServer) -> None:
    name = _id("exp")
    sm.put(name, "value-with-expiry-1")
    sm.put(name, "value-with-expiry-2")
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    sm.record(name).expire_time = when
    plain = _id("noexp")
    sm.put(plain, "value-without-expiry")
    viewer = _provider(sm, _key(sm, ACCESSOR, VIEWER), expiry_window=60.0)
    first = viewer.read(RemoteRef(name))
    assert first.expires == when and first.raw == b"value-with-expiry-2"
    # more reads of the secret, of any version, within the window: no more GetSecret
    assert viewer.read(RemoteRef(name, "1")).expires == when
    assert viewer.read_many([RemoteRef(name), RemoteRef(name, "2")])[RemoteRef(name)].expires == when  # type: ignore[union-attr]
    assert viewer.calls["GetSecret"] == 1 and viewer.calls["AccessSecretVersion"] == 4
    assert viewer.read(RemoteRef(plain)).expires is None and viewer.calls["GetSecret"] == 2
    # after the window, the secret is asked again (a changed expireTime is seen)
    later = when + dt.timedelta(days=1)
    sm.record(name).expire_time = later
    short = _provider(sm, _key(sm, ACCESSOR, VIEWER), expiry_window=0.0)
    assert short.read(RemoteRef(name)).expires == later
    assert short.read(RemoteRef(name)).expires == later and short.calls["GetSecret"] == 2
    # an accessor without secrets.get still reads; the expiry is unknown, and not asked at every read
    accessor = _provider(sm, _key(sm, ACCESSOR))
    read = accessor.read(RemoteRef(name))
    assert read.raw == b"value-with-expiry-2" and read.expires is None
    accessor.read(RemoteRef(name))
    assert accessor.calls["GetSecret"] == 1 and accessor.results[("GetSecret", "Forbidden")] == 1
