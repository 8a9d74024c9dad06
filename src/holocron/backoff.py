"""The one backoff formula: every retry loop in the system (HTTP providers, the job queue) imports it from here.

Pure functions, no I/O and no clock, so that callers and tests can reason about delays exactly.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Exponential (``base * 2**(attempt - 1)``), capped at ``cap``, and the top ``jitter`` fraction of it drawn at
    random so that many clients failing together do not retry together. The result always lies in
    ``[d * (1 - jitter), d]`` where ``d`` is the capped exponential delay: bounded below, so a retry
    never comes sooner than promised, and never above ``cap``.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be a fraction within [0, 1], got {jitter}")
    exponent = min(attempt - 1, 63)  # 2**63 * base is beyond any cap; avoids float overflow
    delay = min(cap, base * math.ldexp(1.0, exponent))
    spread = delay * jitter
    draw = (rng or random).random() if spread else 0.0
    return delay - spread + spread * draw


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
