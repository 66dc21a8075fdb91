"""HashiCorp Vault (and OpenBao) behind Rotor's provider protocol."""

from rotor.providers.vault.config import VaultConfig
from rotor.providers.vault.provider import VaultProvider

__all__ = ["VaultConfig", "VaultProvider"]
