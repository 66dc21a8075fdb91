"""Secret Manager's ``expireTime`` as a read's ``expires``: one GetSecret per secret per window
(the backend's share window), a denied GetSecret leaves it unknown for longer without failing
the read, another failure keeps the last known value."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from google.cloud.secretmanager_v1 import Secret

from rotor.providers.base import SHARE_WINDOW, AccessDenied, KeyNotFound, ProviderError, Unreachable
from rotor.providers.gcp import client_read
from rotor.providers.gcp.config import GcpConfig

WHEN = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class FakeClient:
    """What ``secret_expiry`` uses of a GcpClient; GetSecret answers from ``answers``."""

    def __init__(self, answer: Callable[[], Secret]) -> None:
        self.config = GcpConfig("proj", "SecretStore/ns/gcp", SimpleNamespace())  # type: ignore[arg-type]
        self.expiries: dict[str, Any] = {}
        self.calls: Counter[str] = Counter()
        self.options: dict[str, Any] = {}
        self.api = SimpleNamespace(get_secret=lambda name, **_: answer())
        self._lock = threading.Lock()

    def expiry_lock(self, name: str) -> threading.Lock:
        return self._lock

    def call(self, operation: str, key: str | None, fn: Callable[[], Any], **_: Any) -> Any:
        self.calls[operation] += 1
        return fn()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(client_read.time, "monotonic", lambda: now[0])
    return now


def test_the_window_is_the_backends_share_window() -> None:
    from rotor.services.backend import Backend

    assert GcpConfig("p", "s", SimpleNamespace()).expiry_window == SHARE_WINDOW  # type: ignore[arg-type]
    assert Backend.__init__.__kwdefaults__["share_window"] == SHARE_WINDOW  # type: ignore[index]


def test_one_get_secret_per_window(clock: list[float]) -> None:
    client = FakeClient(lambda: Secret(name="projects/proj/secrets/a", expire_time=WHEN))
    assert client_read.secret_expiry(client, "a") == WHEN  # type: ignore[arg-type]
    clock[0] += SHARE_WINDOW - 0.1
    assert client_read.secret_expiry(client, "a") == WHEN  # type: ignore[arg-type]
    assert client.calls["GetSecret"] == 1
    clock[0] += 0.2
    assert client_read.secret_expiry(client, "a") == WHEN  # type: ignore[arg-type]
    assert client.calls["GetSecret"] == 2
    assert client_read.secret_expiry(client, "b") == WHEN and client.calls["GetSecret"] == 3  # type: ignore[arg-type]


def test_a_secret_without_expire_time_has_no_expiry(clock: list[float]) -> None:
    client = FakeClient(lambda: Secret(name="projects/proj/secrets/a"))
    assert client_read.secret_expiry(client, "a") is None  # type: ignore[arg-type]
    assert client_read.secret_expiry(client, "a") is None  # type: ignore[arg-type]
    assert client.calls["GetSecret"] == 1


def _raising(error: ProviderError) -> Callable[[], Secret]:
    def answer() -> Secret:
        raise error

    return answer


def test_a_denied_get_secret_is_unknown_for_longer_and_never_fails_the_read(clock: list[float]) -> None:
    client = FakeClient(_raising(AccessDenied("denied")))
    assert client_read.secret_expiry(client, "a") is None  # type: ignore[arg-type]
    clock[0] += SHARE_WINDOW * 10
    assert client_read.secret_expiry(client, "a") is None  # type: ignore[arg-type]
    assert client.calls["GetSecret"] == 1
    clock[0] += client.config.expiry_denied_retry
    client_read.secret_expiry(client, "a")  # type: ignore[arg-type]
    assert client.calls["GetSecret"] == 2


def test_a_failure_keeps_the_last_known_expiry(clock: list[float]) -> None:
    answers: list[Callable[[], Secret]] = [lambda: Secret(name="projects/proj/secrets/a", expire_time=WHEN)]
    client = FakeClient(lambda: answers[-1]())
    assert client_read.secret_expiry(client, "a") == WHEN  # type: ignore[arg-type]
    answers.append(_raising(Unreachable("down")))
    clock[0] += SHARE_WINDOW + 1
    assert client_read.secret_expiry(client, "a") == WHEN  # type: ignore[arg-type]
    answers.append(_raising(KeyNotFound("gone")))
    assert client_read.secret_expiry(client, "a") is None  # type: ignore[arg-type]
    assert "projects/proj/secrets/a" not in client.expiries
