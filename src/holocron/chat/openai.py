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

import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from holocron.chat.base import (
    ChatError,
    ChatIdentity,
    ChatMetrics,
    ChatOptions,
    ChatResult,
    Messages,
    TextCallback,
    as_messages,
    prompt_messages,
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
)

DEFAULT_OPENAI_URL = "http://localhost:8000/v1"
DEFAULT_OPENAI_CHAT_MODEL = "gpt-4o-mini"
UNVERSIONED = "unversioned"


class OpenAIChatProvider:
    """A model behind ``/v1/chat/completions`` as a :class:`~holocron.chat.base.ChatProvider`."""

    provider_name = "openai"

    def __init__(
        self,
        model: str = DEFAULT_OPENAI_CHAT_MODEL,
        base_url: str = DEFAULT_OPENAI_URL,
        *,
        api_key: SecretStr | str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        circuit: CircuitBreaker | None = None,
        options: ChatOptions | None = None,
        context_length: int | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.model_id = model.strip()
        self.options = options or ChatOptions()
        self.configured_context = context_length
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.has_api_key = bool(key)
        self.http = ChatHttpClient(
            base_url,
            name="OpenAI-compatible server",
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
            circuit=circuit or CircuitBreaker(),
            describe_error=self._describe_error,
            headers={"Authorization": f"Bearer {key}"} if key else None,
            secrets=(key,) if key else (),
            transport=transport,
            sleep=sleep,
            rng=rng,
        )
        self._identity: ChatIdentity | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        key = "set" if self.has_api_key else "none"
        return f"OpenAIChatProvider({self.model_id!r}, {self.http.shown_url!r}, api_key={key})"

    # -- identity ------------------------------------------------------------------------------

    def identity(self) -> ChatIdentity:
        with self._lock:
            if self._identity is None:
                entry = self.find_model() or {}
                digest = str(entry.get("digest") or "").strip().lower()
                if digest and not digest.startswith("sha256:"):
                    digest = f"sha256:{digest}"
                context = self.configured_context or _positive_int(entry.get("max_model_len"))
                self._identity = ChatIdentity(
                    provider=self.provider_name,
                    model_name=self.model_id,
                    model_tag="latest",
                    model_digest=digest or UNVERSIONED,
                    context_length=context,
                    endpoint_url=self.http.shown_url,
                )
            return self._identity

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
        raise ModelNotFoundError(
            f"model {self.model_id!r} is not served at {self.http.shown_url} (it serves: {served})", status=404
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
            prompt_eval_count=_positive_int(usage.get("prompt_tokens"), zero=True),
            eval_count=_positive_int(usage.get("completion_tokens"), zero=True),
            total_duration=time.perf_counter_ns() - started,
        )
        return ChatResult(
            text=text, model=str(final.get("model") or self.model_id), done_reason=reason, metrics=metrics, raw=final
        )

    def generate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: Mapping[str, Any] | None = None,
        options: ChatOptions | None = None,
        on_text: TextCallback | None = None,
    ) -> ChatResult:
        return self.chat(prompt_messages(prompt, system), schema=schema, options=options, on_text=on_text)

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

    def close(self) -> None:
        self.http.close()

    # -- errors --------------------------------------------------------------------------------

    def _describe_error(self, response: httpx.Response) -> ChatError:
        status = response.status_code
        detail = self.http.scrub(error_text(response))
        where = f"{self.http.name} at {self.http.shown_url}"
        if status == 404 or _error_code(response) == "model_not_found":
            return ModelNotFoundError(
                f"model {self.model_id!r} is not served at {self.http.shown_url} ({status}: {detail})", status=status
            )
        if status in (401, 403):
            how = "check the API key" if self.has_api_key else "no API key was sent"
            return ProviderRequestError(f"{where} refused the request ({status}: {detail}); {how}", status=status)
        return ProviderRequestError(f"{where} refused {response.request.url.path} ({status}): {detail}", status=status)


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's structured-output request for a JSON schema (strict: the server must decode under it)."""
    title = schema.get("title")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(title))[:64] if isinstance(title, str) and title else "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": True}}


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else None


def _positive_int(value: Any, *, zero: bool = False) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 or (zero and number == 0) else None
