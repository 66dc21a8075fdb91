"""One ``SecretManagerServiceClient`` (gRPC) per store: tokens refreshed before a call (so that a
refused token is AuthFailed, not a gRPC UNAVAILABLE from the auth plugin), bounded retries and
timeouts, every call counted and reported, errors translated, a denied write remembered."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud.secretmanager_v1 import SecretManagerServiceClient

from rotor.providers.base import AccessDenied, CallObserver, ProviderError
from rotor.providers.gcp.config import GcpConfig
from rotor.providers.gcp.errors import to_provider_error

T = TypeVar("T")


class GcpClient:
    def __init__(self, config: GcpConfig, observer: CallObserver | None = None) -> None:
        self.config = config
        self.calls: Counter[str] = Counter()
        self.results: Counter[tuple[str, str]] = Counter()
        self.read_only = False
        self._observer = observer
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self.credentials = config.auth.credentials()
        self._request = google.auth.transport.requests.Request()
        #: secret name -> (monotonic time until which it serves, expireTime or None)
        self.expiries: dict[str, tuple[float, datetime | None]] = {}
        self._expiry_locks: dict[str, threading.Lock] = {}
        options: dict[str, Any] = {"api_endpoint": config.endpoint} if config.endpoint else {}
        self.api = SecretManagerServiceClient(credentials=self.credentials, client_options=options or None)
        #: for every call: UNAVAILABLE retried briefly, nothing else
        self.options: dict[str, Any] = {
            "timeout": config.timeout,
            "retry": gretry.Retry(
                predicate=gretry.if_exception_type(gexc.ServiceUnavailable),
                initial=0.2,
                maximum=1.0,
                multiplier=2.0,
                timeout=config.retry_for,
            ),
        }

    def parent(self) -> str:
        return f"projects/{self.config.project_id}"

    def _fresh_token(self) -> None:
        """A service account key signs its own JWTs (no call); workload identity exchanges the
        ServiceAccount token at the STS, which is counted and reported as ``Token``."""
        with self._token_lock:
            if self.credentials.valid:
                return
            if self.config.auth.name != "workloadIdentity":
                self.credentials.refresh(self._request)
                return
            with self._lock:
                self.calls["Token"] += 1
            started = time.monotonic()
            try:
                self.credentials.refresh(self._request)
            except Exception as exc:
                self._observe("Token", to_provider_error("Token", None, exc, False).reason, started)
                raise
            self._observe("Token", "success", started)

    def call(self, operation: str, key: str | None, fn: Callable[[], T], *, write: bool = False) -> T:
        """Run one API call (``operation`` is its gRPC method name, e.g. ``AccessSecretVersion``)."""
        with self._lock:
            self.calls[operation] += 1
        started = time.monotonic()
        try:
            self._fresh_token()
            result = fn()
        except ProviderError as err:
            self._observe(operation, err.reason, started)
            raise
        except Exception as exc:
            error = to_provider_error(operation, key, exc, write)
            if write and isinstance(error, AccessDenied):
                self.read_only = True
            self._observe(operation, error.reason, started)
            raise error from None
        self._observe(operation, "success", started)
        if write:
            self.read_only = False
        return result

    def expiry_lock(self, name: str) -> threading.Lock:
        """One lock per secret: concurrent reads of one secret (several versions) ask once."""
        with self._lock:
            return self._expiry_locks.setdefault(name, threading.Lock())

    def observe(self, observer: CallObserver | None) -> None:
        self._observer = observer

    def close(self) -> None:
        self.api.transport.close()

    def _observe(self, operation: str, result: str, started: float) -> None:
        with self._lock:
            self.results[(operation, result)] += 1
        if self._observer is not None:
            self._observer(operation, result, time.monotonic() - started)
