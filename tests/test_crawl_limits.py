"""The crawl's politeness arithmetic, on a fake clock: rates, bursts, pauses and concurrency per host."""

from __future__ import annotations

import threading
import time

import pytest

from holocron.crawl.limits import Limit, Limits


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def starts(limits: Limits, clock: FakeClock, hosts: list[str]) -> list[float]:
    times = []
    for host in hosts:
        with limits.request(host):
            times.append(clock.now)
    return times


def test_requests_are_spaced_by_the_rate_after_the_burst() -> None:
    clock = FakeClock()
    limits = Limits(Limit(rate=4, burst=2), Limit(), clock=clock, sleep=clock.sleep)
    times = starts(limits, clock, ["a"] * 6)
    assert [round(t - 100, 3) for t in times] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    # In any one second, at most rate + burst - 1 requests began.
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 5


def test_the_host_limit_applies_to_its_host_only() -> None:
    clock = FakeClock()
    limits = Limits(Limit(), Limit(rate=1, burst=1), clock=clock, sleep=clock.sleep)
    times = starts(limits, clock, ["slow.example", "other.example", "slow.example", "other.example"])
    assert [round(t - 100, 3) for t in times] == [0.0, 0.0, 1.0, 1.0]


def test_a_pause_holds_the_host_for_everyone() -> None:
    clock = FakeClock()
    limits = Limits(Limit(), Limit(), clock=clock, sleep=clock.sleep)
    limits.pause("busy.example", 30)
    times = starts(limits, clock, ["free.example", "busy.example", "busy.example"])
    assert [round(t - 100, 3) for t in times] == [0.0, 30.0, 30.0]
    assert limits.waited_s == pytest.approx(30.0)


def test_concurrency_is_bounded_per_host() -> None:
    limits = Limits(Limit(concurrency=3), Limit(concurrency=1))
    inside: dict[str, int] = {"a": 0, "b": 0, "*": 0}
    peak: dict[str, int] = {"a": 0, "b": 0, "*": 0}
    lock = threading.Lock()

    def fetch(host: str) -> None:
        with limits.request(host):
            with lock:
                for key in (host, "*"):
                    inside[key] += 1
                    peak[key] = max(peak[key], inside[key])
            time.sleep(0.02)
            with lock:
                for key in (host, "*"):
                    inside[key] -= 1

    threads = [threading.Thread(target=fetch, args=(host,)) for host in ["a", "b"] * 6]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak["a"] == 1 and peak["b"] == 1 and peak["*"] <= 3


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="above zero"):
        Limit(rate=0)
    with pytest.raises(ValueError, match="burst"):
        Limit(rate=1, burst=0)
    with pytest.raises(ValueError, match="concurrency"):
        Limit(concurrency=0)
