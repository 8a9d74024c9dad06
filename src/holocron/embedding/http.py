"""What every HTTP embedding provider shares: one retry policy, one circuit breaker, one error vocabulary.

Retried: connection errors, timeouts, 429 and 5xx (a ``Retry-After`` header is honoured as a floor on the wait).
Not retried: any other 4xx, which is a mistake in the request or the configuration and will not fix itself.
After ``failure_threshold`` consecutive failed attempts (connection errors, timeouts, 5xx) the circuit opens and
calls fail at once, without touching the network, until ``reset_after_s`` has passed; then one trial call is let
through and its outcome closes or reopens the circuit. Secrets travel only in request headers and never appear
in messages, logs or reprs.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import orjson

from holocron.backoff import backoff_delay, parse_retry_after
from holocron.embedding.base import EmbeddingError, ModelIdentity, PreprocessPolicy, ProviderStats, Purpose
from holocron.embedding.batching import embed_batched, estimate_tokens
from holocron.vectors import Matrix

log = logging.getLogger(__name__)


class ProviderUnavailableError(EmbeddingError):
    """The server could not be reached or kept failing (connection, timeout, 429, 5xx) after every retry."""


class CircuitOpenError(ProviderUnavailableError):
    """Too many consecutive failures: calls fail fast until the circuit's reset time has passed."""


class ProviderRequestError(EmbeddingError):
    """The server refused the request (4xx): retrying the same request would fail the same way."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelNotFoundError(ProviderRequestError):
    """The server does not have the model; the message says how to get it."""


class ResponseFormatError(EmbeddingError):
    """The server answered 2xx with a body that is not what its API promises."""


class ModelChangedError(EmbeddingError):
    """The server now serves different weights under the same name: vectors must not join the old space."""


def redact_url(url: str) -> str:
    """The URL without any user:password part, for messages and stored endpoint URLs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry; the delay formula itself lives in :mod:`holocron.backoff`."""

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    jitter: float = 0.5
    max_retry_after_s: float = 120.0

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds before retry ``retry_number``: the backoff, or the server's Retry-After if that is longer."""
        backoff = backoff_delay(
            retry_number, base=self.backoff_base_s, cap=self.backoff_cap_s, jitter=self.jitter, rng=rng
        )
        return max(backoff, retry_after or 0.0)


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after a pause -> closed on one success."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self, what: str) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited >= self.reset_after_s and not self._trial_in_flight:
                self._trial_in_flight = True  # half-open: exactly one trial call
                return
            remaining = max(0.0, self.reset_after_s - waited)
            raise CircuitOpenError(
                f"{what}: circuit open after {self._failures} consecutive failures; "
                f"failing fast for another {remaining:.1f}s"
            )

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def abandon_trial(self) -> None:
        """A half-open trial ended without an answer either way (the caller failed): free the slot."""
        with self._lock:
            self._trial_in_flight = False

    def record_failure(self) -> bool:
        """Count a failure; True when the circuit is (now) open."""
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._trial_in_flight = False
            return self._opened_at is not None


ErrorDescriber = Callable[[httpx.Response], EmbeddingError]


