"""Vault write access is judged per path with sys/capabilities-self (no probe path), and a
non-numeric pinned version is the spec's fault (InvalidSpec), said before any call."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rotor.providers.base import AccessDenied, InvalidSpec, RemoteRef
from rotor.providers.vault import client_read, validate
from rotor.providers.vault.auth_token import TokenAuth
from rotor.providers.vault.config import VaultConfig


class _Sys:
    def __init__(self, answer: dict[str, list[str]]) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def get_capabilities(self, paths: list[str]) -> dict[str, Any]:
        self.asked.append(list(paths))
        return {"data": {p: self.answer.get(p, ["deny"]) for p in paths}}


class _Hvac:
    def __init__(self, answer: dict[str, list[str]]) -> None:
        self.sys = _Sys(answer)


class _Client:
    """The part of VaultClient the verb modules use."""

    def __init__(self, answer: dict[str, list[str]], kv_version: int = 2) -> None:
        self.config = VaultConfig(
            server="https://v", store_id="SecretStore/ns/vault", auth=TokenAuth("t"), kv_version=kv_version
        )
        self.hvac = _Hvac(answer)
        self.calls: Counter[str] = Counter()

    def call(self, operation: str, where: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls[operation] += 1
        return fn(*args, **kwargs)


def test_paths_granted_create_and_update_are_writable() -> None:
    client = _Client({"secret/data/app/db": ["create", "update", "read"], "secret/data/app/api": ["update"]})
    assert validate.missing_write(client, ["app/db", "/app/api"]) == {}  # type: ignore[arg-type]
    assert client.hvac.sys.asked == [["secret/data/app/db", "secret/data/app/api"]]  # one call, exact paths
    assert not any("rotor-probe" in p for asked in client.hvac.sys.asked for p in asked)


def test_a_path_lacking_update_is_named_with_the_capability() -> None:
    client = _Client({"secret/data/app/db": ["create", "read"], "secret/data/app/api": ["create", "update"]})
    missing = validate.missing_write(client, ["app/db", "app/api"])  # type: ignore[arg-type]
    assert missing == {"secret/data/app/db": ["update"]}
    message = validate.describe_missing("SecretStore/ns/vault", missing)
    assert "Vault token lacks 'update' on secret/data/app/db" in message
    assert "grant it in the store's Vault policy" in message
    assert "app/api" not in message


def test_root_and_deny() -> None:
    client = _Client({"secret/data/a": ["root"], "secret/data/b": ["deny"]})
    assert validate.missing_write(client, ["a", "b"]) == {"secret/data/b": ["update"]}  # type: ignore[arg-type]


def test_kv_v1_paths_have_no_data_segment() -> None:
    client = _Client({"kv/app": ["update"]}, kv_version=1)
    client.config = VaultConfig(
        server="https://v", store_id="s", auth=TokenAuth("t"), kv_mount="kv", kv_version=1
    )
    assert validate.missing_write(client, ["app"]) == {}  # type: ignore[arg-type]
    assert client.hvac.sys.asked == [["kv/app"]]


@pytest.mark.parametrize("version", ["latest", "v2", "AWSCURRENT", "1.5"])
def test_non_numeric_pinned_version_is_invalid_spec(version: str) -> None:
    client = _Client({})
    with pytest.raises(InvalidSpec) as info:
        client_read.read(client, RemoteRef("app/db", version))  # type: ignore[arg-type]
    assert info.value.reason == "InvalidSpec" and not info.value.retryable
    assert "'app/db'" in info.value.message and repr(version) in info.value.message
    assert sum(client.calls.values()) == 0  # refused before asking Vault


def test_a_denied_write_names_the_missing_capability() -> None:
    from types import SimpleNamespace

    from rotor.providers.base import WriteDenied
    from rotor.providers.vault import client_write

    client = _Client({"secret/data/app/db": ["create", "read"]})

    def denied(**_: Any) -> Any:
        raise AccessDenied("Vault write 'app/db': permission denied")

    client.hvac.secrets = SimpleNamespace(
        kv=SimpleNamespace(v2=SimpleNamespace(create_or_update_secret=denied))
    )  # type: ignore[attr-defined]
    with pytest.raises(WriteDenied) as info:
        client_write.write(client, "app/db", {"password": "x"}, cas="1")  # type: ignore[arg-type]
    assert info.value.missing == {"secret/data/app/db": ["update"]}
    assert "lacks 'update' on secret/data/app/db" in info.value.message
    assert "write access" in info.value.message and "read-only" in info.value.message
