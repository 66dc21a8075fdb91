"""Google Cloud Secret Manager behind Rotor's provider protocol (``google-cloud-secret-manager``
over gRPC, with ``google-auth`` for tokens)."""

from rotor.providers.base import ProviderBuilder
from rotor.providers.gcp.config import GcpConfig, configure
from rotor.providers.gcp.provider import GcpSecretManagerProvider, create

#: the registry's entry for ``spec.provider.gcpSecretManager``
BUILDER = ProviderBuilder(configure=configure, create=create)

__all__ = ["BUILDER", "GcpConfig", "GcpSecretManagerProvider"]
