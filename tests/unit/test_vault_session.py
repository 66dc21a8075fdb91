"""The Vault store's HTTP session reads the environment once, and still honours it."""

from __future__ import annotations

import pytest

from rotor.providers.vault.client import session as _session


def test_proxies_and_ca_bundle_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "vault.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    session = _session("https://vault.example.com:8200", True)
    assert session.trust_env is False  # no ~/.netrc or environment lookups per request
    assert session.proxies.get("https") == "http://proxy.corp:3128"
    assert session.verify == "/etc/corp-ca.pem"
    bypass = _session("https://vault.internal:8200", "/tmp/store-ca.pem")
    assert not bypass.proxies  # NO_PROXY
    assert bypass.verify == "/tmp/store-ca.pem"  # the store's own CA wins


def test_hvac_verifies_with_the_stores_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    from rotor.providers.vault.auth_token import TokenAuth
    from rotor.providers.vault.config import VaultConfig
    from rotor.providers.vault.provider import VaultProvider

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with_ca = VaultProvider(
        VaultConfig(server="https://v:8200", store_id="s", ca_pem=pem, auth=TokenAuth("t"))
    )
    assert with_ca.client.hvac.adapter._kwargs["verify"] == with_ca.client.ca_file
    plain = VaultProvider(VaultConfig(server="https://v:8200", store_id="s", auth=TokenAuth("t")))
    assert plain.client.hvac.adapter._kwargs["verify"] is True


def test_pool_holds_a_connection_per_backend_thread() -> None:
    adapter = _session("https://vault.example.com", True).get_adapter("https://vault.example.com")
    assert adapter._pool_maxsize >= 16  # type: ignore[attr-defined]


class _Auth:
    """An auth method that logs in (like AppRole): each login gets a token of ``ttl`` seconds."""

    name = "appRole"
    issues_tokens = True

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl

    def login(self, client: object) -> int:
        return self.ttl


def test_the_store_token_is_renewed_by_the_lease_rule_and_replaced_when_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One code path with dynamic credentials (rotor.leasing): renewed at 67 % of its TTL; a
    renewal capped at the max TTL makes the next due point a new login, before the token ends."""
    from rotor.providers.vault.client import VaultClient
    from rotor.providers.vault.config import VaultConfig

    clock = [1000.0]
    monkeypatch.setattr("rotor.providers.vault.client.time.monotonic", lambda: clock[0])
    client = VaultClient(VaultConfig(server="http://v:8200", store_id="s", auth=_Auth(100)))  # type: ignore[arg-type]
    grants = [100, 40]  # the second renewal is capped: 40 s left of the max TTL
    renewals: list[float] = []

    def renew_self() -> dict:
        renewals.append(clock[0])
        return {"auth": {"lease_duration": grants.pop(0)}}

    monkeypatch.setattr(client.hvac.auth.token, "renew_self", renew_self)
    client.ensure_token()
    assert client.logins == 1
    clock[0] = 1066.0
    client.ensure_token()
    assert renewals == [], "renewed before 67 % of its TTL"
    clock[0] = 1067.0
    client.ensure_token()  # full renewal: ends at 1167, next at 1134
    assert renewals == [1067.0] and client.logins == 1
    clock[0] = 1134.0
    client.ensure_token()  # capped: ends at 1174; replaced 33 s before, at 1141
    assert renewals == [1067.0, 1134.0] and client.logins == 1
    clock[0] = 1140.0
    client.ensure_token()
    assert client.logins == 1
    clock[0] = 1141.0
    client.ensure_token()
    assert client.logins == 2 and len(renewals) == 2, "a capped token was renewed instead of replaced"
