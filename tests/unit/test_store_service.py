"""StoreService over a fake gateway and the fake provider: the provider builds its config through
the port (Secret keys, fingerprinted), stores write Ready with Reconciling/Stalled, and a new
rotor.dev/revalidate value validates the store again at once."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from rotor.api.names import REVALIDATE_ANNOTATION
from rotor.clock import Clock
from rotor.providers import registry
from rotor.providers.base import (
    AuthFailed,
    Capabilities,
    ProviderBuilder,
    ProviderError,
    StoreAccess,
    Unreachable,
)
from rotor.providers.fake import FakeProvider
from rotor.services.stores import StoreService


class FakeGateway:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.statuses: list[tuple[str, str, dict[str, Any]]] = []

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        data = self.secrets.get((namespace, name))
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}

    async def patch_status(self, kind: str, name: str, namespace: str | None, status: dict[str, Any]) -> None:
        self.statuses.append((kind, name, status))

    async def get_object(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        return None


class Built:
    """A builder that reads the token through the port, like Vault's token auth does."""

    def __init__(self) -> None:
        self.provider = FakeProvider()
        self.configs: list[str] = []
        self.created = 0

    async def configure(self, section: Any, access: StoreAccess) -> str:
        token = await access.secret(section.auth.token.secret_ref)
        self.configs.append(access.store_id)
        return f"config-with-{len(token)}-chars"

    def create(self, config: Any) -> FakeProvider:
        self.created += 1
        return self.provider


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Built:
    b = Built()
    monkeypatch.setitem(registry.PROVIDERS, "vault", ProviderBuilder(configure=b.configure, create=b.create))
    return b


def _store(generation: int = 1, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "vault",
            "namespace": "ns",
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": {
            "provider": {
                "vault": {
                    "server": "https://vault:8200",
                    "auth": {"token": {"secretRef": {"name": "t", "key": "token"}}},
                }
            }
        },
    }


def _conditions(gateway: FakeGateway) -> dict[str, tuple[str, str]]:
    status = gateway.statuses[-1][2]
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


async def test_valid_store_is_ready_and_neither_reconciling_nor_stalled(built: Built) -> None:
    gateway = FakeGateway()
    gateway.secrets[("ns", "t")] = {"token": "s.abc"}
    stores = StoreService(gateway, Clock())  # type: ignore[arg-type]
    key = stores.observe("SecretStore", _store())
    handle = await stores.ensure(key)
    assert handle.ready and handle.reason == "Valid"
    assert built.configs == ["SecretStore/ns/vault"]
    assert _conditions(gateway) == {
        "Ready": ("True", "Valid"),
        "Reconciling": ("False", "Synced"),
        "Stalled": ("False", "Synced"),
    }
    assert gateway.statuses[-1][2]["capabilities"] == "ReadWrite"


@pytest.mark.parametrize(
    ("error", "stalled"),
    [(AuthFailed("bad token"), True), (ProviderError("x"), False), (Unreachable("down"), False)],
)
async def test_failures_are_stalled_or_reconciling(built: Built, error: ProviderError, stalled: bool) -> None:
    gateway = FakeGateway()
    gateway.secrets[("ns", "t")] = {"token": "s.abc"}
    built.provider.fail(error, operations={"validate"})
    stores = StoreService(gateway, Clock())  # type: ignore[arg-type]
    handle = await stores.ensure(stores.observe("SecretStore", _store()))
    assert not handle.ready
    conditions = _conditions(gateway)
    assert conditions["Ready"][0] == "False"
    assert conditions["Stalled"][0] == ("True" if stalled else "False")
    assert conditions["Reconciling"][0] == ("False" if stalled else "True")


async def test_missing_credentials_secret_is_invalid_config_and_stalled(built: Built) -> None:
    gateway = FakeGateway()
    stores = StoreService(gateway, Clock())  # type: ignore[arg-type]
    handle = await stores.ensure(stores.observe("SecretStore", _store()))
    assert (handle.ready, handle.reason) == (False, "InvalidConfig")
    assert "Secret ns/t referenced by the store does not exist" in handle.message
    assert _conditions(gateway)["Stalled"] == ("True", "InvalidConfig")
    assert built.created == 0


async def test_changed_credentials_rebuild_the_provider(built: Built) -> None:
    gateway = FakeGateway()
    gateway.secrets[("ns", "t")] = {"token": "s.abc"}
    stores = StoreService(gateway, Clock())  # type: ignore[arg-type]
    key = stores.observe("SecretStore", _store())
    await stores.ensure(key)
    await stores.ensure(key, revalidate=True)
    assert built.created == 1  # same credentials: same provider
    gateway.secrets[("ns", "t")] = {"token": "s.other"}
    await stores.ensure(key, revalidate=True)
    assert built.created == 2


async def test_a_new_revalidate_annotation_validates_now(built: Built) -> None:
    gateway = FakeGateway()
    gateway.secrets[("ns", "t")] = {"token": "s.abc"}
    stores = StoreService(gateway, Clock(), revalidate_every=3600)  # type: ignore[arg-type]
    key = stores.observe("SecretStore", _store(annotations={REVALIDATE_ANNOTATION: "1"}))
    await stores.ensure(key)
    assert built.provider.calls["validate"] == 1
    stores.observe("SecretStore", _store(annotations={REVALIDATE_ANNOTATION: "1"}))  # same value
    await asyncio.sleep(0)
    await stores.ensure(key)
    assert built.provider.calls["validate"] == 1
    built.provider.fail(AuthFailed("revoked"), operations={"validate"})
    stores.observe("SecretStore", _store(annotations={REVALIDATE_ANNOTATION: "2"}))
    for _ in range(100):  # the validation observe() started, without an ensure() call
        if built.provider.calls["validate"] == 2:
            break
        await asyncio.sleep(0.01)
    assert built.provider.calls["validate"] == 2
    assert stores.handles[key].reason == "AuthFailed"


async def test_per_path_capabilities_say_so(built: Built) -> None:
    gateway = FakeGateway()
    gateway.secrets[("ns", "t")] = {"token": "s.abc"}
    built.provider.capabilities = Capabilities.PER_PATH
    stores = StoreService(gateway, Clock())  # type: ignore[arg-type]
    handle = await stores.ensure(stores.observe("SecretStore", _store()))
    assert handle.ready and "checked for each path a rotation writes" in handle.message
    assert gateway.statuses[-1][2]["capabilities"] == "PerPath"
