"""Providers register here, explicitly, keyed by the store spec's provider field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rotor.providers.base import Provider


def _vault(config: Any) -> Provider:
    from rotor.providers.vault import VaultProvider

    return VaultProvider(config)


def _aws(config: Any) -> Provider:
    from rotor.providers.aws import make_aws_provider

    return make_aws_provider(config)


PROVIDERS: dict[str, Callable[[Any], Provider]] = {
    "vault": _vault,
    "aws": _aws,
}


def build_provider(kind: str, config: Any) -> Provider:
    return PROVIDERS[kind](config)
