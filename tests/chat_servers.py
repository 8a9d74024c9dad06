"""Chat servers for the tests: the real local chat model (in process and behind ``holocron serve-models``), and a
scripted misbehaving server speaking Ollama's and OpenAI's chat APIs.

The chat model is loaded once per test session, from a cache folder of its own made for the session: its first
load converts the GGUF and writes the cache, which the cache tests then read back.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from holocron.chat.local import LocalChatModel
from servers import UvicornThread, local_provider

# --- the real model ---------------------------------------------------------------------------------------------


@functools.cache
def chat_cache_dir() -> Path:
    """A fresh weights cache for this session (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="holocron-chat-cache-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.cache
def chat_model() -> LocalChatModel:
    """The bundled chat model, loaded once per session; one torch thread (decoding one token at a time gains
    little from more, and a busy machine makes more far slower)."""
    model = LocalChatModel(cache_dir=chat_cache_dir(), threads=1)
    model.load()
    return model


@functools.cache
def model_server() -> UvicornThread:
    """``holocron serve-models`` on both real models, once per session."""
    from holocron.embedding.server import create_app

    server = UvicornThread(create_app(local_provider(), chat=chat_model()))
    atexit.register(server.stop)
    return server


# --- the misbehaving server -------------------------------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ChatScript:
    """Scripted answers to chat requests (the identity endpoints always answer correctly).

    Steps: ``ok``, ``drop`` (close without answering), ``slow:S`` (sleep S seconds, then answer), ``status:CODE``
    (an error body in the API's format), ``429:RETRY_AFTER``, ``notfound``, ``cut`` (a streamed answer breaks off
    after its first piece), ``text`` (an answer that is not JSON), ``empty`` (an empty answer), ``say:TEXT``
    (that text as the answer). After the script runs out every request is ``ok`` unless ``then`` says otherwise.
    An ``ok`` answer is ``respond(request body)`` when ``respond`` is set, else ``answer``.
    """

    model: str = "fake-chat"
    digest: str = "cd" * 32
    answer: str = '{"label":"yes"}'
    respond: Callable[[dict[str, Any]], str] | None = None
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
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path in ("/api/chat", "/api/generate", "/v1/chat/completions")]


def _handler(state: ChatScript) -> type[BaseHTTPRequestHandler]:
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

        def _authorised(self) -> bool:
            if state.api_key is None or self.headers.get("Authorization") == f"Bearer {state.api_key}":
                return True
            sent = self.headers.get("Authorization", "")
            echo = f" (you sent {sent})" if state.echo_key_in_errors else ""
            self._error(401, f"Incorrect API key provided{echo}")
            return False

        def do_GET(self) -> None:
            state.requests.append(Recorded(self.path, {}, dict(self.headers)))
            if self.path == "/api/tags":
                entry = {"name": f"{state.model}:latest", "model": f"{state.model}:latest", "digest": state.digest}
                self._send(200, {"models": [entry]})
            elif self.path == "/v1/models":
                if self._authorised():
                    model = {"id": state.model, "object": "model", "owned_by": "test", "max_model_len": 2048}
                    self._send(200, {"object": "list", "data": [{**model, "digest": f"sha256:{state.digest}"}]})
            else:
                self._error(404, "404 page not found")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(Recorded(self.path, body, dict(self.headers)))
            if self.path == "/api/show":
                info = {"general.architecture": "llama", "llama.context_length": 2048}
                self._send(200, {"model_info": info, "details": {"family": "llama"}, "capabilities": ["completion"]})
                return
            if self.path not in ("/api/chat", "/api/generate", "/v1/chat/completions"):
                self._error(404, "404 page not found")
                return
            if self.path.startswith("/v1/") and not self._authorised():
                return
            self._answer(body, state.next_step())

        def _answer(self, body: dict[str, Any], step: str) -> None:
            kind, _, arg = step.partition(":")
            if kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if kind == "slow":
                time.sleep(float(arg))
                kind = "ok"
            if kind == "429":
                self._error(429, "slow down", {"Retry-After": arg})
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
            if kind == "text":
                text = "this is not JSON"
            elif kind == "empty":
                text = ""
            elif kind == "say":
                text = arg
            else:
                text = state.respond(body) if state.respond is not None else state.answer
            pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
            if body.get("stream"):
                self._stream(pieces, cut=kind == "cut")
            elif self.path == "/v1/chat/completions":
                self._send(200, self._completion(text))
            else:
                self._send(200, self._ollama(text, done=True))

        def _ollama(self, text: str, *, done: bool) -> dict[str, Any]:
            item: dict[str, Any] = {
                "model": f"{state.model}:latest",
                "created_at": "2025-01-01T00:00:00Z",
                "done": done,
            }
            if self.path == "/api/chat":
                item["message"] = {"role": "assistant", "content": text}
            else:
                item["response"] = text
            if done:
                item.update(done_reason="stop", prompt_eval_count=7, eval_count=5, total_duration=1000)
                item.update(load_duration=10, prompt_eval_duration=300, eval_duration=600)
            return item

        def _completion(self, text: str) -> dict[str, Any]:
            return {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": state.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }

        def _stream(self, pieces: list[str], *, cut: bool) -> None:
            openai = self.path == "/v1/chat/completions"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if openai else "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def write(data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for number, piece in enumerate(pieces):
                if openai:
                    delta = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    write(f"data: {json.dumps(delta)}\n\n".encode())
                else:
                    write(json.dumps(self._ollama(piece, done=False)).encode() + b"\n")
                if cut and number == 0:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
            if openai:
                final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}
                write(f"data: {json.dumps(final)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
            else:
                write(json.dumps(self._ollama("", done=True)).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that gave up: expected here
        return


@contextmanager
def scripted_chat_server(state: ChatScript | None = None) -> Iterator[tuple[str, ChatScript]]:
    """(base URL, script) of a scripted chat server speaking both APIs on 127.0.0.1."""
    script = state or ChatScript()
    server = _QuietServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
