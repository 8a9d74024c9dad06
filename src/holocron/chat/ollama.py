"""Chat with a model on an Ollama server (or ``holocron serve-models``) over its native API.

``POST /api/chat`` (a conversation) and ``POST /api/generate`` (one prompt), with ``options`` (``num_predict``,
``temperature``, ``seed``, ``num_ctx``, ...), ``keep_alive`` and, under a schema, ``format`` set to the JSON schema
itself (Ollama then decodes under it). Answers are read whole (``stream: false``) or as NDJSON lines as they are
written (``stream: true``); either way the final object's ``prompt_eval_count``, ``eval_count`` and durations
become the :class:`~holocron.chat.base.ChatMetrics`. The identity is the server's: the digest ``ollama list``
shows (``/api/tags``), the context window and details from ``/api/show``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from holocron.chat.base import (
    ChatError,
    ChatIdentity,
    ChatOptions,
    ChatResult,
    Messages,
    TextCallback,
    as_messages,
    split_model_ref,
)
from holocron.chat.http import (
    ChatHttpClient,
    CircuitBreaker,
    ModelNotFoundError,
    ProviderRequestError,
    ResponseFormatError,
    RetryPolicy,
    check_schema_output,
    error_text,
    ollama_metrics,
)

log = logging.getLogger(__name__)

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_CHAT_MODEL = "llama3.2"


class OllamaChatProvider:
    """An Ollama model as a :class:`~holocron.chat.base.ChatProvider`."""

    provider_name = "ollama"

    def __init__(
        self,
        model: str = DEFAULT_OLLAMA_CHAT_MODEL,
        base_url: str = DEFAULT_OLLAMA_URL,
        *,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        circuit: CircuitBreaker | None = None,
        options: ChatOptions | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.model_name, self.model_tag = split_model_ref(model)
        self.model_ref = f"{self.model_name}:{self.model_tag}"
        self.options = options or ChatOptions()
        self.http = ChatHttpClient(
            base_url,
            name="Ollama",
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
            circuit=circuit or CircuitBreaker(),
            describe_error=self._describe_error,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            secrets=(api_key,) if api_key else (),
            transport=transport,
            sleep=sleep,
            rng=rng,
        )
        self.capabilities: list[str] | None = None
        self.details: dict[str, Any] = {}
        self._identity: ChatIdentity | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OllamaChatProvider({self.model_ref!r}, {self.http.shown_url!r})"

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ChatIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = self._discover()
            return self._identity

    def _discover(self) -> ChatIdentity:
        entry = self.find_model()
        digest = str(entry.get("digest") or "").strip().lower().removeprefix("sha256:")
        if not digest:
            raise ResponseFormatError(f"Ollama lists {self.model_ref} without a digest")
        show = self.http.post_json("/api/show", {"model": self.model_ref})
        show = show if isinstance(show, dict) else {}
        info = show.get("model_info") if isinstance(show.get("model_info"), dict) else {}
        details = show.get("details") if isinstance(show.get("details"), dict) else entry.get("details")
        self.details = dict(details) if isinstance(details, dict) else {}
        capabilities = show.get("capabilities")
        self.capabilities = [str(c) for c in capabilities] if isinstance(capabilities, list) else None
        if self.capabilities is not None and "completion" not in self.capabilities:
            log.warning(
                "Ollama model %s does not list the 'completion' capability (%s): it may not chat",
                self.model_ref,
                ", ".join(self.capabilities),
            )
        architecture = info.get("general.architecture") if isinstance(info, dict) else None
        context = _int(info.get(f"{architecture}.context_length")) if architecture and isinstance(info, dict) else None
        if self.options.num_ctx:
            context = min(context, self.options.num_ctx) if context else self.options.num_ctx
        return ChatIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag=self.model_tag,
            model_digest=f"sha256:{digest}",
            context_length=context,
            endpoint_url=self.http.shown_url,
        )

    def list_models(self) -> list[dict[str, Any]]:
        """The server's ``/api/tags`` entries: what ``ollama list`` shows."""
        data = self.http.get_json("/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ResponseFormatError(f"Ollama at {self.http.shown_url}/api/tags: no 'models' list")
        return [m for m in models if isinstance(m, dict)]

    def find_model(self) -> dict[str, Any]:
        """This model's ``/api/tags`` entry, or :class:`ModelNotFoundError` saying how to pull it."""
        wanted = self.model_ref.lower()
        for entry in self.list_models():
            for key in ("name", "model"):
                name = str(entry.get(key) or "")
                if name and "{}:{}".format(*split_model_ref(name)).lower() == wanted:
                    return entry
        raise ModelNotFoundError(self._not_found_message(), status=404)

    # -- answering -----------------------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        *,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        body = self._body(options, schema, stream=on_text is not None)
        body["messages"] = as_messages(messages)
        return self._call("/api/chat", body, schema, on_text, "message")

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        body = self._body(options, schema, stream=on_text is not None)
        body["prompt"] = prompt
        if system:
            body["system"] = system
        return self._call("/api/generate", body, schema, on_text, "response")

    def _body(self, options: ChatOptions | None, schema: Mapping[str, Any] | None, *, stream: bool) -> dict[str, Any]:
        chosen = options or self.options
        body: dict[str, Any] = {"model": self.model_ref, "stream": stream, "options": chosen.ollama_options()}
        if schema is not None:
            body["format"] = dict(schema)
        if chosen.keep_alive is not None:
            body["keep_alive"] = chosen.keep_alive
        return body

    def _call(
        self,
        path: str,
        body: dict[str, Any],
        schema: Mapping[str, Any] | None,
        on_text: TextCallback | None,
        key: str,
    ) -> ChatResult:
        """One call; ``key`` names where the text is (``message.content`` for chat, ``response`` for generate)."""
        where = f"Ollama at {self.http.shown_url}{path}"
        if on_text is None:
            data = self.http.post_json(path, body)
            if not isinstance(data, dict) or key not in data or not data.get("done", True):
                raise ResponseFormatError(f"{where}: the answer is not a finished response object with '{key}'")
            text = _text(data, key)
            final = data
        else:
            pieces: list[str] = []
            final = {}
            with self.http.stream("POST", path, body) as response:
                for item in self.http.ndjson(response, path):
                    piece = _text(item, key)
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
                    if item.get("done"):
                        final = item
                        break
            if not final:
                raise ResponseFormatError(f"{where}: the stream ended without its final (done) object")
            text = "".join(pieces)
        check_schema_output(text, schema, where)
        reason = final.get("done_reason")
        return ChatResult(
            text=text,
            model=str(final.get("model") or self.model_ref),
            done_reason=str(reason) if reason else None,
            metrics=ollama_metrics(final),
            raw=final,
        )

    def close(self) -> None:
        self.http.close()

    # -- errors --------------------------------------------------------------------------------

    def _not_found_message(self) -> str:
        return (
            f"model {self.model_ref} is not on the Ollama server at {self.http.shown_url}: "
            f"run `ollama pull {self.model_ref}` there"
        )

    def _describe_error(self, response: httpx.Response) -> ChatError:
        detail = self.http.scrub(error_text(response))
        status = response.status_code
        if status == 404 and "not found" in detail.lower():
            return ModelNotFoundError(f"{self._not_found_message()} ({detail})", status=status)
        path = response.request.url.path
        return ProviderRequestError(
            f"Ollama at {self.http.shown_url} refused {path} ({status}): {detail}", status=status
        )


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if isinstance(value, dict):  # a chat message
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
