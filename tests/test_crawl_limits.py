"""The crawl's politeness arithmetic, on a fake clock: rates, bursts, pauses and concurrency per host."""

from __future__ import annotations

import threading
import time

import pytest

from holocron.crawl.limits import WINDOW_MARGIN_S, Limit, Limits


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
    # The burst of 2 goes at once, then the rate spaces them; the fifth waits for the window (a second and its
    # margin after the first two), where a token bucket alone would start it at 0.75.
    assert [round(t - 100, 3) for t in times] == [0.0, 0.0, 0.25, 0.5, 1.025, 1.025]
    # In any one second (and its margin), at most rate requests began: never rate + burst.
    assert max(sum(1 for t in times if start <= t < start + 1 + WINDOW_MARGIN_S) for start in times) == 4


@pytest.mark.parametrize("rate", [0.5, 1, 2.5, 7, 50])
def test_no_second_ever_sees_more_than_the_rate(rate: float) -> None:
    """Threads that wake late bunch up after a token bucket's wait; the window still holds them to the rate."""
    clock = FakeClock()
    limits = Limits(Limit(rate=rate, burst=3), Limit(), clock=clock, sleep=lambda s: clock.sleep(s * 1.3))
    times = starts(limits, clock, ["a"] * 120)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= max(1, rate)
    # ... and yet does not starve it: late wake-ups included, well over half the rate is reached.
    assert (len(times) - 1) / (times[-1] - times[0]) > 0.6 * rate


def test_the_host_limit_applies_to_its_host_only() -> None:
    clock = FakeClock()
    limits = Limits(Limit(), Limit(rate=1, burst=1), clock=clock, sleep=clock.sleep)
    times = starts(limits, clock, ["slow.example", "other.example", "slow.example", "other.example"])
    assert [round(t - 100, 3) for t in times] == [0.0, 0.0, 1 + WINDOW_MARGIN_S, 1 + WINDOW_MARGIN_S]


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
