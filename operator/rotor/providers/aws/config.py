"""Plain configuration of one AWS store, and how it is built from the store spec's
``provider.aws`` section, auth method by auth method (static keys from a Secret, an assumed
role, or the SDK's default chain: IRSA web identity, EKS Pod Identity, environment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rotor.providers.base import StoreAccess

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
    #: SQS queue of Secrets Manager change events (``changeEvents.sqsQueueURL``), if any
    change_events_queue: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    max_attempts: int = 3
    max_pool_connections: int = 20


async def _static_keys(spec: Any, access: StoreAccess) -> dict[str, Any]:
    """``auth.secretRef``: access key id, secret access key and an optional session token."""
    keys = {
        "access_key_id": await access.secret(spec.access_key_id),
        "secret_access_key": await access.secret(spec.secret_access_key),
    }
    if spec.session_token is not None:
        keys["session_token"] = await access.secret(spec.session_token)
    return keys


def _assume_role(spec: Any) -> dict[str, Any]:
    """``auth.assumeRole``: STS AssumeRole from the static keys, or from the default chain."""
    return {"role_arn": spec.role_arn, "external_id": spec.external_id}


async def configure(spec: Any, access: StoreAccess) -> AwsConfig:
    """``spec`` is the store's ``provider.aws`` (``rotor.api.secretstore.AwsProvider``). Without
    ``auth``, botocore's default chain (IRSA, EKS Pod Identity, environment) is used as it is."""
    params: dict[str, Any] = {
        "service": spec.service,
        "region": spec.region,
        "endpoint": spec.endpoint,
        "store_id": access.store_id,
    }
    if spec.change_events is not None:
        params["change_events_queue"] = spec.change_events.sqs_queue_url
    auth = spec.auth
    if auth is not None and auth.secret_ref is not None:
        params.update(await _static_keys(auth.secret_ref, access))
    if auth is not None and auth.assume_role is not None:
        params.update(_assume_role(auth.assume_role))
    return AwsConfig(**params)
