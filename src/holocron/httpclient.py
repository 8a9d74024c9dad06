"""What every HTTP model client shares (embedding and chat alike): one retry policy, one circuit breaker, one
error vocabulary.

Retried: connection errors, timeouts, 429 and 5xx (a ``Retry-After`` header is honoured as a floor on the wait).
Not retried: any other 4xx, which is a mistake in the request or the configuration and will not fix itself.
After ``failure_threshold`` consecutive failed attempts (connection errors, timeouts, 5xx) the circuit opens and
calls fail at once, without touching the network, until ``reset_after_s`` has passed; then one trial call is let
through and its outcome closes or reopens the circuit. Secrets travel only in request headers and never appear
in messages, logs or reprs.

The error classes here are neutral; each family of providers (embedding, chat) subclasses them together with its
own base error, and names its classes on its :class:`HttpClient` and :class:`CircuitBreaker` subclasses (an
:class:`ErrorFamily`), so that callers catch ``EmbeddingError`` or ``ChatError`` as before while the machinery
exists once. So does what every client of Ollama's and of OpenAI's API does whatever the model is for: listing the
server's models and finding its own (:class:`OllamaModelClient`, :class:`OpenAIModelClient`), and turning the
server's refusals into the family's errors.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from pydantic import SecretStr

from holocron.backoff import backoff_delay, parse_retry_after
from holocron.identity import split_model_ref

log = logging.getLogger(__name__)


class HttpProviderError(RuntimeError):
    """A call to a model server failed; the family subclasses say which kind of failure."""


class ProviderUnavailableError(HttpProviderError):
    """The server could not be reached or kept failing (connection, timeout, 429, 5xx) after every retry."""


class CircuitOpenError(ProviderUnavailableError):
    """Too many consecutive failures: calls fail fast until the circuit's reset time has passed."""


class ProviderRequestError(HttpProviderError):
    """The server refused the request (4xx): retrying the same request would fail the same way."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelNotFoundError(ProviderRequestError):
    """The server does not have the model; the message says how to get it."""


class ResponseFormatError(HttpProviderError):
    """The server answered 2xx with a body that is not what its API promises."""


@dataclass(frozen=True)
class ErrorFamily:
    """The classes a family's clients raise: its subclasses of the neutral errors above."""

    unavailable: type[ProviderUnavailableError] = ProviderUnavailableError
    circuit_open: type[CircuitOpenError] = CircuitOpenError
    request: type[ProviderRequestError] = ProviderRequestError
    not_found: type[ModelNotFoundError] = ModelNotFoundError
    format: type[ResponseFormatError] = ResponseFormatError


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

    open_error: ClassVar[type[CircuitOpenError]] = CircuitOpenError

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
        """Raise :attr:`open_error` unless a call may go out now."""
        with self._lock:
            if self._opened_at is None:
                return
            waited = self._clock() - self._opened_at
            if waited >= self.reset_after_s and not self._trial_in_flight:
                self._trial_in_flight = True  # half-open: exactly one trial call
                return
            remaining = max(0.0, self.reset_after_s - waited)
            raise self.open_error(
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


ErrorDescriber = Callable[[httpx.Response], Exception]


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


class HttpOptions(TypedDict, total=False):
    """How a provider reaches its server: every HTTP provider takes these keyword arguments for its client."""

    api_key: SecretStr | str | None  # sent as a bearer token; masked in every message
    timeout_s: float  # per request; the family's default when left out
    retry: RetryPolicy | None  # None: the default policy
    circuit: CircuitBreaker | None  # None: a fresh breaker of the family's class
    transport: httpx.BaseTransport | None  # tests: an in-process transport
    sleep: Callable[[float], None]  # tests: record the pauses instead of waiting
    rng: random.Random | None  # tests: a seeded jitter


class HttpClient:
    """A JSON-over-HTTP client with retries, backoff and a circuit breaker; one per provider.

    Subclasses name the error classes raised (their family's), the class of the circuit breaker made when none is
    given and the default timeout; ``describe_error`` turns a refused request (4xx other than 429) into the
    provider's own error.
    """

    errors: ClassVar[ErrorFamily] = ErrorFamily()
    breaker: ClassVar[type[CircuitBreaker]] = CircuitBreaker
    default_timeout_s: ClassVar[float] = 60.0

    def __init__(
        self, base_url: str, *, name: str, describe_error: ErrorDescriber, **options: Unpack[HttpOptions]
    ) -> None:
        api_key = options.get("api_key")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.name = name
        self.retry = options.get("retry") or RetryPolicy()
        self.circuit = options.get("circuit") or self.breaker()
        self.describe_error = describe_error
        self.has_api_key = bool(key)
        self._secrets = (key,) if key else ()
        self._sleep = options.get("sleep", time.sleep)
        self._rng = options.get("rng")
        self.attempts = 0  # every HTTP attempt, retries included: for tests and metrics
        self.retries = 0
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(options.get("timeout_s", self.default_timeout_s)),
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
            transport=options.get("transport"),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.shown_url!r})"

    @property
    def what(self) -> str:
        return f"{self.name} at {self.shown_url}"

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
        return self.parse_json_bytes(response.content, path)

    def parse_json_bytes(self, content: bytes | str, path: str) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(content)
        except ValueError as exc:
            raise self.errors.format(f"{self.what}{path} answered with invalid JSON: {exc}") from None

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One logical call: retried on transient failures, raising the family's errors otherwise."""
        return self._send(method, path, body, stream=False)

    @contextmanager
    def stream(self, method: str, path: str, body: Any = None) -> Iterator[httpx.Response]:
        """A call whose body is read as it arrives (NDJSON, server-sent events).

        Retried exactly like :meth:`request` until the server answers with a success status; once the body
        streams, a broken or stalled connection is the family's ``unavailable`` error (a half-read answer is never
        retried behind the caller's back, since the caller may already have used part of it).
        """
        response = self._send(method, path, body, stream=True)
        try:
            yield response
        finally:
            response.close()

    def iter_lines(self, response: httpx.Response, path: str) -> Iterator[str]:
        """The lines of a streaming body; transport failures mid-stream are the family's ``unavailable`` error."""
        try:
            yield from response.iter_lines()
        except httpx.TimeoutException:
            self.circuit.record_failure()
            raise self.errors.unavailable(
                f"{self.what}: the stream from {path} stalled for more than {self._client.timeout.read}s"
            ) from None
        except httpx.TransportError as exc:
            self.circuit.record_failure()
            raise self.errors.unavailable(
                f"{self.what}: the stream from {path} broke off: {type(exc).__name__}: {self.scrub(str(exc))}"
            ) from None

    def _send(self, method: str, path: str, body: Any, *, stream: bool) -> httpx.Response:
        what = self.what
        content = orjson.dumps(body) if body is not None else None
        retry_number = 0
        while True:
            try:
                self.circuit.before_call(what)
            except CircuitOpenError as exc:  # a breaker of another family: same failure, this family's class
                if isinstance(exc, self.errors.circuit_open):
                    raise
                raise self.errors.circuit_open(str(exc)) from None
            self.attempts += 1
            retry_after: float | None = None
            try:
                request = self._client.build_request(method, path, content=content)
                response = self._client.send(request, stream=stream)
                if stream and response.status_code >= 400:
                    try:
                        response.read()  # the error body, for the message
                    finally:
                        response.close()
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
                raise self.errors.unavailable(f"{what}: {failure}; gave up after {attempts} attempts")
            if opened:
                raise self.errors.circuit_open(
                    f"{what}: {failure}; circuit open after {self.circuit.consecutive_failures} consecutive failures"
                )
            if retry_after is not None and retry_after > self.retry.max_retry_after_s:
                raise self.errors.unavailable(
                    f"{what}: {failure}; the server asks to retry after {retry_after:.0f}s, "
                    f"more than the {self.retry.max_retry_after_s:.0f}s limit"
                )
            delay = self.retry.delay(retry_number, retry_after, self._rng)
            self.retries += 1
            log.warning("%s: %s; retry %d of %d in %.2fs", what, failure, retry_number, self.retry.max_retries, delay)
            self._sleep(delay)


