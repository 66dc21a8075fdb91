"""Credentials and client settings for one AWS store.

Source credentials are the store's static keys, or botocore's default chain (IRSA, EKS Pod
Identity, environment). With a role ARN they are exchanged through STS AssumeRole for
``DeferredRefreshableCredentials``: the first call assumes the role, and botocore assumes it
again (under a lock, shared by every thread of the client) before the credentials expire.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError

from rotor.providers.aws.config import AwsConfig
from rotor.providers.base import InvalidConfig

_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_SESSION_NAME_INVALID = re.compile(r"[^\w+=,.@-]")


def client_config(config: AwsConfig) -> Config:
    """Bounded retries and timeouts; enough pooled connections for the provider's thread pool."""
    return Config(
        region_name=config.region,
        retries={"mode": "standard", "max_attempts": config.max_attempts},
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=config.max_pool_connections,
    )


def role_session_name(store_id: str) -> str:
    """``rotor-<store_id>`` within STS's rules (2-64 characters of ``[\\w+=,.@-]``)."""
    return _SESSION_NAME_INVALID.sub("-", f"rotor-{store_id}")[:64]


def sts_endpoint(config: AwsConfig) -> str | None:
    """Where AssumeRole goes: explicit, else the store's endpoint for emulators, else AWS's own."""
    if config.sts_endpoint:
        return config.sts_endpoint
    if not config.endpoint:
        return None
    host = urlparse(config.endpoint).hostname or ""
    return None if host.endswith(_AWS_HOST_SUFFIXES) else config.endpoint


def make_session(config: AwsConfig, on_sts_call: Callable[[], None] | None = None) -> boto3.Session:
    """One boto3 session per provider. Raises InvalidConfig for half-given static keys."""
    if not config.region:
        raise InvalidConfig("AWS store: region is required")
    if bool(config.access_key_id) != bool(config.secret_access_key):
        raise InvalidConfig("AWS store: give both accessKeyId and secretAccessKey, or neither")
    source = botocore.session.Session()
    if config.access_key_id and config.secret_access_key:
        source.set_credentials(config.access_key_id, config.secret_access_key, config.session_token)
    if not config.role_arn:
        return boto3.Session(botocore_session=source, region_name=config.region)

    assumed = _assumed_role_credentials(config, source, on_sts_call)
    session = botocore.session.Session()
    session.register_component("credential_provider", CredentialResolver([_FixedProvider(assumed)]))
    return boto3.Session(botocore_session=session, region_name=config.region)


def _assumed_role_credentials(
    config: AwsConfig, source: botocore.session.Session, on_sts_call: Callable[[], None] | None
) -> DeferredRefreshableCredentials:
    extra: dict[str, Any] = {"RoleSessionName": role_session_name(config.store_id)}
    if config.external_id:
        extra["ExternalId"] = config.external_id
    endpoint = sts_endpoint(config)
    settings = client_config(config)

    def create_sts_client(service_name: str, **credentials: Any) -> Any:
        client = source.create_client(
            service_name, region_name=config.region, endpoint_url=endpoint, config=settings, **credentials
        )
        if on_sts_call is not None:
            client.meta.events.register("before-call.sts.AssumeRole", lambda **_: on_sts_call())
        return client

    fetcher: list[AssumeRoleCredentialFetcher] = []

    def refresh() -> dict[str, Any]:
        # Resolved lazily: the default chain may read files or call IMDS, which must not
        # happen when the provider is built, only when it is first used.
        if not fetcher:
            source_credentials = source.get_credentials()
            if source_credentials is None:
                raise NoCredentialsError()
            fetcher.append(
                AssumeRoleCredentialFetcher(
                    create_sts_client, source_credentials, config.role_arn, extra_args=extra
                )
            )
        result: dict[str, Any] = fetcher[0].fetch_credentials()
        return result

    return DeferredRefreshableCredentials(refresh_using=refresh, method="assume-role")


class _FixedProvider(CredentialProvider):
    """Hands botocore one credentials object (refreshable), instead of its default chain."""

    METHOD = "rotor-assume-role"
    CANONICAL_NAME = "RotorAssumeRole"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials
