"""Logs (observability/logging.py): JSON keeps tracebacks without values; debug logs more of
Rotor and nothing more of the client libraries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from rotor.observability.logging import JsonFormatter, configure_logging
from rotor.providers.base import ProviderError
from rotor.services.ratelimit import AdaptiveLimiter

CLIENT_LIBRARIES = ("urllib3", "botocore", "boto3", "hvac", "aiohttp", "kubernetes_asyncio", "requests")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in (*CLIENT_LIBRARIES, "kopf", "kopf.objects")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as caught:
        return logging.LogRecord(
            "rotor.sync",
            logging.ERROR,
            __file__,
            1,
            "sync failed",
            None,
            (type(caught), caught, caught.__traceback__),
        )


def read_config() -> dict[str, str]:
    return {}["x"]  # KeyError: 'x'


def test_json_logs_keep_the_traceback() -> None:
    try:
        read_config()
    except KeyError as exc:
        record = record_of(exc)
    line = json.loads(JsonFormatter().format(record))
    assert line["error"] == "KeyError: 'x'"
    assert "Traceback (most recent call last)" in line["exc_info"]
    assert "in read_config" in line["exc_info"]  # where it happened, not only what
    assert line["exc_info"].rstrip().endswith("KeyError: 'x'")


def test_a_provider_error_traceback_does_not_carry_the_library_exception() -> None:
    value = "s3cr3t-value-from-the-backend"
    try:
        try:
            raise ValueError(f"request body was {value}")  # what a client library might say
        except ValueError:
            raise ProviderError("AWS Secrets Manager PutSecretValue on 'app': rejected") from None
    except ProviderError as exc:
        record = record_of(exc)
    line = JsonFormatter().format(record)
    assert value not in line
    assert "PutSecretValue" in json.loads(line)["exc_info"]


def test_debug_logs_rotor_and_keeps_client_libraries_at_warning(restore_logging: None) -> None:
    configure_logging("debug", "json")
    assert logging.getLogger("rotor.ratelimit").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("rotor.sync").isEnabledFor(logging.DEBUG)
    for name in CLIENT_LIBRARIES:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert not logging.getLogger(f"{name}.connectionpool").isEnabledFor(logging.DEBUG), name
    configure_logging("info", "json")
    assert not logging.getLogger("rotor.ratelimit").isEnabledFor(logging.DEBUG)


async def test_the_limiter_says_why_a_request_waits_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    limiter = AdaptiveLimiter(1, 1, name="SecretStore/team-a/vault", clock=lambda: now[0], sleep=sleep)
    with caplog.at_level(logging.INFO, logger="rotor.ratelimit"):
        await limiter.acquire(3)
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="rotor.ratelimit"):
        await limiter.acquire(3)
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and "SecretStore/team-a/vault" in record.getMessage()
