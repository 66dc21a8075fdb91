"""Providers register here, explicitly: the store spec's provider field -> the provider's builder
(in the provider's own folder). Adding a provider is its folder and one line below."""

from __future__ import annotations

from rotor.providers import aws, azure, gcp, vault
from rotor.providers.base import InvalidConfig, ProviderBuilder

PROVIDERS: dict[str, ProviderBuilder] = {
    "vault": vault.BUILDER,
    "aws": aws.BUILDER,
    "azureKeyVault": azure.BUILDER,
    "gcpSecretManager": gcp.BUILDER,
}


def builder(kind: str) -> ProviderBuilder:
    """The builder for ``spec.provider.<kind>``."""
    try:
        return PROVIDERS[kind]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidConfig(f"unknown provider {kind!r}; known: {known}") from None