def error_text(response: httpx.Response) -> str:
    """The server's own words from an error body (Ollama's ``{"error": "..."}``, OpenAI's ``{"error": {...}}``)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return response.text.strip()[:300]


class HttpClient:
    """A JSON-over-HTTP client with retries, backoff and a circuit breaker; one per provider."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        timeout_s: float,
        retry: RetryPolicy,
        circuit: CircuitBreaker,
        describe_error: ErrorDescriber,
        headers: Mapping[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.name = name
        self.retry = retry
        self.circuit = circuit
        self.describe_error = describe_error
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self._rng = rng
        self.attempts = 0  # every HTTP attempt, retries included: for tests and metrics
        self.retries = 0
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"Content-Type": "application/json", **(headers or {})},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpClient({self.name!r}, {self.shown_url!r})"

    def scrub(self, text: str) -> str:
        """``text`` with every configured secret masked: servers sometimes echo a key in an error message."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self._client.close()

    def get_json(self, path: str) -> Any:
        return self.parse_json(self.request("GET", path), path)

    def post_json(self, path: str, body: Any) -> Any:
        return self.parse_json(self.request("POST", path, body), path)

    def parse_json(self, response: httpx.Response, path: str) -> Any:
        """The body as JSON; ``NaN`` and ``Infinity`` literals are let through so that validation can name them."""
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise ResponseFormatError(
                f"{self.name} at {self.shown_url}{path} answered with invalid JSON: {exc}"
            ) from None

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One logical call: retried on transient failures, raising an :class:`EmbeddingError` subclass otherwise."""
        what = f"{self.name} at {self.shown_url}"
        content = orjson.dumps(body) if body is not None else None
        retry_number = 0
        while True:
            self.circuit.before_call(what)
            self.attempts += 1
            retry_after: float | None = None
            try:
                response = self._client.request(method, path, content=content)
            except httpx.TimeoutException:
                failure = f"no answer within {self._client.timeout.read}s ({method} {path})"
                opened = self.circuit.record_failure()
            except httpx.TransportError as exc:
                failure = f"connection failed ({method} {path}): {type(exc).__name__}: {self.scrub(str(exc))}"
                opened = self.circuit.record_failure()
            except BaseException:
                self.circuit.abandon_trial()  # not the server's fault: let a later call make the trial
                raise
            else:
                status = response.status_code
                if status < 400:
                    self.circuit.record_success()
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail = self.scrub(error_text(response))
                if status == 429:
                    failure = f"rate limited (429) on {method} {path}: {detail}"
                    self.circuit.record_success()  # alive and answering on purpose: not a health failure
                    opened = False
                elif status >= 500:
                    failure = f"server error {status} on {method} {path}: {detail}"
                    opened = self.circuit.record_failure()
                else:
                    self.circuit.record_success()  # the server is healthy; the request is wrong
                    raise self.describe_error(response)
            retry_number += 1
            if retry_number > self.retry.max_retries:
                attempts = retry_number
                raise ProviderUnavailableError(f"{what}: {failure}; gave up after {attempts} attempts")
            if opened:
                raise CircuitOpenError(
                    f"{what}: {failure}; circuit open after {self.circuit.consecutive_failures} consecutive failures"
                )
            if retry_after is not None and retry_after > self.retry.max_retry_after_s:
                raise ProviderUnavailableError(
                    f"{what}: {failure}; the server asks to retry after {retry_after:.0f}s, "
                    f"more than the {self.retry.max_retry_after_s:.0f}s limit"
                )
            delay = self.retry.delay(retry_number, retry_after, self._rng)
            self.retries += 1
            log.warning("%s: %s; retry %d of %d in %.2fs", what, failure, retry_number, self.retry.max_retries, delay)
            self._sleep(delay)


def json_matrix(rows: Any, *, dimensions: int, what: str) -> Matrix:
    """A JSON array of number arrays as float32; ``null`` becomes NaN so that validation can name the input."""
    if not isinstance(rows, list):
        raise ResponseFormatError(f"{what}: expected a list of vectors, got {type(rows).__name__}")
    if not rows:
        return np.zeros((0, dimensions), dtype=np.float32)
    if not all(isinstance(row, list) for row in rows):
        raise ResponseFormatError(f"{what}: expected every vector to be a list of numbers")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise ResponseFormatError(f"{what}: vectors of different lengths {sorted(widths)}")
    try:
        return np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        try:
            cleaned = [[math.nan if value is None else float(value) for value in row] for row in rows]
        except (TypeError, ValueError) as exc:
            raise ResponseFormatError(f"{what}: vectors contain values that are not numbers: {exc}") from None
        return np.asarray(cleaned, dtype=np.float32)


class BatchedHttpProvider:
    """What the HTTP providers share: prefixes, token-budget batches in input order, stats.

    A subclass supplies ``identity()``, ``check_unchanged()``, ``_request(inputs)`` and the attributes
    ``preprocess``, ``batch_size``, ``batch_tokens`` and ``stats``.
    """

    preprocess: PreprocessPolicy
    batch_size: int
    batch_tokens: int
    stats: ProviderStats

    def identity(self) -> ModelIdentity:
        raise NotImplementedError

    def check_unchanged(self, *, force: bool = False) -> None:
        raise NotImplementedError

    def _request(self, inputs: list[str], count: bool = True) -> Matrix:
        raise NotImplementedError

    def _token_cap(self, identity: ModelIdentity) -> int | None:
        """The most tokens one input can cost the server (its window, when it truncates)."""
        return identity.max_input_tokens

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        identity = self.identity()
        if not texts:
            return np.zeros((0, identity.dimensions), dtype=np.float32)
        self.check_unchanged()
        inputs = self.preprocess.apply(texts, purpose)
        counts = estimate_tokens(inputs, max_tokens=self._token_cap(identity))
        started = time.perf_counter()
        try:
            return embed_batched(
                inputs,
                counts,
                self._request,
                max_items=self.batch_size,
                max_tokens=self.batch_tokens,
                dimensions=identity.dimensions,
            )
        finally:
            self.stats.seconds += time.perf_counter() - started
            self.stats.texts += len(inputs)
