"""Chat with a model on an Ollama server (or ``holocron serve-models``) over its native API.

``POST /api/chat`` (a conversation) and ``POST /api/generate`` (one prompt), with ``options`` (``num_predict``,
``temperature``, ``seed``, ``num_ctx``, ...), ``keep_alive`` and, under a schema, ``format`` set to the JSON schema
itself (Ollama then decodes under it). Answers are read whole (``stream: false``) or as NDJSON lines as they are
written (``stream: true``); either way the final object's ``prompt_eval_count``, ``eval_count`` and durations
become the :class:`~holocron.chat.base.ChatMetrics`. The identity is the server's: the digest ``ollama list``
shows (``/api/tags``), the context window and details from ``/api/show``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Unpack

from holocron.chat.base import (
    ChatIdentity,
    ChatOptions,
    ChatResult,
    Messages,
    TextCallback,
    as_messages,
    split_model_ref,
)
from holocron.chat.http import ChatHttpClient, ResponseFormatError, check_schema_output, ollama_metrics
from holocron.httpclient import HttpOptions, OllamaModelClient, show_number

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_CHAT_MODEL = "llama3.2"


class OllamaChatProvider(OllamaModelClient):
    """An Ollama model as a :class:`~holocron.chat.base.ChatProvider`; ``http`` takes the
    :class:`~holocron.httpclient.HttpOptions` (``api_key``, ``timeout_s``, ``retry``, ``circuit``, ...)."""

    provider_name = "ollama"
    capability = "completion"
    missing_capability = ": it may not chat"
    http: ChatHttpClient

    def __init__(
        self,
        model: str = DEFAULT_OLLAMA_CHAT_MODEL,
        base_url: str = DEFAULT_OLLAMA_URL,
        *,
        options: ChatOptions | None = None,
        **http: Unpack[HttpOptions],
    ) -> None:
        self.model_name, self.model_tag = split_model_ref(model)
        self.model_ref = f"{self.model_name}:{self.model_tag}"
        self.options = options or ChatOptions()
        self.http = ChatHttpClient(base_url, name="Ollama", describe_error=self._describe_error, **http)
        self.capabilities: list[str] | None = None
        self.details: dict[str, Any] = {}
        self._identity: ChatIdentity | None = None
        self._lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ChatIdentity:
        with self._lock:
            if self._identity is None:
                self._identity = self._discover()
            return self._identity

    def _discover(self) -> ChatIdentity:
        entry = self.find_model()
        digest = self._digest(entry)
        show = self._show()
        details = show.get("details") if isinstance(show.get("details"), dict) else entry.get("details")
        self.details = dict(details) if isinstance(details, dict) else {}
        context = show_number(show, "context_length")
        if self.options.num_ctx:
            context = min(context, self.options.num_ctx) if context else self.options.num_ctx
        return ChatIdentity(
            provider=self.provider_name,
            model_name=self.model_name,
            model_tag=self.model_tag,
            model_digest=digest,
            context_length=context,
            endpoint_url=self.http.shown_url,
        )

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


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if isinstance(value, dict):  # a chat message
        value = value.get("content")
    return value if isinstance(value, str) else ""
