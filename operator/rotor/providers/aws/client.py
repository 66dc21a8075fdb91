"""One botocore client per provider: counted calls, errors translated, write denials remembered."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from rotor.providers.aws.auth import client_config, make_session
from rotor.providers.aws.config import AwsConfig
from rotor.providers.aws.errors import to_provider_error
from rotor.providers.base import AccessDenied, CallObserver

__all__ = ["AwsClient", "CallObserver"]


class AwsClient:
    """A thread-safe botocore client for one AWS service of one store.

    ``calls`` counts API calls per operation name (``GetSecretValue``, ``AssumeRole``, ...);
    ``results`` counts ``(operation, result)``. ``read_only`` becomes True when AWS denies a
    write, and False again after a write succeeds.
    """

    def __init__(
        self,
        config: AwsConfig,
        boto_service: str,
        label: str,
        iam_prefix: str,
        observer: CallObserver | None = None,
    ) -> None:
        self.label = label
        self.iam_prefix = iam_prefix
        self.calls: Counter[str] = Counter()
        self.results: Counter[tuple[str, str]] = Counter()
        self.read_only = False
        self._observer = observer
        self._lock = threading.Lock()
        session = make_session(config, on_sts_call=lambda: self._count("AssumeRole"))
        self._client: Any = session.client(
            boto_service, endpoint_url=config.endpoint, config=client_config(config)
        )

    def call(self, operation: str, key: str | None, *, write: bool = False, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (its AWS name, e.g. ``GetSecretValue``); raise a ProviderError."""
        method = getattr(self._client, xform_name(operation))
        self._count(operation)
        started = time.monotonic()
        try:
            response: dict[str, Any] = method(**params)
        except (ClientError, BotoCoreError) as exc:
            error = to_provider_error(self.label, operation, key, exc)
            if write and isinstance(error, AccessDenied):
                self.read_only = True
                error = AccessDenied(
                    f"the store's AWS credentials cannot write ({self.iam_prefix}:{operation} denied); "
                    "grant write access to rotate"
                )
            self._observe(operation, error.reason, started)
            raise error from None
        self._observe(operation, "success", started)
        if write:
            self.read_only = False
        return response

    def pages(
        self, operation: str, key: str | None, *, result: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """The items of ``result`` across all pages (``NextToken`` pagination)."""
        token: str | None = None
        while True:
            paging: dict[str, Any] = {"NextToken": token} if token else {}
            page = self.call(operation, key, **params, **paging)
            yield from page.get(result) or []
            token = page.get("NextToken")
            if not token:
                return

    def observe(self, observer: CallObserver | None) -> None:
        """Report every later call to ``observer`` (the backend's request metrics)."""
        self._observer = observer

    @property
    def botocore_client(self) -> Any:
        """The wrapped botocore client (for event hooks and botocore's Stubber in unit tests)."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1

    def _observe(self, operation: str, result: str, started: float) -> None:
        with self._lock:
            self.results[(operation, result)] += 1
        if self._observer is not None:
            self._observer(operation, result, time.monotonic() - started)
