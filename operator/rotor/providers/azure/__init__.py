"""Azure Key Vault secrets behind Rotor's provider protocol (``azure-keyvault-secrets``, with
``azure-identity`` for Microsoft Entra tokens)."""

from rotor.providers.azure.config import AzureConfig, configure
from rotor.providers.azure.provider import AzureKeyVaultProvider, create
from rotor.providers.base import ProviderBuilder

#: the registry's entry for ``spec.provider.azureKeyVault``
BUILDER = ProviderBuilder(configure=configure, create=create)

__all__ = ["BUILDER", "AzureConfig", "AzureKeyVaultProvider"]
