"""``holocron serve-models`` (alias ``serve-embeddings``): the in-process models behind Ollama's and OpenAI's APIs.

The local embedding model and, beside it, the local chat model (:mod:`holocron.chat.server` adds its routes:
``/api/chat``, ``/api/generate``, ``/v1/chat/completions``). Workers without the models (or without a GPU) share
one server; the HTTP providers are tested against real vectors and real answers. The listings name both models,
and ``/api/show`` reports each one's ``capabilities`` (``embedding`` or ``completion``), as Ollama does. The
endpoints follow the published API documents field by field, error bodies included:

* Ollama: ``POST /api/embed`` (``model``, ``input`` string or list, ``truncate``, ``dimensions``, ``options``,
  ``keep_alive``), ``POST /api/embeddings`` (legacy, one ``prompt``), ``GET /api/tags``, ``POST /api/show``,
  ``GET /api/ps``, ``GET /api/version``; errors ``{"error": "..."}``. Asking one model for the other's work is
  Ollama's 400 (``"name" does not support embeddings``, ``... does not support chat``).
* OpenAI: ``POST /v1/embeddings`` (``input`` string or list of strings, ``model``, ``encoding_format`` float or
  base64, ``dimensions`` only at the model's own width), ``GET /v1/models``; errors
  ``{"error": {"message", "type", "param", "code"}}``. ``/v1/models`` entries carry two extra fields clients may
  ignore: ``digest`` (the weights' sha256) and ``max_model_len`` (as vLLM reports it).

Inputs longer than the model's window are truncated (Ollama's default; ``truncate: false`` gives Ollama's 400).
The model runs on one worker thread so the event loop never blocks and concurrent requests do not fight over the
CPU; responses are serialised with orjson straight from numpy arrays.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from holocron._version import __version__
from holocron.chat.local import LocalChatModel
from holocron.chat.server import (
    ChatEngine,
    ServedChatModel,
    add_chat_routes,
    describe_chat_model,
    json_body,
    ollama_error,
    openai_error,
)
from holocron.embedding.catalog import parse_model_ref
from holocron.embedding.local import LocalProvider
from holocron.vectors import Matrix, l2_normalize

MAX_INPUTS = 2048  # per request, as the OpenAI API allows
_JSON = "application/json"


@dataclass
class ServedModel:
    """What the server says about its model; ``digest`` may be changed at run time (tests simulate a new pull)."""

    name: str
    tag: str
    digest: str  # hex sha256 of the weights, no prefix (as Ollama's /api/tags)
    dimensions: int
    context_length: int
    family: str
    parameter_count: int | None
    quantization_level: str
    size: int
    modified_at: str
    created: int
    format: str = "safetensors"
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def matches(self, requested: str) -> bool:
        """Ollama's rule: ``name`` means ``name:latest``; names compare case-insensitively."""
        try:
            name, tag = parse_model_ref(requested)
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
            "parameter_size": _human_count(self.parameter_count) if self.parameter_count else "",
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


def describe_local_model(provider: LocalProvider, name: str | None = None, tag: str = "latest") -> ServedModel:
    """Everything /api/tags and /api/show report, read from the model folder without loading torch."""
    identity = provider.identity()
    folder = provider.model_path
    weights = next(
        folder / n for n in ("model.safetensors", "pytorch_model.bin", "model.onnx") if (folder / n).is_file()
    )
    config = _read_json(folder / "config.json")
    parameters, dtype = _safetensors_summary(weights) if weights.suffix == ".safetensors" else (None, "")
    stat = weights.stat()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return ServedModel(
        name=name or provider.model_name,
        tag=tag,
        digest=identity.model_digest.removeprefix("sha256:"),
        dimensions=identity.dimensions,
        context_length=identity.max_input_tokens or int(config.get("max_position_embeddings", 512)),
        family=str(config.get("model_type") or "unknown"),
        parameter_count=parameters,
        quantization_level=dtype or "unknown",
        size=size,
        modified_at=datetime.fromtimestamp(stat.st_mtime).astimezone().isoformat(),
        created=int(stat.st_mtime),
        format=weights.suffix.lstrip(".") or "unknown",
    )


