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
