"""The Azure Key Vault provider and its test server, driven by the official SDKs over HTTPS with
the bearer challenge (no cluster needed). The server is shown to refuse what Key Vault and
Microsoft Entra refuse; the provider is shown to map each refusal to Rotor's reason."""

from __future__ import annotations

import json
import secrets
import time

import jwt
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rotor.providers.azure import AzureConfig, AzureKeyVaultProvider
from rotor.providers.azure.auth_service_principal import ServicePrincipalAuth
from rotor.providers.azure.auth_workload_identity import WorkloadIdentityAuth
from rotor.providers.base import (
    AccessDenied,
    AuthFailed,
    Capabilities,
    InvalidSpec,
    KeyNotFound,
    RemoteRef,
    RetiresVersions,
    Unreachable,
    WriteConflict,
)
from rotor.providers.base import RollingBack as RollingBackCapability
from support.azure_keyvault import OFFICER, READER, KeyVaultServer


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _provider(kv: KeyVaultServer, auth: object) -> AzureKeyVaultProvider:
    return AzureKeyVaultProvider(AzureConfig(kv.url, "SecretStore/t/azure", auth, authority_host=kv.url))  # type: ignore[arg-type]


def _service_principal(kv: KeyVaultServer, role: str | None) -> ServicePrincipalAuth:
    secret = secrets.token_urlsafe(24)
    app = kv.add_app(role, client_secret=secret)
    return ServicePrincipalAuth(kv.tenant_id, app.client_id, secret)


@pytest.fixture
def kv(clouds) -> KeyVaultServer:  # type: ignore[no-untyped-def]
    return clouds.keyvault


def _sdk(kv: KeyVaultServer, auth: ServicePrincipalAuth) -> SecretClient:
    credential = ClientSecretCredential(
        auth.tenant_id, auth.client_id, auth.client_secret, authority=kv.url, disable_instance_discovery=True
    )
    return SecretClient(kv.url, credential, verify_challenge_resource=False)


# --------------------------------------------------------------------------- the server's semantics


