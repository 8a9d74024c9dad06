"""The HTTP embedding providers' side of :mod:`holocron.httpclient`: its retries, backoff and circuit breaker,
raising embedding errors, and what only embedding needs (vector parsing, token-budget batches).

Every error raised here is an :class:`~holocron.embedding.base.EmbeddingError` (so nothing from a failed batch is
stored) and also the neutral class of :mod:`holocron.httpclient` of the same name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from holocron import httpclient
from holocron.embedding.base import EmbeddingError, ModelIdentity, PreprocessPolicy, ProviderStats, Purpose
from holocron.embedding.batching import embed_batched, estimate_tokens
from holocron.httpclient import ErrorDescriber, RetryPolicy, error_text, redact_url
from holocron.vectors import Matrix

__all__ = [
    "BatchedHttpProvider",
    "CircuitBreaker",
    "CircuitOpenError",
    "ErrorDescriber",
    "HttpClient",
    "ModelChangedError",
    "ModelNotFoundError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "ResponseFormatError",
    "RetryPolicy",
    "error_text",
    "json_matrix",
    "redact_url",
]


class ProviderUnavailableError(EmbeddingError, httpclient.ProviderUnavailableError):
    """The server could not be reached or kept failing (connection, timeout, 429, 5xx) after every retry."""


class CircuitOpenError(ProviderUnavailableError, httpclient.CircuitOpenError):
    """Too many consecutive failures: calls fail fast until the circuit's reset time has passed."""


class ProviderRequestError(EmbeddingError, httpclient.ProviderRequestError):
    """The server refused the request (4xx): retrying the same request would fail the same way."""


class ModelNotFoundError(ProviderRequestError, httpclient.ModelNotFoundError):
    """The server does not have the model; the message says how to get it."""


class ResponseFormatError(EmbeddingError, httpclient.ResponseFormatError):
    """The server answered 2xx with a body that is not what its API promises."""


class ModelChangedError(EmbeddingError):
    """The server now serves different weights under the same name: vectors must not join the old space."""


class CircuitBreaker(httpclient.CircuitBreaker):
    """The shared circuit breaker, failing fast with an embedding error."""

    open_error = CircuitOpenError


class HttpClient(httpclient.HttpClient):
    """The shared JSON-over-HTTP client, raising embedding errors."""

    errors = httpclient.ErrorFamily(
        ProviderUnavailableError, CircuitOpenError, ProviderRequestError, ModelNotFoundError, ResponseFormatError
    )
    breaker = CircuitBreaker


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
