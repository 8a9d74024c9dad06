"""Politeness: how fast and how many at once, for the whole crawl and for each host.

A request takes a token from the global bucket and from its host's bucket (token buckets: ``rate`` tokens a
second, at most ``burst`` saved up), and holds a slot of each concurrency limit while it runs. Waiting happens
here, before the request, never by sleeping after a failure: the backoff of a failed request is the queue's
(:mod:`holocron.backoff`), and a server's ``Retry-After`` pauses its host for everyone (:meth:`Limits.pause`).

The clock and the sleep are injectable so that the tests can check the arithmetic without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

UNLIMITED = 1e12


@dataclass(frozen=True)
class Limit:
    """Requests a second (``None``: unlimited), the burst a quiet period saves up, and requests at once."""

    rate: float | None = None
    burst: int = 1
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("a rate limit must be above zero requests a second")
        if self.burst < 1:
            raise ValueError("a burst is at least one request")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("a concurrency limit is at least one request")


@dataclass
class TokenBucket:
    """``rate`` tokens a second up to ``capacity``; :meth:`reserve` takes one and says how long to wait for it."""

    rate: float
    capacity: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)
    paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.updated = self.clock()

    def reserve(self) -> float:
        """Take a token now (the balance may go negative: later takers queue behind); seconds to wait."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        wait = 0.0 if self.tokens >= 0 else -self.tokens / self.rate
        return max(wait, self.paused_until - now)

    def pause(self, seconds: float) -> None:
        """No token is handed out before ``seconds`` from now (a server's ``Retry-After``)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)


class Limits:
    """The global limit and one per host, shared by every worker thread of a crawler."""

    def __init__(
        self,
        overall: Limit,
        per_host: Limit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.overall = overall
        self.per_host = per_host
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self.waited_s = 0.0

    def _bucket(self, key: str, limit: Limit) -> TokenBucket | None:
        """The key's bucket; an unlimited key has one only once it was paused."""
        bucket = self._buckets.get(key)
        if bucket is None and limit.rate is not None:
            bucket = self._buckets[key] = TokenBucket(limit.rate, float(limit.burst), self.clock)
        return bucket

    def _slot(self, key: str, limit: Limit) -> threading.BoundedSemaphore | None:
        if limit.concurrency is None:
            return None
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = threading.BoundedSemaphore(limit.concurrency)
            return slot

    def pause(self, host: str, seconds: float) -> None:
        """Hold every request to ``host`` for ``seconds`` (its ``Retry-After``, its ``maxlag`` answer)."""
        with self._lock:
            bucket = self._bucket(f"host:{host}", self.per_host)
            if bucket is None:  # no rate limit of its own: a bucket that never runs dry, only paused
                bucket = self._buckets[f"host:{host}"] = TokenBucket(UNLIMITED, UNLIMITED, self.clock)
            bucket.pause(seconds)

    @contextmanager
    def request(self, host: str) -> Iterator[None]:
        """Wait for a token of the global and of the host's bucket, and hold a slot of each while inside."""
        slots = [s for s in (self._slot("*", self.overall), self._slot(f"host:{host}", self.per_host)) if s]
        for slot in slots:
            slot.acquire()
        try:
            with self._lock:
                waits = [
                    bucket.reserve()
                    for bucket in (self._bucket("*", self.overall), self._bucket(f"host:{host}", self.per_host))
                    if bucket is not None
                ]
            wait = max(waits, default=0.0)
            if wait > 0:
                self.waited_s += wait
                self.sleep(wait)
            yield
        finally:
            for slot in reversed(slots):
                slot.release()
