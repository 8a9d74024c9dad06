"""A ``holocron serve`` that is up for this store, so that ``holocron search`` can ask it.

A server holds the store open, the vector index and the query encoder in memory, and answers a search in
milliseconds; a new process has to import and open all of that first. So ``serve`` announces itself in
``<home>/serve.json`` while it listens, and a command-line search that finds a live server for the same store
and the same embedding model sends it the query instead (``HOLOCRON_SEARCH_VIA_SERVER=false`` turns that
off). Anything short of a good answer (no file, a dead process, a refused connection, an error status) falls
back to searching in process, so a stale file never breaks a search.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from holocron.config import Settings

ANNOUNCEMENT = "serve.json"
CONNECT_TIMEOUT_S = 1.0
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunningServer:
    url: str
    pid: int


def store_key(settings: Settings) -> str:
    """What a server must share with the command to answer for it: the store and the embedding model."""
    model_path = str(settings.local_model_path or "")
    named = "\n".join(
        [settings.resolved_database_url, settings.embed_provider, settings.resolved_embed_model, model_path]
    )
    return hashlib.sha256(named.encode()).hexdigest()


def reachable_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def announced(settings: Settings) -> Iterator[None]:
    """Name this process in ``<home>/serve.json`` while the block runs; removed after, if still ours."""
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / ANNOUNCEMENT
    body = {
        "url": f"http://{reachable_host(settings.api_host)}:{settings.api_port}",
        "pid": os.getpid(),
        "store": store_key(settings),
    }
    handle, partial = tempfile.mkstemp(dir=settings.home, prefix=".serve-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(body, out)
    Path(partial).replace(path)  # a reader sees the old announcement or the whole new one
    # uvicorn hands a SIGTERM back to the handler it found once it has shut down: make that handler end the
    # process through Python, so that the block below runs and the announcement is withdrawn.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        with suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def find_server(settings: Settings) -> RunningServer | None:
    """The announced server for this store and model, if its process is alive; None otherwise."""
    try:
        body = json.loads((settings.home / ANNOUNCEMENT).read_text())
        url, pid, store = str(body["url"]), int(body["pid"]), str(body["store"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if store != store_key(settings) or not _alive(pid):
        return None
    return RunningServer(url, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def search_via_server(settings: Settings, request: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """POST /api/search to the running server: its answer and its URL, or None to search in process instead."""
    if not settings.search_via_server:
        return None
    server = find_server(settings)
    if server is None:
        return None
    import httpx

    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"} if settings.api_token else {}
    try:
        response = httpx.post(
            f"{server.url}/api/search",
            json=request,
            headers=headers,
            timeout=httpx.Timeout(ANSWER_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    answer: dict[str, Any] = response.json()
    return answer, server.url
