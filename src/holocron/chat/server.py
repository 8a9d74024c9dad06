"""The chat half of ``holocron serve-models``: the local chat model behind Ollama's and OpenAI's chat APIs.

Mounted by :mod:`holocron.embedding.server` beside the embedding model. The endpoints follow the published API
documents, defaults and error bodies included:

* Ollama: ``POST /api/chat`` (``messages``) and ``POST /api/generate`` (``prompt``, ``system``, ``raw``), with
  ``stream`` (default true: NDJSON lines, the last one ``done: true`` with the metrics), ``format`` (``"json"`` or a
  JSON schema: decoded under it), ``options`` (``num_predict``, ``temperature``, ``seed``, ``top_k``, ``top_p``,
  ``num_ctx``, ``stop``) and ``keep_alive`` (accepted; the model stays loaded). An empty conversation or prompt
  loads the model and answers ``done_reason: "load"``. Errors are ``{"error": "..."}``.
* OpenAI: ``POST /v1/chat/completions`` with ``max_tokens`` (or ``max_completion_tokens``), ``temperature``,
  ``top_p``, ``seed``, ``stop``, ``response_format`` (``text``, ``json_object``, ``json_schema``) and ``stream``
  (server-sent events, ``data: [DONE]`` last; ``stream_options.include_usage`` adds a usage chunk). Errors are
  ``{"error": {"message", "type", "param", "code"}}``.

Generation runs on one worker thread of its own, so the event loop never blocks; a client that goes away while an
answer streams stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from holocron.chat.base import ChatError, ChatOptions, ChatResult, TextCallback, split_model_ref
from holocron.chat.constrained import SchemaError
from holocron.chat.local import LocalChatModel

__all__ = [
    "ChatEngine",
    "ServedChatModel",
    "add_chat_routes",
    "describe_chat_model",
    "json_body",
    "ollama_error",
    "openai_error",
]

_JSON = "application/json"
_NDJSON = "application/x-ndjson"
_SSE = "text/event-stream"
JSON_OBJECT: dict[str, Any] = {"type": "object"}  # Ollama's format "json" and OpenAI's json_object
# Ollama's defaults where a request leaves an option out.
OLLAMA_DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "num_ctx": 4096}


def ollama_error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type=_JSON)


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON)


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, ``{}`` for an empty body, None for anything else."""
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# -- what is served --------------------------------------------------------------------------------------------


@dataclass
class ServedChatModel:
    """What the server says about its chat model (``/api/tags``, ``/api/show``, ``/v1/models``)."""

    name: str
    tag: str
    digest: str  # hex sha256 of the GGUF file, no prefix (as Ollama's /api/tags)
    context_length: int
    embedding_length: int | None
    family: str
    parameter_count: int
    quantization_level: str
    size: int
    modified_at: str
    created: int
    template: str = ""
    format: str = "gguf"
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def matches(self, requested: str) -> bool:
        """Ollama's rule: ``name`` means ``name:latest``; names compare case-insensitively."""
        try:
            name, tag = split_model_ref(requested)
        except ValueError:
            return False
        names = {self.name.lower(), *(alias.lower() for alias in self.aliases)}
        return name.lower() in names and tag.lower() == self.tag.lower()

    @property
    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": self.format,
            "family": self.family,
            "families": [self.family],
            "parameter_size": _human_count(self.parameter_count),
            "quantization_level": self.quantization_level,
        }

    def tags_entry(self) -> dict[str, Any]:
        return {
            "name": self.ref,
            "model": self.ref,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details,
        }

    def show_payload(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "general.architecture": self.family,
            "general.basename": self.name,
            "general.parameter_count": self.parameter_count,
            f"{self.family}.context_length": self.context_length,
        }
        if self.embedding_length:
            info[f"{self.family}.embedding_length"] = self.embedding_length
        return {
            "modelfile": f"# served by holocron serve-models\nFROM {self.name}\n",
            "parameters": "",
            "template": self.template,
            "details": self.details,
            "model_info": info,
            "capabilities": ["completion"],
            "modified_at": self.modified_at,
        }

    def model_object(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "holocron",
            "digest": f"sha256:{self.digest}",
            "max_model_len": self.context_length,
        }


def describe_chat_model(model: LocalChatModel, name: str | None = None, tag: str = "latest") -> ServedChatModel:
    """Everything the endpoints report, read from the GGUF header (the weights need not be loaded)."""
    info = model.info
    template = model.loaded.tokenizer.chat_template if model.is_loaded else ""
    return ServedChatModel(
        name=name or model.model_name,
        tag=tag,
        digest=model.digest.removeprefix("sha256:"),
        context_length=info.context_length,
        embedding_length=info.embedding_length,
        family=info.architecture,
        parameter_count=info.parameter_count,
        quantization_level=info.quantization,
        size=info.size,
        modified_at=datetime.fromtimestamp(info.modified).astimezone().isoformat(),
        created=int(info.modified),
        template=str(template or ""),
    )


# -- the engine ------------------------------------------------------------------------------------------------


class ChatEngine:
    """Runs generations on one dedicated thread; streams their text back to the event loop as it comes."""

    def __init__(self, model: LocalChatModel) -> None:
        self.model = model
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holocron-chat")

    def load(self) -> None:
        self.model.load()

    async def run(self, func: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def stream(
        self, call: Callable[[TextCallback, Callable[[], bool]], ChatResult]
    ) -> AsyncIterator[str | ChatResult]:
        """The pieces of text as the model writes them, then the :class:`ChatResult`.

        When the consumer stops early (the client went away), the generation is told to stop.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def work() -> None:
            try:
                put("done", call(lambda piece: put("text", piece), cancelled.is_set))
            except BaseException as exc:
                put("error", exc)

        loop.run_in_executor(self._executor, work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield value
                elif kind == "done":
                    yield value
                    return
                else:
                    raise value
        finally:
            cancelled.set()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- request parsing -------------------------------------------------------------------------------------------


class BadRequestError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _number(options: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        type_name = "integer" if kind is int else "number"
        raise BadRequestError(f'option "{key}" must be of type {type_name}', key)
    return kind(value)


def _stops(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item for item in value if item)
    raise BadRequestError(f'"{key}" must be a string or an array of strings', key)


def ollama_options(raw: Any) -> ChatOptions:
    """Ollama's ``options`` object as :class:`ChatOptions` (Ollama's defaults where it leaves one out)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequestError("options must be an object", "options")
    num_predict = _number(raw, "num_predict", int)
    if num_predict is not None and num_predict < 1:  # -1 (and -2): until the end or the window
        num_predict = None
    num_ctx = _number(raw, "num_ctx", int, OLLAMA_DEFAULTS["num_ctx"])
    temperature = _number(raw, "temperature", float, OLLAMA_DEFAULTS["temperature"])
    top_k = _number(raw, "top_k", int, OLLAMA_DEFAULTS["top_k"])
    top_p = _number(raw, "top_p", float, OLLAMA_DEFAULTS["top_p"])
    try:
        return ChatOptions(
            num_predict=num_predict,
            temperature=max(0.0, temperature) if temperature is not None else None,
            seed=_number(raw, "seed", int),
            top_k=top_k if top_k and top_k > 0 else None,
            top_p=top_p if top_p and 0 < top_p < 1 else None,
            num_ctx=num_ctx if num_ctx and num_ctx > 0 else None,
            stop=_stops(raw.get("stop"), "stop"),
        )
    except ValueError as exc:
        raise BadRequestError(str(exc), "options") from None


def ollama_format(value: Any) -> dict[str, Any] | None:
    """``format``: absent or empty for text, ``"json"`` for any JSON object, else a JSON schema."""
    if value is None or value == "":
        return None
    if value == "json":
        return JSON_OBJECT
    if isinstance(value, dict):
        return value
    raise BadRequestError(f'invalid format {value!r}: use "json" or a JSON schema object', "format")


def _ollama_messages(raw: Any) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequestError("messages must be an array", "messages")
    messages = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequestError(f"message {position} must be an object", "messages")
        role = item.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequestError(f"message {position}: invalid role {role!r}", "messages")
        content = item.get("content", "")
        if not isinstance(content, str):
            raise BadRequestError(f"message {position}: content must be a string", "messages")
        messages.append({"role": str(role), "content": content})
    return messages


def _openai_messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise BadRequestError("'messages' must be a non-empty array", "messages")
    messages = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequestError(f"messages[{position}] must be an object", "messages")
        role = item.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequestError(f"messages[{position}].role: invalid value {role!r}", "messages")
        content = item.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):  # content parts: only text is understood here
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise BadRequestError(f"messages[{position}].content: only text parts are supported", "messages")
                texts.append(part["text"])
            content = "".join(texts)
        elif not isinstance(content, str):
            raise BadRequestError(f"messages[{position}].content must be a string or an array of parts", "messages")
        messages.append({"role": str(role), "content": content})
    return messages


