"""The per-store limiter (services/ratelimit.py): never wedges, adapts to throttling, keeps its cap.

Time is a fake clock that only the limiter's own sleeps advance, so nothing here depends on how
fast the machine is.
"""

from __future__ import annotations

import asyncio

import hvac.exceptions
import pytest

from rotor.providers.aws.errors import SECRETS_MANAGER, error_from_code
from rotor.providers.base import KeyNotFound, ProviderError, Unreachable
from rotor.providers.vault.errors import mapped
from rotor.services.ratelimit import DECREASE_EVERY, AdaptiveLimiter, is_throttling


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the limiter never sleeps for nothing"
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)


def limiter(qps: float, burst: int) -> tuple[AdaptiveLimiter, FakeTime]:
    t = FakeTime()
    return AdaptiveLimiter(qps, burst, clock=t.clock, sleep=t.sleep), t


def vault_error(exc: Exception) -> ProviderError:
    try:
        with mapped("read", "kv/app", "http://vault:8200"):
            raise exc
    except ProviderError as err:
        return err
    raise AssertionError("not mapped")


def throttled() -> ProviderError:
    return error_from_code(SECRETS_MANAGER, "GetSecretValue", "app", "ThrottlingException", 400)


async def test_a_request_larger_than_the_bucket_completes_in_slices() -> None:
    lim, t = limiter(qps=1, burst=1)
    await asyncio.wait_for(lim.acquire(45), timeout=5)  # the old bucket looped here forever
    # one token was in the bucket; the other 44 came at 1 per (fake) second
    assert t.slept == pytest.approx(44)


async def test_small_requests_within_the_burst_do_not_wait() -> None:
    lim, t = limiter(qps=10, burst=5)
    for _ in range(5):
        await lim.acquire()
    assert t.slept == 0
    await lim.acquire()
    assert t.slept == pytest.approx(0.1)


async def test_a_throttling_answer_halves_the_rate_and_the_bucket() -> None:
    lim, t = limiter(qps=100, burst=200)
    lim.feedback(throttled())
    assert lim.qps == pytest.approx(50)
    assert lim.capacity == pytest.approx(100)
    # a volley of answers to requests already sent counts once
    lim.feedback(throttled())
    lim.feedback(throttled())
    assert lim.qps == pytest.approx(50) and lim.throttled == 3
    # after DECREASE_EVERY another answer halves again
    t.now += DECREASE_EVERY
    lim.feedback(throttled())
    assert lim.qps == pytest.approx(25)
    # and what was saved up is gone: the next request waits at the new rate
    before = t.slept
    await lim.acquire()
    assert t.slept - before == pytest.approx(1 / lim.qps, rel=0.2)


async def test_the_rate_never_drops_below_the_floor() -> None:
    lim, t = limiter(qps=100, burst=100)
    for _ in range(30):
        t.now += DECREASE_EVERY
        lim.feedback(throttled())
    assert lim.qps == pytest.approx(1.0)
    await asyncio.wait_for(lim.acquire(10), timeout=5)  # still serves, slowly


async def test_the_rate_recovers_additively_up_to_the_cap() -> None:
    lim, t = limiter(qps=100, burst=100)
    lim.feedback(throttled())
    assert lim.qps == pytest.approx(50)
    t.now += DECREASE_EVERY  # recovery starts a second after the halving
    await lim.acquire()
    assert lim.qps == pytest.approx(50)
    t.now += 2
    await lim.acquire()
    assert lim.qps == pytest.approx(60)  # 5 % of the cap per second
    t.now += 60
    await lim.acquire()
    assert lim.qps == pytest.approx(100)  # never above the cap


async def test_the_cap_holds_for_a_long_run_of_requests() -> None:
    lim, t = limiter(qps=20, burst=10)
    start = t.now
    for _ in range(410):
        await lim.acquire()
    # 10 at once, then never faster than 20 per second
    assert t.now - start == pytest.approx(400 / 20)
    assert lim.qps == 20


async def test_callers_are_served_in_arrival_order() -> None:
    lim, _ = limiter(qps=1, burst=1)
    order: list[int] = []

    async def one(i: int, n: int) -> None:
        await lim.acquire(n)
        order.append(i)

    await asyncio.gather(one(0, 3), one(1, 1), one(2, 2))
    assert order == [0, 1, 2]


def test_what_counts_as_throttling() -> None:
    for code in ("ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"):
        assert is_throttling(error_from_code(SECRETS_MANAGER, "GetSecretValue", "k", code, 400)), code
    assert is_throttling(vault_error(hvac.exceptions.RateLimitExceeded("quota")))
    assert is_throttling(vault_error(hvac.exceptions.VaultDown("sealed")))
    # other failures do not slow the store down
    assert not is_throttling(vault_error(hvac.exceptions.InternalServerError("boom")))
    assert not is_throttling(vault_error(hvac.exceptions.Forbidden("no")))
    assert not is_throttling(error_from_code(SECRETS_MANAGER, "GetSecretValue", "k", "AccessDenied", 403))
    assert not is_throttling(KeyNotFound("missing"))
    assert not is_throttling(Unreachable("connection refused"))
    flagged = Unreachable("slow down")
    flagged.throttled = True  # type: ignore[attr-defined]
    assert is_throttling(flagged)


def test_other_errors_leave_the_rate_alone() -> None:
    lim, _ = limiter(qps=100, burst=100)
    lim.feedback(KeyNotFound("missing"))
    lim.feedback(vault_error(hvac.exceptions.InternalServerError("boom")))
    assert lim.qps == 100 and lim.throttled == 0
