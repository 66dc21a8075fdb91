"""Which version a Vault KV v2 rollback restores (moved from test_rotation_policies)."""

from __future__ import annotations

from rotor.providers.vault.rollback import restorable


def test_vault_rollback_skips_deleted_versions() -> None:
    assert restorable("5", {"4": ["deleted"], "3": []}) == "3"
    assert restorable("2", {"1": []}) == "1"
    assert restorable("1", {}) is None