def openai_options(body: Mapping[str, Any]) -> ChatOptions:
    """The generation fields of a chat-completions request (OpenAI's defaults where it leaves one out)."""
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequestError("'max_tokens' must be a positive integer", "max_tokens")
    temperature = _number(body, "temperature", float, 1.0)
    if temperature is not None and not 0 <= temperature <= 2:
        raise BadRequestError("'temperature' must be between 0 and 2", "temperature")
    top_p = _number(body, "top_p", float)
    if top_p is not None and not 0 < top_p <= 1:
        raise BadRequestError("'top_p' must be in (0, 1]", "top_p")
    n = body.get("n", 1)
    if n != 1:
        raise BadRequestError("only n=1 is supported", "n")
    stops = _stops(body.get("stop"), "stop")
    if len(stops) > 4:
        raise BadRequestError("'stop' takes at most 4 sequences", "stop")
    return ChatOptions(
        num_predict=limit,
        temperature=temperature,
        seed=_number(body, "seed", int),
        top_p=top_p if top_p is not None and top_p < 1 else None,
        stop=stops,
    )


def openai_schema(value: Any) -> dict[str, Any] | None:
    """``response_format``: ``text`` (none), ``json_object`` or ``json_schema`` (its ``schema``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequestError("'response_format' must be an object", "response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequestError("'response_format.json_schema' needs a 'name'", "response_format")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise BadRequestError("'response_format.json_schema.schema' must be an object", "response_format")
        return schema or JSON_OBJECT
    raise BadRequestError(
        f"Invalid value for 'response_format.type': {kind!r}; use 'text', 'json_object' or 'json_schema'",
        "response_format",
    )


# -- routes ----------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _line(item: Mapping[str, Any]) -> bytes:
    return orjson.dumps(item) + b"\n"


def _event(item: Mapping[str, Any] | str) -> bytes:
    data = item if isinstance(item, str) else orjson.dumps(item).decode()
    return f"data: {data}\n\n".encode()


def add_chat_routes(
    app: FastAPI,
    served: ServedChatModel,
    engine: ChatEngine,
    *,
    other_models: Callable[[str], bool] = lambda _: False,
) -> None:
    """``/api/chat``, ``/api/generate`` and ``/v1/chat/completions`` for ``served``; ``other_models(name)`` says
    whether a name is another model of this server (which then "does not support" chat, as Ollama answers)."""

    def unknown(requested: str, action: str) -> Response:
        if other_models(requested):
            return ollama_error(400, f'"{requested}" does not support {action}')
        return ollama_error(404, f'model "{requested}" not found, try pulling it first')

    async def check_schema(schema: dict[str, Any] | None) -> None:
        if schema is not None:
            await engine.run(lambda: engine.model.loaded.json_constraint(schema))

    async def ollama_answer(
        requested: str,
        key: str,
        stream: bool,
        call: Callable[[TextCallback | None, Callable[[], bool] | None], ChatResult],
    ) -> Response:
        def shape(text: str) -> Any:
            return {"role": "assistant", "content": text} if key == "message" else text

        if not stream:
            try:
                result: ChatResult = await engine.run(lambda: call(None, None))
            except ChatError as exc:
                return ollama_error(500, str(exc))
            payload = {
                "model": requested,
                "created_at": _now(),
                key: shape(result.text),
                "done_reason": result.done_reason,
                "done": True,
                **result.metrics.to_json(),
            }
            return Response(orjson.dumps(payload), media_type=_JSON)

        async def lines() -> AsyncIterator[bytes]:
            try:
                async for item in engine.stream(lambda on_text, cancelled: call(on_text, cancelled)):
                    if isinstance(item, str):
                        yield _line({"model": requested, "created_at": _now(), key: shape(item), "done": False})
                    else:
                        final = {
                            "model": requested,
                            "created_at": _now(),
                            key: shape(""),
                            "done_reason": item.done_reason,
                            "done": True,
                            **item.metrics.to_json(),
                        }
                        yield _line(final)
            except ChatError as exc:
                yield _line({"error": str(exc)})

        return StreamingResponse(lines(), media_type=_NDJSON)

    async def load_only(requested: str, key: str, empty: Any) -> Response:
        started = time.perf_counter_ns()
        load_ns = await engine.run(engine.model.load)
        payload = {
            "model": requested,
            "created_at": _now(),
            key: empty,
            "done_reason": "load",
            "done": True,
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": load_ns,
        }
        return Response(orjson.dumps(payload), media_type=_JSON)

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return ollama_error(400, "invalid JSON body")
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return ollama_error(400, "model is required")
        if not served.matches(requested):
            return unknown(requested, "chat")
        stream = body.get("stream", True)
        if not isinstance(stream, bool):
            return ollama_error(400, "stream must be a boolean")
        try:
            messages = _ollama_messages(body.get("messages"))
            options = ollama_options(body.get("options"))
            schema = ollama_format(body.get("format"))
            await check_schema(schema)
        except (BadRequestError, SchemaError) as exc:
            return ollama_error(400, str(exc))
        if not messages:
            return await load_only(requested, "message", {"role": "assistant", "content": ""})
        model = engine.model
        return await ollama_answer(
            requested,
            "message",
            stream,
            lambda on_text, cancelled: model.chat(
                messages, schema=schema, options=options, on_text=on_text, cancelled=cancelled
            ),
        )

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return ollama_error(400, "invalid JSON body")
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return ollama_error(400, "model is required")
        if not served.matches(requested):
            return unknown(requested, "generate")
        prompt = body.get("prompt", "")
        system = body.get("system")
        raw = body.get("raw", False)
        stream = body.get("stream", True)
        if not isinstance(prompt, str) or (system is not None and not isinstance(system, str)):
            return ollama_error(400, "prompt and system must be strings")
        if not isinstance(raw, bool) or not isinstance(stream, bool):
            return ollama_error(400, "raw and stream must be booleans")
        try:
            options = ollama_options(body.get("options"))
            schema = ollama_format(body.get("format"))
            await check_schema(schema)
        except (BadRequestError, SchemaError) as exc:
            return ollama_error(400, str(exc))
        if not prompt:
            return await load_only(requested, "response", "")
        model = engine.model
        return await ollama_answer(
            requested,
            "response",
            stream,
            lambda on_text, cancelled: model.generate(
                prompt,
                system=system,
                schema=schema,
                options=options,
                on_text=on_text,
                raw=raw,
                cancelled=cancelled,
            ),
        )

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return openai_error(
                400, "We could not parse the JSON body of your request. The body must be a JSON object."
            )
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return openai_error(400, "you must provide a model parameter", param="model")
        if not served.matches(requested):
            if other_models(requested):
                return openai_error(400, f"The model `{requested}` does not support chat completions.", param="model")
            return openai_error(
                404, f"The model `{requested}` does not exist or you do not have access to it.", code="model_not_found"
            )
        stream = body.get("stream", False)
        stream_options = body.get("stream_options") or {}
        if not isinstance(stream, bool) or not isinstance(stream_options, dict):
            return openai_error(400, "'stream' must be a boolean and 'stream_options' an object", param="stream")
        try:
            messages = _openai_messages(body.get("messages"))
            options = openai_options(body)
            schema = openai_schema(body.get("response_format"))
            await check_schema(schema)
        except BadRequestError as exc:
            return openai_error(400, str(exc), param=exc.param)
        except SchemaError as exc:
            return openai_error(400, str(exc), param="response_format")
        model = engine.model
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        fingerprint = f"fp_{served.digest[:10]}"

        def call(on_text: TextCallback | None, cancelled: Callable[[], bool] | None) -> ChatResult:
            return model.chat(messages, schema=schema, options=options, on_text=on_text, cancelled=cancelled)

        def usage(result: ChatResult) -> dict[str, int]:
            prompt_tokens = result.metrics.prompt_eval_count or 0
            completion_tokens = result.metrics.eval_count or 0
            return {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }

        if not stream:
            try:
                result: ChatResult = await engine.run(lambda: call(None, None))
            except ChatError as exc:
                return openai_error(500, str(exc), type_="server_error")
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": requested,
                "system_fingerprint": fingerprint,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": result.done_reason or "stop",
                    }
                ],
                "usage": usage(result),
            }
            return Response(orjson.dumps(payload), media_type=_JSON)

        include_usage = bool(stream_options.get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            item = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": requested,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                item["usage"] = None
            return item

        async def events() -> AsyncIterator[bytes]:
            yield _event(chunk({"role": "assistant", "content": ""}, None))
            try:
                async for item in engine.stream(call):
                    if isinstance(item, str):
                        yield _event(chunk({"content": item}, None))
                        continue
                    yield _event(chunk({}, item.done_reason or "stop"))
                    if include_usage:
                        last = {**chunk({}, None), "choices": [], "usage": usage(item)}
                        yield _event(last)
            except ChatError as exc:
                yield _event({"error": {"message": str(exc), "type": "server_error", "param": None, "code": None}})
            yield _event("[DONE]")

        return StreamingResponse(events(), media_type=_SSE)


def _human_count(count: int) -> str:
    """134515008 -> '135M', as Ollama labels parameter sizes."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f}{unit}" if value == int(value) or value >= 100 else f"{value:.1f}{unit}"
    return str(count)
