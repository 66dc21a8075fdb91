"""HashiCorp Vault (and OpenBao) behind Rotor's provider protocol."""

from rotor.providers.base import ProviderBuilder
from rotor.providers.vault.config import VaultConfig, configure
from rotor.providers.vault.provider import VaultProvider, create

#: the registry's entry for ``spec.provider.vault``
BUILDER = ProviderBuilder(configure=configure, create=create)

__all__ = ["BUILDER", "VaultConfig", "VaultProvider"]
