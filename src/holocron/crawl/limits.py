"""Politeness: how fast and how many at once, for the whole crawl and for each host.

A request takes a token from the global bucket and from its host's bucket (token buckets: ``rate`` tokens a
second, at most ``burst`` saved up), and holds a slot of each concurrency limit while it runs. A token bucket
alone lets ``rate + burst`` requests start within one second (a full bucket, then its refill), and sleeping
threads wake late and bunch up; so each rate also keeps the start times of its latest requests (a sliding
window), and a request waits until fewer than ``rate`` began in the last second (plus a margin for the time
a request takes to reach the server): the configured rate is a ceiling in every window, the burst only how
many may go at once. Waiting happens
here, before the request, never by sleeping after a failure: the backoff of a failed request is the queue's
(:mod:`holocron.backoff`), and a server's ``Retry-After`` pauses its host for everyone (:meth:`Limits.pause`).

The clock and the sleep are injectable so that the tests can check the arithmetic without waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

UNLIMITED = 1e12
WINDOW_MARGIN_S = 0.025
"""Added to a sliding window, so that the jitter between a request's start here and its arrival at the server
cannot show the server one request too many in a second."""


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


@dataclass
class SlidingWindow:
    """At most ``count`` starts in any ``seconds``: the start times of the latest ``count`` requests."""

    count: int
    seconds: float
    starts: deque[float] = field(default_factory=deque)

    @classmethod
    def for_rate(cls, rate: float) -> SlidingWindow:
        """``rate`` a second as whole requests: ``floor(rate)`` a second, or one every ``1 / rate`` seconds."""
        count = max(1, math.floor(rate))
        return cls(count, max(1.0, count / rate) + WINDOW_MARGIN_S)

    def wait(self, now: float) -> float:
        """Seconds until a request may start (0: now)."""
        while self.starts and self.starts[0] <= now - self.seconds:
            self.starts.popleft()
        return 0.0 if len(self.starts) < self.count else self.starts[0] + self.seconds - now

    def record(self, now: float) -> None:
        self.starts.append(now)


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
        self._windows: dict[str, SlidingWindow] = {}
        self.waited_s = 0.0

    def _bucket(self, key: str, limit: Limit) -> TokenBucket | None:
        """The key's bucket; an unlimited key has one only once it was paused."""
        bucket = self._buckets.get(key)
        if bucket is None and limit.rate is not None:
            bucket = self._buckets[key] = TokenBucket(limit.rate, float(limit.burst), self.clock)
        return bucket

    def _window(self, key: str, limit: Limit) -> SlidingWindow | None:
        window = self._windows.get(key)
        if window is None and limit.rate is not None:
            window = self._windows[key] = SlidingWindow.for_rate(limit.rate)
        return window

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
            self._wait(max(waits, default=0.0))
            while True:  # the sliding windows, checked and recorded at the start itself
                with self._lock:
                    now = self.clock()
                    windows = [
                        window
                        for window in (self._window("*", self.overall), self._window(f"host:{host}", self.per_host))
                        if window is not None
                    ]
                    wait = max((window.wait(now) for window in windows), default=0.0)
                    if wait <= 0:
                        for window in windows:
                            window.record(now)
                        break
                self._wait(wait)
            yield
        finally:
            for slot in reversed(slots):
                slot.release()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.waited_s += seconds
            self.sleep(seconds)
