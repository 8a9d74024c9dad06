"""Chat with any OpenAI-compatible server: hosted APIs, vLLM, llama.cpp server, Ollama's ``/v1``, or
``holocron serve-models``.

``POST {base_url}/chat/completions`` with ``max_tokens``, ``temperature``, ``seed``, ``top_p``, ``stop`` and, under a
schema, ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}``. Answers
are read whole or as server-sent events (``data: {...}`` chunks, ``data: [DONE]``; ``stream_options.include_usage``
asks for the token counts in a last chunk). The API reports tokens, not durations: ``usage.prompt_tokens`` and
``usage.completion_tokens`` become ``prompt_eval_count`` and ``eval_count``, and ``total_duration`` is the call's
wall time measured here. The bearer token lives only in the request header and is masked in every message.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any, Unpack

from holocron.chat.base import (
    ChatError,
    ChatIdentity,
    ChatMetrics,
    ChatOptions,
    ChatProvider,
    ChatResult,
    Messages,
    TextCallback,
    as_messages,
)
from holocron.chat.http import ChatHttpClient, ResponseFormatError, check_schema_output
from holocron.httpclient import HttpOptions, OpenAIModelClient, positive_int

DEFAULT_OPENAI_URL = "http://localhost:8000/v1"
DEFAULT_OPENAI_CHAT_MODEL = "gpt-4o-mini"


class OpenAIChatProvider(OpenAIModelClient, ChatProvider):
    """A model behind ``/v1/chat/completions`` as a :class:`~holocron.chat.base.ChatProvider`; ``http`` takes the
    :class:`~holocron.httpclient.HttpOptions` (``api_key``, ``timeout_s``, ``retry``, ``circuit``, ...)."""

    provider_name = "openai"
    http: ChatHttpClient

    def __init__(
        self,
        model: str = DEFAULT_OPENAI_CHAT_MODEL,
        base_url: str = DEFAULT_OPENAI_URL,
        *,
        options: ChatOptions | None = None,
        context_length: int | None = None,
        **http: Unpack[HttpOptions],
    ) -> None:
        self.model_id = model.strip()
        self.options = options or ChatOptions()
        self.configured_context = context_length
        self.http = ChatHttpClient(
            base_url, name="OpenAI-compatible server", describe_error=self._describe_error, **http
        )
        self._identity: ChatIdentity | None = None
        self._lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ChatIdentity:
        with self._lock:
            if self._identity is None:
                entry = self.find_model() or {}
                self._identity = ChatIdentity(
                    provider=self.provider_name,
                    model_name=self.model_id,
                    model_tag="latest",
                    model_digest=self._digest(entry),
                    context_length=self.configured_context or positive_int(entry.get("max_model_len")),
                    endpoint_url=self.http.shown_url,
                )
            return self._identity

    # -- answering -----------------------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        *,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        chosen = options or self.options
        body: dict[str, Any] = {"model": self.model_id, "messages": as_messages(messages)}
        values = {
            "max_tokens": chosen.num_predict,
            "temperature": chosen.temperature,
            "seed": chosen.seed,
            "top_p": chosen.top_p,
            "stop": list(chosen.stop) or None,
        }
        body.update({key: value for key, value in values.items() if value is not None})
        if schema is not None:
            body["response_format"] = response_format(schema)
        started = time.perf_counter_ns()
        if on_text is None:
            body["stream"] = False
            data = self.http.post_json("/chat/completions", body)
            text, reason, usage, final = self._whole(data)
        else:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            text, reason, usage, final = self._streamed(body, on_text)
        check_schema_output(text, schema, f"{self.http.name} at {self.http.shown_url}/chat/completions")
        metrics = ChatMetrics(
            prompt_eval_count=positive_int(usage.get("prompt_tokens"), zero=True),
            eval_count=positive_int(usage.get("completion_tokens"), zero=True),
            total_duration=time.perf_counter_ns() - started,
        )
        return ChatResult(
            text=text, model=str(final.get("model") or self.model_id), done_reason=reason, metrics=metrics, raw=final
        )

    def _whole(self, data: Any) -> tuple[str, str | None, dict[str, Any], dict[str, Any]]:
        where = f"{self.http.name} at {self.http.shown_url}/chat/completions"
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ResponseFormatError(f"{where}: no 'choices' in the answer")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise ResponseFormatError(f"{where}: the first choice has no 'message'")
        content = message.get("content")
        if content is None and message.get("refusal"):
            raise ChatError(f"{where}: the model refused: {message['refusal']}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        reason = choices[0].get("finish_reason")
        return str(content or ""), str(reason) if reason else None, usage, data

    def _streamed(
        self, body: dict[str, Any], on_text: TextCallback
    ) -> tuple[str, str | None, dict[str, Any], dict[str, Any]]:
        pieces: list[str] = []
        reason: str | None = None
        usage: dict[str, Any] = {}
        last: dict[str, Any] = {}
        with self.http.stream("POST", "/chat/completions", body) as response:
            for chunk in self.http.sse(response, "/chat/completions"):
                last = chunk
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta")
                    piece = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(piece, str) and piece:
                        pieces.append(piece)
                        on_text(piece)
                    if choice.get("finish_reason"):
                        reason = str(choice["finish_reason"])
        text = "".join(pieces)
        final = {**last, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        final["choices"][0]["finish_reason"] = reason
        if usage:
            final["usage"] = usage
        return text, reason, usage, final


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's structured-output request for a JSON schema (strict: the server must decode under it)."""
    title = schema.get("title")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(title))[:64] if isinstance(title, str) and title else "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": True}}
