"""Plain configuration of one AWS store (built from the SecretStore spec by the caller)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AwsService = Literal["SecretsManager", "ParameterStore"]


@dataclass(frozen=True)
class AwsConfig:
    """How to reach one AWS service for one store.

    Credentials: explicit static keys when ``access_key_id``/``secret_access_key`` are given,
    otherwise botocore's default chain (IRSA web identity, EKS Pod Identity, environment, ...).
    With ``role_arn`` those credentials are only the source for an STS AssumeRole.
    """

    service: AwsService
    region: str
    endpoint: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = None
    #: names the store in logs and in the STS session name ("rotor-<store_id>")
    store_id: str = "default"
    #: the store is declared read-only: validate() reports ReadOnly without probing
    read_only: bool = False
    #: STS endpoint for AssumeRole; default: ``endpoint`` when it is not an AWS host
    #: (emulators serve every service on one URL), else the regional STS endpoint
    sts_endpoint: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_attempts: int = 3
    max_pool_connections: int = 20
