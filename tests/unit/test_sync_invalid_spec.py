"""Mistakes in the spec end as InvalidSpec (Stalled), not ProviderError (issue 13, Must show): a
Vault KV version that is not a number, and a Secret the apiserver refuses for its type (422
Invalid, e.g. kubernetes.io/tls without tls.key). The last good Secret is kept."""

from __future__ import annotations

import base64
import copy
from types import SimpleNamespace
from typing import Any

import pytest
from test_grace_previous import START
from test_sync_service import Gateway, Stores

from rotor.api.secretstore import SecretStoreSpec
from rotor.conditions import is_stalled
from rotor.kube.gateway import KubeError
from rotor.providers.base import Capabilities
from rotor.providers.fake import FakeProvider
from rotor.providers.vault.auth_token import TokenAuth
from rotor.providers.vault.config import VaultConfig
from rotor.providers.vault.provider import VaultProvider
from rotor.services.backend import Backend
from rotor.services.stores import StoreHandle
from rotor.services.sync import SyncService
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

NS, NAME = "team-a", "app"
TLS_REFUSED = 'Secret "app" is invalid: data[tls.key]: Required value'


class TypeCheckingGateway(Gateway):
    """Refuses a kubernetes.io/tls Secret without tls.crt and tls.key, as the apiserver does."""

    @staticmethod
    def _check(body: dict[str, Any]) -> None:
        if body.get("type") == "kubernetes.io/tls" and not {"tls.crt", "tls.key"} <= set(
            body.get("data") or {}
        ):
            raise KubeError(422, TLS_REFUSED)

    async def create_secret(self, namespace: str, body: dict) -> dict:
        self._check(body)
        return await super().create_secret(namespace, body)


def _ms(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "uid-1",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "annotations": {},
        },
        "spec": {"storeRef": {"name": "store"}, **spec},
    }


def _service(gateway: Gateway, provider: Any) -> SyncService:
    store = SecretStoreSpec.model_validate(
        {
            "provider": {
                "vault": {"server": "http://v", "auth": {"token": {"secretRef": {"name": "t", "key": "t"}}}}
            }
        }
    )
    handle = StoreHandle(
        ("SecretStore", NS, "store"),
        1,
        "",
        store,
        backend=Backend(provider, store="store"),
        ready=True,
        capabilities=Capabilities.READ_WRITE,
    )
    index = MemoryIndex()
    clock = SimpleNamespace(now=lambda: START)
    return SyncService(gateway, Stores(handle), clock, index, index, hash_key=b"k")  # type: ignore[arg-type]


async def _sync(gateway: Gateway, sync: SyncService) -> tuple[Any, dict[str, Any]]:
    outcome = await sync.sync(copy.deepcopy(gateway.objects[("ManagedSecret", NAME)]))
    return outcome, gateway.objects[("ManagedSecret", NAME)].get("status") or {}


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _stalled(status: dict[str, Any]) -> None:
    ready = _cond(status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec", ready
    assert is_stalled(ready["reason"], failing_since=None, now=START)
    assert _cond(status, "Stalled")["status"] == "True"


async def test_a_pinned_vault_version_that_is_not_a_number_is_invalid_spec() -> None:
    vault = VaultProvider(
        VaultConfig(server="https://vault.invalid", store_id="SecretStore/team-a/store", auth=TokenAuth("t"))
    )
    gateway = Gateway()
    gateway.objects[("ManagedSecret", NAME)] = _ms(
        {
            "data": [
                {
                    "secretKey": "password",
                    "remoteRef": {"key": "apps/db", "property": "p", "version": "latest"},
                }
            ]
        }
    )
    _, status = await _sync(gateway, _service(gateway, vault))
    _stalled(status)
    message = _cond(status, "Ready")["message"]
    assert "'apps/db'" in message and "'latest'" in message and "remoteRef.version" in message
    assert vault.calls.total() == 0, "refused before asking Vault"


async def test_a_secret_refused_for_its_type_is_invalid_spec_with_the_missing_key() -> None:
    fake = FakeProvider()
    fake.put("apps/tls", {"crt": "-----BEGIN CERTIFICATE-----"})
    gateway = TypeCheckingGateway()
    gateway.objects[("ManagedSecret", NAME)] = _ms(
        {
            "target": {"type": "kubernetes.io/tls"},
            "data": [{"secretKey": "tls.crt", "remoteRef": {"key": "apps/tls", "property": "crt"}}],
        }
    )
    outcome, status = await _sync(gateway, _service(gateway, fake))
    _stalled(status)
    message = _cond(status, "Ready")["message"]
    assert "tls.key" in message and "kubernetes.io/tls" in message and "target.type" in message
    assert "BEGIN CERTIFICATE" not in message
    assert NAME not in gateway.secrets
    assert outcome.next_at is not None, "retried with back-off: a source change can fix the data too"


async def test_a_type_change_the_apiserver_refuses_keeps_the_last_good_secret() -> None:
    fake = FakeProvider()
    fake.put("apps/tls", {"crt": "cert-text"})
    gateway = TypeCheckingGateway()
    gateway.objects[("ManagedSecret", NAME)] = _ms(
        {"data": [{"secretKey": "tls.crt", "remoteRef": {"key": "apps/tls", "property": "crt"}}]}
    )
    sync = _service(gateway, fake)
    _, status = await _sync(gateway, sync)
    assert _cond(status, "Ready")["reason"] == "Synced"
    gateway.objects[("ManagedSecret", NAME)]["spec"]["target"] = {"type": "kubernetes.io/tls"}
    gateway.objects[("ManagedSecret", NAME)]["metadata"]["generation"] = 2
    sync.index.secrets.clear()
    _, status = await _sync(gateway, sync)
    _stalled(status)
    kept = gateway.secrets[NAME]
    assert kept.get("type", "Opaque") == "Opaque"
    assert base64.b64decode(kept["data"]["tls.crt"]) == b"cert-text"


async def test_a_refusal_message_never_quotes_the_value() -> None:
    from rotor.sync.plan import Desired, refused_message

    desired = Desired(NS, NAME, "kubernetes.io/dockerconfigjson", {}, "h", {}, {}, "Owner", None, NAME)
    detail = (
        'Kubernetes API 422: Secret "app" is invalid: data[.dockerconfigjson]: Invalid value: "hunter2": '
        "invalid character 'h' looking for beginning of value"
    )
    message = refused_message(desired, detail)
    assert "hunter2" not in message and "'h'" not in message
    assert "data[.dockerconfigjson]" in message and "kubernetes.io/dockerconfigjson" in message
