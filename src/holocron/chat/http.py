"""The HTTP chat providers' side of :mod:`holocron.httpclient`: the same retries, backoff and circuit breaker as
the embedding providers, raising chat errors, and the two ways a streamed answer arrives (NDJSON, SSE).

Every error raised here is a :class:`~holocron.chat.base.ChatError` and also the neutral class of
:mod:`holocron.httpclient` of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import orjson

from holocron import httpclient
from holocron.chat.base import ChatError, ChatMetrics, InvalidOutputError
from holocron.httpclient import RetryPolicy, error_text, redact_url

__all__ = [
    "ChatHttpClient",
    "CircuitBreaker",
    "CircuitOpenError",
    "ModelNotFoundError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "ResponseFormatError",
    "RetryPolicy",
    "check_schema_output",
    "error_text",
    "ollama_metrics",
    "redact_url",
]


class ProviderUnavailableError(ChatError, httpclient.ProviderUnavailableError):
    """The server could not be reached or kept failing (connection, timeout, 429, 5xx) after every retry."""


class CircuitOpenError(ProviderUnavailableError, httpclient.CircuitOpenError):
    """Too many consecutive failures: calls fail fast until the circuit's reset time has passed."""


class ProviderRequestError(ChatError, httpclient.ProviderRequestError):
    """The server refused the request (4xx): retrying the same request would fail the same way."""


class ModelNotFoundError(ProviderRequestError, httpclient.ModelNotFoundError):
    """The server does not have the model; the message says how to get it."""


class ResponseFormatError(ChatError, httpclient.ResponseFormatError):
    """The server answered 2xx with a body that is not what its API promises."""


class CircuitBreaker(httpclient.CircuitBreaker):
    """The shared circuit breaker, failing fast with a chat error."""

    open_error = CircuitOpenError


class ChatHttpClient(httpclient.HttpClient):
    """The shared JSON-over-HTTP client, raising chat errors, with the two streaming formats; answers take longer
    than embeddings, hence the longer default timeout."""

    errors = httpclient.ErrorFamily(
        ProviderUnavailableError, CircuitOpenError, ProviderRequestError, ModelNotFoundError, ResponseFormatError
    )
    breaker = CircuitBreaker
    default_timeout_s = 120.0

    def ndjson(self, response: httpx.Response, path: str) -> Iterator[dict[str, Any]]:
        """Ollama's streaming body: one JSON object a line; an ``{"error": ...}`` line is the server failing."""
        for line in self.iter_lines(response, path):
            if not line.strip():
                continue
            item = self.parse_json_bytes(line, path)
            if not isinstance(item, dict):
                raise ResponseFormatError(f"{self.what}{path}: a streamed line is not a JSON object")
            if "error" in item and not item.get("done"):
                raise ProviderUnavailableError(
                    f"{self.what}{path}: the server failed mid-answer: {self.scrub(str(item['error']))}"
                )
            yield item

    def sse(self, response: httpx.Response, path: str) -> Iterator[dict[str, Any]]:
        """Server-sent events as OpenAI sends them: ``data: {json}`` lines, ended by ``data: [DONE]``."""
        done = False
        for line in self.iter_lines(response, path):
            if not line.startswith("data:"):
                continue  # blank separators, comments (": keep-alive"), event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            item = self.parse_json_bytes(data, path)
            if not isinstance(item, dict):
                raise ResponseFormatError(f"{self.what}{path}: an event is not a JSON object")
            if isinstance(item.get("error"), dict | str):
                detail = item["error"].get("message") if isinstance(item["error"], dict) else item["error"]
                raise ProviderUnavailableError(
                    f"{self.what}{path}: the server failed mid-answer: {self.scrub(str(detail))}"
                )
            yield item
        if not done:
            raise ProviderUnavailableError(f"{self.what}{path}: the stream ended without data: [DONE]")


def ollama_metrics(body: Mapping[str, Any]) -> ChatMetrics:
    """The counts and nanosecond durations of an Ollama response (and of ``holocron serve-models``)."""

    def number(key: str) -> int | None:
        value = body.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return ChatMetrics(
        prompt_eval_count=number("prompt_eval_count"),
        eval_count=number("eval_count"),
        total_duration=number("total_duration"),
        load_duration=number("load_duration"),
        prompt_eval_duration=number("prompt_eval_duration"),
        eval_duration=number("eval_duration"),
    )


def check_schema_output(text: str, schema: Mapping[str, Any] | None, what: str) -> None:
    """With a schema, the answer must at least be a JSON value of the schema's top-level type.

    Servers are asked to decode under the schema; one that ignored the request (an older server, a model without
    support) must not hand on free text as if it were structured. Full validation is the caller's (pydantic).
    """
    if schema is None:
        return
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidOutputError(
            f"{what}: asked for JSON under a schema, got text that is not JSON ({exc})", text=text
        ) from None
    expected = schema.get("type")
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
    if isinstance(expected, str) and expected in kinds and not isinstance(value, kinds[expected]):
        raise InvalidOutputError(f"{what}: asked for a JSON {expected}, got {type(value).__name__}", text=text)
