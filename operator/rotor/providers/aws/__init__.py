"""AWS Secrets Manager and SSM Parameter Store providers."""

from rotor.providers.aws.config import AwsConfig
from rotor.providers.aws.provider import ParameterStoreProvider, SecretsManagerProvider, make_aws_provider

__all__ = ["AwsConfig", "ParameterStoreProvider", "SecretsManagerProvider", "make_aws_provider"]
