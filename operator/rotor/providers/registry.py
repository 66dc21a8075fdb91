"""Providers register here, explicitly, keyed by the store spec's provider field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rotor.providers.base import Provider


def _vault(config: Any) -> Provider:
    from rotor.providers.vault import VaultProvider

    return VaultProvider(config)


def _aws(config: Any) -> Provider:
    from rotor.observability.metrics import PROVIDER_DURATION, PROVIDER_REQUESTS
    from rotor.providers.aws import make_aws_provider

    store = config.store_id
    name = "aws-secretsmanager" if config.service == "SecretsManager" else "aws-parameterstore"

    def observe(operation: str, result: str, seconds: float) -> None:
        # one sample per real AWS API call (a batch of 20 reads is one call)
        PROVIDER_REQUESTS.labels(store, name, operation, result).inc()
        PROVIDER_DURATION.labels(name, operation).observe(seconds)

    return make_aws_provider(config, observer=observe)


PROVIDERS: dict[str, Callable[[Any], Provider]] = {
    "vault": _vault,
    "aws": _aws,
}


def build_provider(kind: str, config: Any) -> Provider:
    return PROVIDERS[kind](config)
