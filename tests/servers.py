"""HTTP servers for the provider tests: ``serve-embeddings`` on the real model, and a scripted misbehaving one.

Both listen on 127.0.0.1 on a free port, in background threads. The real model and its server are started once
per test session (cached here rather than in fixtures, so that every test module shares the same ones).
"""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import uvicorn

from holocron.embedding.local import LocalProvider
from holocron.embedding.ollama import PROBE_TEXT as OLLAMA_PROBE
from holocron.embedding.openai import PROBE_TEXT as OPENAI_PROBE

# --- uvicorn in a thread ----------------------------------------------------------------------------------------


class UvicornThread:
    """An ASGI app served by uvicorn on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=60)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@functools.cache
def local_provider() -> LocalProvider:
    """The bundled model, loaded and warmed once per session."""
    provider = LocalProvider()
    provider.embed(["warm up the model"])
    return provider


@functools.cache
def embedding_server() -> UvicornThread:
    """``holocron serve-embeddings`` on the real model, once per session."""
    from holocron.embedding.server import create_app

    server = UvicornThread(create_app(local_provider()))
    atexit.register(server.stop)
    return server


# --- the misbehaving server -------------------------------------------------------------------------------------


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector per text, so that order can be checked after batching."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).normal(size=dimensions).astype(np.float32)
    return [float(x) for x in vector / np.linalg.norm(vector)]


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class Misbehaviour:
    """Scripted answers to embedding requests (identity endpoints and probes always answer correctly).

    Steps: ``ok``, ``drop`` (close without answering), ``slow:S`` (sleep S seconds, then answer),
    ``status:CODE`` (an error body in the API's format), ``429:RETRY_AFTER``, ``503:RETRY_AFTER``,
    ``notfound``, ``count:-1`` / ``count:+1``, ``dims:N``, ``nan``, ``zero``, ``shuffle`` (OpenAI data reversed).
    After the script runs out every request is ``ok`` unless ``then`` says otherwise.
    """

    dimensions: int = 8
    context_length: int = 512
    model: str = "fake-embed"
    digest: str = "ab" * 32
    api_key: str | None = None
    echo_key_in_errors: bool = False
    script: deque[str] = field(default_factory=deque)
    then: str = "ok"
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, *steps: str, then: str = "ok") -> None:
        with self.lock:
            self.script = deque(steps)
            self.then = then
            self.requests.clear()

    def next_step(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else self.then

    @property
    def embed_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path in ("/api/embed", "/v1/embeddings")]


def _handler(state: Misbehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            if self.path.startswith("/v1/"):
                code = {404: "model_not_found", 401: "invalid_api_key"}.get(status)
                body: Any = {
                    "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
                }
            else:
                body = {"error": message}
            self._send(status, body, headers)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def do_GET(self) -> None:
            state.requests.append(Recorded(self.path, {}, dict(self.headers), time.monotonic()))
            if self.path == "/api/version":
                self._send(200, {"version": "0.0.0-test"})
            elif self.path == "/api/tags":
                entry = {"name": f"{state.model}:latest", "model": f"{state.model}:latest", "digest": state.digest}
                self._send(200, {"models": [{**entry, "size": 1, "modified_at": "2025-01-01T00:00:00Z"}]})
            elif self.path == "/v1/models":
                if not self._authorised():
                    return
                model = {"id": state.model, "object": "model", "created": 0, "owned_by": "test"}
                self._send(200, {"object": "list", "data": [{**model, "digest": f"sha256:{state.digest}"}]})
            else:
                self._error(404, "404 page not found")

        def _authorised(self) -> bool:
            if state.api_key is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {state.api_key}":
                return True
            sent = self.headers.get("Authorization", "")
            echo = f" (you sent {sent})" if state.echo_key_in_errors else ""
            self._error(401, f"Incorrect API key provided{echo}")
            return False

        def do_POST(self) -> None:
            body = self._body()
            state.requests.append(Recorded(self.path, body, dict(self.headers), time.monotonic()))
            if self.path == "/api/show":
                info = {
                    "general.architecture": "bert",
                    "bert.embedding_length": state.dimensions,
                    "bert.context_length": state.context_length,
                }
                self._send(200, {"details": {}, "model_info": info, "capabilities": ["embedding"]})
                return
            if self.path not in ("/api/embed", "/v1/embeddings"):
                self._error(404, "404 page not found")
                return
            if self.path.startswith("/v1/") and not self._authorised():
                return
            raw = body.get("input")
            texts = [raw] if isinstance(raw, str) else list(raw or [])
            if texts in ([OLLAMA_PROBE], [OPENAI_PROBE]):
                self._answer(texts, "ok")
                return
            self._answer(texts, state.next_step())

        def _answer(self, texts: list[str], step: str) -> None:
            kind, _, arg = step.partition(":")
            if kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if kind == "slow":
                time.sleep(float(arg))
                kind = "ok"
            if kind in ("429", "503"):
                self._error(int(kind), "slow down" if kind == "429" else "overloaded", {"Retry-After": arg})
                return
            if kind == "status":
                self._error(int(arg), f"scripted error {arg}")
                return
            if kind == "notfound":
                if self.path.startswith("/v1/"):
                    self._error(404, f"The model `{state.model}` does not exist or you do not have access to it.")
                else:
                    self._error(404, f'model "{state.model}" not found, try pulling it first')
                return
            dims = int(arg) if kind == "dims" else state.dimensions
            vectors: list[list[float]] = [fake_vector(t, dims) for t in texts]
            if kind == "count":
                vectors = vectors[: len(vectors) + int(arg)] if int(arg) < 0 else vectors + vectors[: int(arg)]
            elif kind == "nan":
                vectors[0][0] = float("nan")
            elif kind == "zero":
                vectors[-1] = [0.0] * dims
            if self.path == "/api/embed":
                self._send(200, json.dumps({"model": state.model, "embeddings": vectors}).encode())
                return
            self._send(200, self._openai_body(vectors, reverse=kind == "shuffle"))

        def _openai_body(self, vectors: list[list[float]], *, reverse: bool) -> bytes:
            base64_wanted = self._last_body().get("encoding_format") == "base64"
            items = []
            for index, vector in enumerate(vectors):
                embedding: Any = (
                    base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode() if base64_wanted else vector
                )
                items.append({"object": "embedding", "index": index, "embedding": embedding})
            if reverse:
                items.reverse()
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            return json.dumps({"object": "list", "data": items, "model": state.model, "usage": usage}).encode()

        def _last_body(self) -> dict[str, Any]:
            return state.requests[-1].body if state.requests else {}

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that gave up: expected here
        return


@contextmanager
def misbehaving_server(state: Misbehaviour | None = None) -> Iterator[tuple[str, Misbehaviour]]:
    """(base URL, script) of a scripted server speaking both APIs on 127.0.0.1."""
    script = state or Misbehaviour()
    server = _QuietServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
