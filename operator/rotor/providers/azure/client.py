"""One ``SecretClient`` per store: every call counted, reported to the backend's observer and
its errors translated; a denied write remembered (the store then reports ReadOnly)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from azure.keyvault.secrets import SecretClient

from rotor.providers.azure.config import AzureConfig
from rotor.providers.azure.errors import to_provider_error
from rotor.providers.base import AccessDenied, CallObserver, ProviderError

T = TypeVar("T")

# azure-core logs every request's URL and headers at INFO (its documented HTTP logging policy)
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.identity").setLevel(logging.ERROR)  # failures are raised, and reported once


class AzureClient:
    def __init__(self, config: AzureConfig, observer: CallObserver | None = None) -> None:
        self.config = config
        self.calls: Counter[str] = Counter()
        self.results: Counter[tuple[str, str]] = Counter()
        self.read_only = False
        self._observer = observer
        self._lock = threading.Lock()
        transport: dict[str, Any] = {
            "retry_total": config.retry_total,
            "connection_timeout": config.connect_timeout,
            "read_timeout": config.read_timeout,
        }
        self.credential = config.auth.credential(config.authority_host, **transport)
        extra: dict[str, Any] = {"api_version": config.api_version} if config.api_version else {}
        self.secrets = SecretClient(
            config.vault_url,
            self.credential,
            verify_challenge_resource=config.verify_challenge_resource,
            **extra,
            **transport,
        )

    def call(self, operation: str, key: str | None, fn: Callable[[], T], *, write: bool = False) -> T:
        """Run one SDK call (``operation`` names it in metrics: ``GetSecret``, ``SetSecret``, ...)."""
        with self._lock:
            self.calls[operation] += 1
        started = time.monotonic()
        try:
            result = fn()
        except ProviderError as err:
            self._observe(operation, err.reason, started)
            raise
        except Exception as exc:
            error = to_provider_error(operation, key, exc, self.config.vault_url, write)
            if write and isinstance(error, AccessDenied):
                self.read_only = True
            self._observe(operation, error.reason, started)
            raise error from None
        self._observe(operation, "success", started)
        if write:
            self.read_only = False
        return result

    def observe(self, observer: CallObserver | None) -> None:
        self._observer = observer

    def close(self) -> None:
        self.secrets.close()
        self.credential.close()

    def _observe(self, operation: str, result: str, started: float) -> None:
        with self._lock:
            self.results[(operation, result)] += 1
        if self._observer is not None:
            self._observer(operation, result, time.monotonic() - started)