# -- Ollama's and OpenAI's APIs, as every client of them reads them -----------------------------------------------

UNVERSIONED = "unversioned"  # the digest of a model whose server publishes none


def positive_int(value: Any, *, zero: bool = False) -> int | None:
    """A count or a length from a server's JSON: a whole number above zero (or zero, with ``zero``), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 or (zero and number == 0) else None


def show_number(show: Mapping[str, Any], field: str) -> int | None:
    """``<architecture>.<field>`` of the ``model_info`` in Ollama's ``/api/show`` answer (``context_length``,
    ``embedding_length``), when it is a positive whole number."""
    info = show.get("model_info")
    if not isinstance(info, dict):
        return None
    architecture = info.get("general.architecture")
    return positive_int(info.get(f"{architecture}.{field}")) if architecture else None


class OllamaModelClient:
    """What a client of Ollama's API does alike whatever its model is for: list the server's models
    (``/api/tags``), find its own, read ``/api/show`` and name the server's refusals in the family's errors.

    The class using it sets ``http`` and ``model_ref`` (``name:tag``), ``capability`` (what ``/api/show`` must list
    for the model to do its work) and ``missing_capability`` (the end of the warning when it does not).
    """

    http: HttpClient
    model_ref: str
    capabilities: list[str] | None
    capability: ClassVar[str]
    missing_capability: ClassVar[str]
    pull_hint: ClassVar[str] = ""  # the end of the message for a model the server does not have

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_ref!r}, {self.http.shown_url!r})"

    def close(self) -> None:
        self.http.close()

    def list_models(self) -> list[dict[str, Any]]:
        """The server's ``/api/tags`` entries: what ``ollama list`` shows."""
        data = self.http.get_json("/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise self.http.errors.format(f"Ollama at {self.http.shown_url}/api/tags: no 'models' list")
        return [m for m in models if isinstance(m, dict)]

    def find_model(self) -> dict[str, Any]:
        """This model's ``/api/tags`` entry, or :class:`ModelNotFoundError` saying how to pull it."""
        wanted = self.model_ref.lower()
        for entry in self.list_models():
            for key in ("name", "model"):
                name = str(entry.get(key) or "")
                if name and "{}:{}".format(*split_model_ref(name)).lower() == wanted:
                    return entry
        raise self.http.errors.not_found(self._not_found_message(), status=404)

    def _digest(self, entry: Mapping[str, Any]) -> str:
        """``sha256:<hex>`` of this model's ``/api/tags`` entry, which must carry one."""
        digest = str(entry.get("digest") or "").strip().lower().removeprefix("sha256:")
        if not digest:
            raise self.http.errors.format(f"Ollama lists {self.model_ref} without a digest")
        return f"sha256:{digest}"

    def _show(self) -> dict[str, Any]:
        """``/api/show`` for the model (``{}`` for an answer that is not an object); notes its capabilities, with a
        warning when they leave out :attr:`capability`."""
        show = self.http.post_json("/api/show", {"model": self.model_ref})
        show = show if isinstance(show, dict) else {}
        capabilities = show.get("capabilities")
        self.capabilities = [str(c) for c in capabilities] if isinstance(capabilities, list) else None
        if self.capabilities is not None and self.capability not in self.capabilities:
            logging.getLogger(type(self).__module__).warning(
                "Ollama model %s does not list the '%s' capability (%s)%s",
                self.model_ref,
                self.capability,
                ", ".join(self.capabilities),
                self.missing_capability,
            )
        return show

    def _not_found_message(self) -> str:
        return (
            f"model {self.model_ref} is not on the Ollama server at {self.http.shown_url}: "
            f"run `ollama pull {self.model_ref}` there{self.pull_hint}"
        )

    def _describe_error(self, response: httpx.Response) -> HttpProviderError:
        detail = self.http.scrub(error_text(response))
        status = response.status_code
        if status == 404 and "not found" in detail.lower():
            return self.http.errors.not_found(f"{self._not_found_message()} ({detail})", status=status)
        path = response.request.url.path
        return self.http.errors.request(
            f"Ollama at {self.http.shown_url} refused {path} ({status}): {detail}", status=status
        )


class OpenAIModelClient:
    """What a client of an OpenAI-compatible API does alike whatever its model is for: list the server's models
    (``/models``), find its own and name the server's refusals in the family's errors.

    The class using it sets ``http`` and ``model_id``; ``not_found_hint`` and ``no_key_hint`` end the messages
    for a model the server does not serve and for a request refused without a key.
    """

    http: HttpClient
    model_id: str
    not_found_hint: ClassVar[str] = ""
    no_key_hint: ClassVar[str] = "no API key was sent"

    @property
    def has_api_key(self) -> bool:
        return self.http.has_api_key

    def __repr__(self) -> str:
        key = "set" if self.has_api_key else "none"
        return f"{type(self).__name__}({self.model_id!r}, {self.http.shown_url!r}, api_key={key})"

    def close(self) -> None:
        self.http.close()

    def list_models(self) -> list[dict[str, Any]] | None:
        """The server's ``/models`` entries, or None for a server that does not list them."""
        try:
            data = self.http.get_json("/models")
        except ProviderRequestError as exc:
            if exc.status in (404, 405, 501):
                return None
            raise
        models = data.get("data") if isinstance(data, dict) else None
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else None

    def find_model(self) -> dict[str, Any] | None:
        """This model's ``/models`` entry; None when the server lists nothing; an error when it lists others."""
        models = self.list_models()
        if models is None:
            return None
        for entry in models:
            if str(entry.get("id", "")) == self.model_id:
                return entry
        served = ", ".join(str(m.get("id")) for m in models[:10]) or "nothing"
        raise self.http.errors.not_found(
            f"model {self.model_id!r} is not served at {self.http.shown_url} (it serves: {served})", status=404
        )

    @staticmethod
    def _digest(entry: Mapping[str, Any] | None) -> str:
        """The digest a ``/models`` entry carries (as ``serve-models`` adds), else :data:`UNVERSIONED`."""
        digest = str((entry or {}).get("digest") or "").strip().lower()
        if not digest:
            return UNVERSIONED
        return digest if digest.startswith("sha256:") else f"sha256:{digest}"

    def _describe_error(self, response: httpx.Response) -> HttpProviderError:
        status = response.status_code
        detail = self.http.scrub(error_text(response))
        where = f"{self.http.name} at {self.http.shown_url}"
        if status == 404 or _error_code(response) == "model_not_found":
            return self.http.errors.not_found(
                f"model {self.model_id!r} is not served at {self.http.shown_url} ({status}: {detail})"
                f"{self.not_found_hint}",
                status=status,
            )
        if status in (401, 403):
            how = "check the API key" if self.has_api_key else self.no_key_hint
            return self.http.errors.request(f"{where} refused the request ({status}: {detail}); {how}", status=status)
        path = response.request.url.path
        return self.http.errors.request(f"{where} refused {path} ({status}): {detail}", status=status)


def _error_code(response: httpx.Response) -> str | None:
    """OpenAI's ``error.code`` (``model_not_found``, ``invalid_api_key``) of an error body."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else None