def test_server_answers_a_request_without_a_token_with_the_bearer_challenge(kv: KeyVaultServer) -> None:
    resp = requests.get(f"{kv.url}/secrets/anything", params={"api-version": "7.5"}, timeout=10)
    assert resp.status_code == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'authorization="{kv.url}/{kv.tenant_id}"' in challenge
    assert 'resource="https://vault.azure.net"' in challenge
    # an unknown api-version is refused before anything else
    resp = requests.get(f"{kv.url}/secrets/anything", params={"api-version": "1999-01-01"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadParameter"


def test_server_refuses_disabled_versions_and_reuse_of_a_deleted_name(kv: KeyVaultServer) -> None:
    auth = _service_principal(kv, OFFICER)
    sdk = _sdk(kv, auth)
    name = _name("states")
    first = sdk.set_secret(name, "first-value-0001")
    second = sdk.set_secret(name, "second-value-0002")
    assert sdk.get_secret(name).properties.version == second.properties.version  # current = newest
    sdk.update_secret_properties(name, first.properties.version, enabled=False)
    with pytest.raises(HttpResponseError) as err:
        sdk.get_secret(name, first.properties.version)
    assert err.value.status_code == 403 and "disabled" in str(err.value)
    sdk.update_secret_properties(name, second.properties.version, enabled=False)
    with pytest.raises(HttpResponseError):
        sdk.get_secret(name)  # the current version is the newest one even when it is disabled
    sdk.begin_delete_secret(name).wait()
    with pytest.raises(ResourceExistsError):
        sdk.set_secret(name, "third-value-0003")  # deleted but recoverable: the name is taken


def test_server_pages_lists_as_the_sdk_expects(kv: KeyVaultServer) -> None:
    auth = _service_principal(kv, OFFICER)
    sdk = _sdk(kv, auth)
    prefix = _name("paged")
    for i in range(7):
        sdk.set_secret(f"{prefix}-{i}", f"value-{i:08d}")
    names = [p.name for p in sdk.list_properties_of_secrets(max_page_size=2) if p.name.startswith(prefix)]
    assert sorted(names) == [f"{prefix}-{i}" for i in range(7)]
    pages = [r for r in kv.requests if r[1] == "/secrets"]
    assert len(pages) >= 4  # 2 per page, followed by nextLink


def test_server_refuses_a_federated_token_with_the_wrong_audience_or_subject(kv: KeyVaultServer) -> None:
    issuer, key = _issuer(kv)
    app = kv.add_app(READER, subject="system:serviceaccount:team:reader")
    name = _name("wi")
    kv.put(name, "federated-value-1234")
    good = _provider(kv, _federated(kv, app.client_id, issuer, key, "system:serviceaccount:team:reader"))
    assert good.read(RemoteRef(name)).raw == b"federated-value-1234"
    wrong_audience = _federated(
        kv, app.client_id, issuer, key, "system:serviceaccount:team:reader", aud="vault"
    )
    with pytest.raises(AuthFailed, match="AADSTS700212"):
        _provider(kv, wrong_audience).read(RemoteRef(name))
    wrong_subject = _federated(kv, app.client_id, issuer, key, "system:serviceaccount:team:other")
    with pytest.raises(AuthFailed, match="AADSTS70021"):
        _provider(kv, wrong_subject).read(RemoteRef(name))


def _issuer(kv: KeyVaultServer) -> tuple[str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = f"https://oidc.test/{secrets.token_hex(4)}"
    kv.trust_issuer(
        issuer,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    return issuer, key


def _federated(
    kv: KeyVaultServer,
    client_id: str,
    issuer: str,
    key: rsa.RSAPrivateKey,
    subject: str,
    aud: str = "api://AzureADTokenExchange",
) -> WorkloadIdentityAuth:
    def assertion() -> str:
        now = int(time.time())
        claims = {"iss": issuer, "sub": subject, "aud": [aud], "iat": now, "exp": now + 600}
        return jwt.encode(claims, key, algorithm="RS256")

    return WorkloadIdentityAuth(kv.tenant_id, client_id, assertion, "team/reader")


# --------------------------------------------------------------------------- the provider


def test_provider_reads_current_pinned_and_json_properties(kv: KeyVaultServer, leaks) -> None:  # type: ignore[no-untyped-def]
    provider = _provider(kv, _service_principal(kv, READER))
    name = _name("db")
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    old = kv.put(name, "plain-old-value-1")
    kv.put(name, json.dumps({"username": "app", "password": password}), contentType="application/json")
    assert provider.validate() == Capabilities.READ_WRITE
    current = provider.read(RemoteRef(name))
    assert current.data == {"username": "app", "password": password}
    assert current.version == kv.version(name).id
    pinned = provider.read(RemoteRef(name, old.id))
    assert pinned.raw == b"plain-old-value-1" and pinned.data is None
    assert provider.read(RemoteRef(name, "latest")).version == current.version
    with pytest.raises(InvalidSpec, match="32 hex digits"):
        provider.read(RemoteRef(name, "v1"))
    with pytest.raises(InvalidSpec, match="no folders"):
        provider.read(RemoteRef("apps/db"))
    assert password not in repr(current)


def test_provider_find_skips_disabled_and_filters_by_name(kv: KeyVaultServer) -> None:
    provider = _provider(kv, _service_principal(kv, READER))
    prefix = _name("find")
    kv.put(f"{prefix}-api-key", "k-0000000001")
    kv.put(f"{prefix}-api-url", "https://api.example")
    kv.put(f"{prefix}-old", "retired-000001", attributes={"enabled": False})
    kv.put(f"other-{prefix}", "x-0000000001")
    assert provider.find(prefix, None) == [f"{prefix}-api-key", f"{prefix}-api-url"]
    assert provider.find(prefix, "-key$") == [f"{prefix}-api-key"]


def test_provider_errors_map_to_reasons_without_values(kv: KeyVaultServer) -> None:
    name = _name("err")
    kv.put(name, "a-value-that-never-leaks")
    reader = _provider(kv, _service_principal(kv, READER))
    with pytest.raises(KeyNotFound, match="SecretNotFound"):
        reader.read(RemoteRef(name + "-missing"))
    with pytest.raises(KeyNotFound, match="disabled"):
        v = kv.put(name, "second-value-xyz")
        v.enabled = False
        reader.read(RemoteRef(name))
    nobody = _provider(kv, _service_principal(kv, None))
    with pytest.raises(AccessDenied, match="Key Vault Secrets User"):
        nobody.read(RemoteRef(name))
    bad = ServicePrincipalAuth(kv.tenant_id, _service_principal(kv, READER).client_id, "not-the-secret")
    with pytest.raises(AuthFailed, match="AADSTS7000215"):
        _provider(kv, bad).validate()
    kv.throttle(10)
    try:
        with pytest.raises(Unreachable) as err:
            reader.read(RemoteRef(name, kv.version(name).id))
        assert err.value.throttled and "429" in err.value.message
    finally:
        kv.throttle(0)
    gone = AzureKeyVaultProvider(
        AzureConfig(
            "https://127.0.0.1:9",
            "SecretStore/t/azure",
            reader.config.auth,
            authority_host=kv.url,
            retry_total=0,
        )
    )
    with pytest.raises(Unreachable, match="unreachable"):
        gone.read(RemoteRef(name))


def test_provider_writes_a_new_version_with_check_and_set(kv: KeyVaultServer, leaks) -> None:  # type: ignore[no-untyped-def]
    officer = _provider(kv, _service_principal(kv, OFFICER))
    name = _name("rot")
    kv.put(name, "initial-value-0001")
    current = officer.read(RemoteRef(name))
    new = secrets.token_urlsafe(20)
    leaks.add(new)
    written = officer.write(name, {"password": new}, current.version)
    assert written.version == kv.version(name).id != current.version
    assert officer.read(RemoteRef(name)).data == {"password": new}
    assert kv.version(name).content_type == "application/json"
    with pytest.raises(WriteConflict, match="changed since it was read"):
        officer.write(name, "another-value-1", current.version)
    # a reader's write is denied with the role to grant, and the store then reports ReadOnly
    reader = _provider(kv, _service_principal(kv, READER))
    with pytest.raises(AccessDenied, match="Key Vault Secrets Officer"):
        reader.write(name, "denied-value-01", None)
    assert reader.validate() == Capabilities.READ_ONLY


def test_provider_rollback_re_enables_and_restores_the_previous_value(kv: KeyVaultServer) -> None:
    officer = _provider(kv, _service_principal(kv, OFFICER))
    assert isinstance(officer, RollingBackCapability)
    name = _name("rb")
    kv.put(name, "value-before-0001")
    before = officer.read(RemoteRef(name))
    officer.write(name, "value-after-00002", before.version)
    kv.version(name, before.version).enabled = False  # disabled after the grace period
    rolled = officer.rollback(name)
    assert rolled.restored == before.version and rolled.before != rolled.version
    assert officer.read(RemoteRef(name)).raw == b"value-before-0001"
    assert kv.version(name, before.version).enabled
    meta = officer.describe(name)
    assert meta.current_version == rolled.version and len(meta.versions) == 3


def test_provider_retires_a_replaced_version_never_the_current_one(kv: KeyVaultServer) -> None:
    officer = _provider(kv, _service_principal(kv, OFFICER))
    assert isinstance(officer, RetiresVersions)
    name = _name("retire")
    kv.put(name, "value-before-0001")
    before = officer.read(RemoteRef(name))
    after = officer.write(name, "value-after-00002", before.version)
    assert before.version is not None and after.version is not None
    assert officer.retire_version(name, before.version) is True
    assert kv.version(name, before.version).enabled is False
    assert officer.retire_version(name, before.version) is True  # idempotent
    assert kv.version(name, before.version).enabled is False
    # the current version is never retired
    assert officer.retire_version(name, after.version) is False
    assert kv.version(name).id == after.version and kv.version(name).enabled
    assert officer.calls["UpdateSecretProperties"] == 2
    # a version or a secret that is gone is retired already
    assert officer.retire_version(name, "0" * 32) is True
    assert officer.retire_version(_name("gone"), before.version) is True
    # a reader cannot: the role to grant is named
    reader = _provider(kv, _service_principal(kv, READER))
    with pytest.raises(AccessDenied, match="Key Vault Secrets Officer"):
        reader.retire_version(name, before.version)