class InputTooLongError(ValueError):
    """An input exceeds the model's window and the request said not to truncate."""


class EmbeddingEngine:
    """Runs encodes on one dedicated thread: the event loop stays free, and the CPU is not oversubscribed."""

    def __init__(self, provider: LocalProvider, *, batch_size: int = 64) -> None:
        self.provider = provider
        self.batch_size = batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holocron-embed")
        self.load_ns = 0

    def load(self) -> None:
        """Load the model now (not on the first request), recording how long it took."""
        if "model" not in self.provider.__dict__:
            started = time.perf_counter_ns()
            _ = self.provider.model
            self.load_ns = time.perf_counter_ns() - started

    async def run(self, func: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def embed(self, texts: list[str], *, truncate: bool = True) -> tuple[Matrix, list[int]]:
        """L2-normalised vectors and each input's token count (after truncation), in input order."""
        return await self.run(lambda: self._embed(texts, truncate))  # type: ignore[no-any-return]

    def _embed(self, texts: list[str], truncate: bool) -> tuple[Matrix, list[int]]:
        model = self.provider.model
        window = int(model.max_seq_length)
        encoded = model.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        counts = [len(ids) for ids in encoded]
        if not truncate and any(count > window for count in counts):
            raise InputTooLongError("input length exceeds the context length")
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32), [min(count, window) for count in counts]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def create_app(
    provider: LocalProvider,
    *,
    model_name: str | None = None,
    api_key: str | None = None,
    batch_size: int = 64,
    served: ServedModel | None = None,
    load_on_start: bool = True,
    chat: LocalChatModel | None = None,
    chat_name: str | None = None,
    chat_served: ServedChatModel | None = None,
) -> FastAPI:
    """The FastAPI app, with the chat routes when ``chat`` is given.

    ``app.state.served``, ``app.state.engine``, ``app.state.chat_served`` and ``app.state.chat_engine`` (None
    without a chat model) are exposed for tests and tooling.
    """
    model = served or describe_local_model(provider, model_name)
    engine = EmbeddingEngine(provider, batch_size=batch_size)
    chat_model = chat_served or (describe_chat_model(chat, chat_name) if chat is not None else None)
    chat_engine = ChatEngine(chat) if chat is not None else None
    if chat_model is not None and (model.matches(chat_model.ref) or chat_model.matches(model.ref)):
        raise ValueError(f"the chat model and the embedding model are both named {model.ref}: name one otherwise")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load_on_start:
            await engine.run(engine.load)
            if chat_engine is not None:
                await chat_engine.run(chat_engine.load)
                if chat_served is None and chat is not None:
                    app.state.chat_served.template = str(chat.loaded.tokenizer.chat_template or "")
        try:
            yield
        finally:
            engine.close()
            if chat_engine is not None:
                chat_engine.close()

    app = FastAPI(title="holocron serve-models", version=__version__, lifespan=lifespan, docs_url=None)
    app.state.served = model
    app.state.engine = engine
    app.state.chat_served = chat_model
    app.state.chat_engine = chat_engine

    if api_key:

        @app.middleware("http")
        async def require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.url.path == "/":
                return await call_next(request)
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode()):
                return await call_next(request)
            message = (
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
                if not header
                else "Incorrect API key provided."
            )
            if request.url.path.startswith("/v1/"):
                return openai_error(401, message, code="invalid_api_key")
            return ollama_error(401, "unauthorized")

    _add_ollama_routes(app, model, engine, chat_model)
    _add_openai_routes(app, model, engine, chat_model)
    if chat_model is not None and chat_engine is not None:
        add_chat_routes(app, chat_model, chat_engine, other_models=model.matches)
    return app


# -- Ollama ------------------------------------------------------------------------------------


def _not_found(model: str) -> Response:
    return ollama_error(404, f'model "{model}" not found, try pulling it first')


def _wrong_model(requested: str, chat: ServedChatModel | None) -> Response:
    """The answer for a model this server does not embed with: the chat model, or none at all."""
    if chat is not None and chat.matches(requested):
        return ollama_error(400, f'"{requested}" does not support embeddings')
    return _not_found(requested)


