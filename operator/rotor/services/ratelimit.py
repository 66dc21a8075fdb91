"""The per-store request limiter: a token bucket whose rate adapts to the backend (AIMD).

- ``spec.rateLimit`` is the cap: the limiter never goes above ``qps`` requests per second and
  ``burst`` requests at once. Unset, the cap is generous (``DEFAULT_QPS``/``DEFAULT_BURST``), so a
  cold start is not throttled by Rotor itself.
- The backend says when it is overloaded: an HTTP 429, AWS ``ThrottlingException`` and its
  relatives, Vault's 429 (rate limit quota) or 503. Each such answer halves the current rate (at
  most once per ``DECREASE_EVERY`` seconds, so a volley of answers to requests sent at the same
  rate counts once), down to ``MIN_QPS``; the bucket's size shrinks with the rate.
- Every second without a throttling answer adds ``RECOVERY_FRACTION`` of the cap back (a halved
  rate is whole again after 10 s), never above the cap.
- ``acquire(n)`` with ``n`` larger than the bucket never waits forever: it takes the request in
  slices of at most the bucket's size, so it waits about ``n / qps`` seconds in all. Callers are
  served in arrival order.

Nothing blocks the event loop; waits are ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from rotor.providers.base import ProviderError

log = logging.getLogger("rotor.ratelimit")

#: the default cap (a store without ``rateLimit``): a cold start of thousands of objects is not
#: throttled by Rotor; the backend's own throttling answers bring the rate down where needed
DEFAULT_QPS = 200.0
DEFAULT_BURST = 400
#: the rate never adapts below this (or the cap, if lower)
MIN_QPS = 1.0
#: a throttling answer halves the rate at most this often
DECREASE_EVERY = 1.0
#: each second without throttling adds this share of the cap back
RECOVERY_FRACTION = 0.05

_EPSILON = 1e-6


def is_throttling(error: BaseException) -> bool:
    """Whether a provider error is the backend asking Rotor to slow down (the provider that mapped
    it says so: ``ProviderError.throttled``)."""
    return isinstance(error, ProviderError) and error.throttled


class AdaptiveLimiter:
    """See the module docstring. ``clock`` and ``sleep`` are replaceable for tests."""

    def __init__(
        self,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        *,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.name = name  # the store, for logs
        self.max_qps = max(float(qps), 0.001)
        self.max_burst = max(int(burst), 1)
        self.min_qps = min(MIN_QPS, self.max_qps)
        self.qps = self.max_qps
        self.throttled = 0  # throttling answers seen (each one, including those that did not halve)
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._tokens = float(self.max_burst)
        self._updated = now
        self._decreased_at = -math.inf
        self._recovered_at = now
        self._lock = asyncio.Lock()

    @property
    def capacity(self) -> float:
        """The bucket's size now: the burst, scaled with the current rate, at least one request."""
        return max(1.0, self.max_burst * self.qps / self.max_qps)

    def _advance(self) -> None:
        now = self._clock()
        if now > self._recovered_at:
            if self.qps < self.max_qps:
                step = RECOVERY_FRACTION * self.max_qps * (now - self._recovered_at)
                self.qps = min(self.max_qps, self.qps + step)
                if self.qps == self.max_qps:
                    log.info("store %s: back to its full rate, %g requests/s", self.name, self.qps)
            self._recovered_at = now
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.qps)
        self._updated = now

    async def acquire(self, tokens: int = 1) -> None:
        """Wait until ``tokens`` requests may be sent (any number: large ones go in slices)."""
        remaining = max(1, int(tokens))
        async with self._lock:
            waited = False
            while remaining > 0:
                self._advance()
                chunk = min(float(remaining), math.floor(self.capacity))
                if self._tokens >= chunk - _EPSILON:  # float sums may fall short by a hair
                    self._tokens = max(0.0, self._tokens - chunk)
                    remaining -= int(chunk)
                    continue
                if not waited and log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "store %s: %d request(s) wait for the rate limit (%.3g/s, bucket %.3g)",
                        self.name,
                        remaining,
                        self.qps,
                        self.capacity,
                    )
                waited = True
                await self._sleep((chunk - self._tokens) / self.qps)

    def feedback(self, error: BaseException) -> None:
        """Tell the limiter how a call failed; a throttling answer halves the rate."""
        if not is_throttling(error):
            return
        self.throttled += 1
        self._advance()
        now = self._clock()
        if now - self._decreased_at < DECREASE_EVERY:
            return
        self._decreased_at = now
        before, self.qps = self.qps, max(self.min_qps, self.qps / 2)
        log.info(
            "store %s: the backend throttled Rotor (%s); rate %.3g -> %.3g requests/s",
            self.name,
            type(error).__name__,
            before,
            self.qps,
        )
        self._tokens = min(self._tokens, 0.0)  # what was saved up was sent too fast
        self._recovered_at = now + DECREASE_EVERY  # recovery starts a second after the last halving
