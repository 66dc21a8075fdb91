"""AWS Secrets Manager and SSM Parameter Store providers."""

from rotor.providers.aws.config import AwsConfig, configure
from rotor.providers.aws.provider import (
    ParameterStoreProvider,
    SecretsManagerProvider,
    create,
    make_aws_provider,
)
from rotor.providers.base import ProviderBuilder

#: the registry's entry for ``spec.provider.aws``
BUILDER = ProviderBuilder(configure=configure, create=create)

__all__ = ["BUILDER", "AwsConfig", "ParameterStoreProvider", "SecretsManagerProvider", "make_aws_provider"]