def _add_ollama_routes(app: FastAPI, model: ServedModel, engine: EmbeddingEngine, chat: ServedChatModel | None) -> None:
    @app.get("/")
    @app.head("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("holocron serve-models is running")

    @app.get("/api/version")
    async def version() -> Response:
        return Response(orjson.dumps({"version": __version__}), media_type=_JSON)

    @app.get("/api/tags")
    async def tags() -> Response:
        entries = [model.tags_entry()] + ([chat.tags_entry()] if chat is not None else [])
        return Response(orjson.dumps({"models": entries}), media_type=_JSON)

    @app.get("/api/ps")
    async def running() -> Response:
        entries = []
        for entry in [model.tags_entry()] + ([chat.tags_entry()] if chat is not None else []):
            entry = {**entry, "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0}
            entry.pop("modified_at")
            entries.append(entry)
        return Response(orjson.dumps({"models": entries}), media_type=_JSON)

    @app.post("/api/show")
    async def show(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return ollama_error(400, "invalid JSON body")
        requested = body.get("model") or body.get("name")
        if not isinstance(requested, str) or not requested:
            return ollama_error(400, "model is required")
        if chat is not None and chat.matches(requested):
            return Response(orjson.dumps(chat.show_payload()), media_type=_JSON)
        if not model.matches(requested):
            return _not_found(requested)
        family = model.family
        info: dict[str, Any] = {
            "general.architecture": family,
            "general.basename": model.name.rsplit("/", 1)[-1],
            "general.parameter_count": model.parameter_count,
            f"{family}.embedding_length": model.dimensions,
            f"{family}.context_length": model.context_length,
            f"{family}.pooling_type": 1,  # mean pooling, as GGUF numbers it
        }
        payload = {
            "modelfile": f"# served by holocron serve-models\nFROM {model.name}\n",
            "parameters": "",
            "template": "",
            "details": model.details,
            "model_info": info,
            "capabilities": ["embedding"],
            "modified_at": model.modified_at,
        }
        return Response(orjson.dumps(payload), media_type=_JSON)

    @app.post("/api/embed")
    async def embed(request: Request) -> Response:
        started = time.perf_counter_ns()
        body = await json_body(request)
        if body is None:
            return ollama_error(400, "invalid JSON body")
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return ollama_error(400, "model is required")
        if not model.matches(requested):
            return _wrong_model(requested, chat)
        raw = body.get("input")
        if raw is None:
            texts: list[str] = []
        elif isinstance(raw, str):
            texts = [raw] if raw else []
        elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            texts = list(raw)
        else:
            return ollama_error(400, "invalid input type")
        truncate = body.get("truncate", True)
        if not isinstance(truncate, bool):
            return ollama_error(400, "truncate must be a boolean")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            return ollama_error(400, "options must be an object")
        dimensions = body.get("dimensions")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 0
        ):
            return ollama_error(400, "dimensions must be a positive integer")
        if not texts:
            return Response(orjson.dumps({"model": requested, "embeddings": []}), media_type=_JSON)
        try:
            vectors, counts = await engine.embed(texts, truncate=truncate)
        except InputTooLongError as exc:
            return ollama_error(400, str(exc))
        if dimensions and dimensions < vectors.shape[1]:
            vectors = l2_normalize(vectors[:, :dimensions])
        payload = {
            "model": requested,
            "embeddings": vectors,
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": engine.load_ns,
            "prompt_eval_count": sum(counts),
        }
        engine.load_ns = 0  # reported once, by the request that paid for it
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON)

    @app.post("/api/embeddings")
    async def embeddings_legacy(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return ollama_error(400, "invalid JSON body")
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return ollama_error(400, "model is required")
        if not model.matches(requested):
            return _wrong_model(requested, chat)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return ollama_error(400, "prompt must be a string")
        if not prompt:
            return Response(orjson.dumps({"embedding": []}), media_type=_JSON)
        vectors, _ = await engine.embed([prompt])
        return Response(orjson.dumps({"embedding": vectors[0]}, option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON)


# -- OpenAI ------------------------------------------------------------------------------------


def _model_object(model: ServedModel) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": model.created,
        "owned_by": "holocron",
        "digest": f"sha256:{model.digest}",
        "max_model_len": model.context_length,
    }


def _add_openai_routes(app: FastAPI, model: ServedModel, engine: EmbeddingEngine, chat: ServedChatModel | None) -> None:
    @app.get("/v1/models")
    async def models() -> Response:
        data = [_model_object(model)] + ([chat.model_object()] if chat is not None else [])
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=_JSON)

    @app.get("/v1/models/{requested:path}")
    async def one_model(requested: str) -> Response:
        if chat is not None and chat.matches(requested):
            return Response(orjson.dumps(chat.model_object()), media_type=_JSON)
        if not model.matches(requested):
            return _model_not_found(requested)
        return Response(orjson.dumps(_model_object(model)), media_type=_JSON)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            return openai_error(
                400, "We could not parse the JSON body of your request. The body must be a JSON object."
            )
        requested = body.get("model")
        if not isinstance(requested, str) or not requested:
            return openai_error(400, "you must provide a model parameter", param="model")
        if chat is not None and chat.matches(requested):
            return openai_error(400, f"The model `{requested}` does not support embeddings.", param="model")
        if not model.matches(requested):
            return _model_not_found(requested)
        texts_or_error = _openai_inputs(body.get("input"))
        if isinstance(texts_or_error, Response):
            return texts_or_error
        texts = texts_or_error
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return openai_error(
                400,
                f"Invalid value for 'encoding_format': {encoding!r}. Supported values are 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
                return openai_error(
                    400, "'dimensions' must be a positive integer.", param="dimensions", code="invalid_value"
                )
            if dimensions != model.dimensions:
                return openai_error(
                    400,
                    f"This model does not support specifying dimensions (it returns {model.dimensions}).",
                    param="dimensions",
                )
        vectors, counts = await engine.embed(texts)
        if encoding == "base64":
            rows: list[Any] = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
        else:
            rows = list(vectors)
        tokens = sum(counts)
        payload = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
            "model": requested,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON)


def _model_not_found(requested: str) -> Response:
    return openai_error(
        404,
        f"The model `{requested}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _openai_inputs(raw: Any) -> list[str] | Response:
    """The texts of an OpenAI ``input``, or the 400 its API answers for an unusable one."""
    if raw is None:
        return openai_error(400, "'input' is a required property", param="input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        return openai_error(400, "'input' must be a non-empty string or array of strings", param="input")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in raw) or all(
        isinstance(item, list) for item in raw
    ):
        return openai_error(
            400,
            "Token arrays are not supported by this server: send 'input' as a string or an array of strings.",
            param="input",
            code="unsupported_input",
        )
    if not all(isinstance(item, str) for item in raw):
        return openai_error(400, "'input' must be a string or an array of strings", param="input")
    if len(raw) > MAX_INPUTS:
        return openai_error(
            400, f"'input' has {len(raw)} items; at most {MAX_INPUTS} are allowed per request", param="input"
        )
    if any(not item for item in raw):
        return openai_error(400, "'input' must not contain empty strings", param="input")
    return list(raw)


# -- helpers -----------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _safetensors_summary(path: Path) -> tuple[int | None, str]:
    """(parameter count, dtype such as F32) from the safetensors header: a few KiB read, no tensors loaded."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None, ""
    total = 0
    dtypes: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__" or not isinstance(tensor, dict):
            continue
        dtype = str(tensor.get("dtype", ""))
        if dtype[:1] not in ("F", "B"):  # integer buffers such as position ids are not parameters
            continue
        count = math.prod(int(n) for n in tensor.get("shape", []))
        total += count
        dtypes[dtype] = dtypes.get(dtype, 0) + count
    main = max(dtypes, key=lambda d: dtypes[d]) if dtypes else ""
    return total or None, main


def _human_count(count: int) -> str:
    """22713216 -> '22.7M', as Ollama labels parameter sizes."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f}{unit}" if value == int(value) or value >= 100 else f"{value:.1f}{unit}"
    return str(count)
