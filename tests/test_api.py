"""The HTTP API through the real ASGI app: every resource, auth beyond loopback, validation, pagination, and
searches served side by side.

A deterministic hashing provider stands in for the model (the API's contract does not depend on the model); the
pages are indexed by the real pipeline.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from holocron.api import create_app
from holocron.api.auth import AuthConfigError
from holocron.config import Settings
from holocron.embedding.base import EmbeddingProvider, ModelIdentity, ProviderStats, Purpose
from holocron.embedding.local import LocalProvider
from holocron.net import is_loopback
from holocron.service import Holocron
from holocron.vocabulary import JOB_STATUSES
from servers import UvicornThread

DIMS = 32


class HashProvider:
    """Bag of hashed words: identical text gives identical vectors, shared words give similar ones."""

    def __init__(self) -> None:
        self.stats = ProviderStats()

    def identity(self) -> ModelIdentity:
        return ModelIdentity("test", "hash-words", "v1", "sha256:" + "0" * 64, DIMS, 256, True)

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> np.ndarray:
        self.stats.calls += 1
        self.stats.texts += len(texts)
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % DIMS] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def close(self) -> None:
        pass


PAGES = {
    "tea.md": "# Tea\n\nGreen tea is steamed or pan-fired soon after picking, which keeps it from oxidising.\n",
    "rust.md": "# Iron\n\nRust forms when iron reacts with oxygen and water over time.\n",
    "bees.md": "# Bees\n\nHoney bees dance to tell the hive where the flowers are.\n",
}


def add_jobs(holo: Holocron, space_id: int) -> dict[str, int]:
    """One job in every state (two dead letters), inserted directly; returns status -> a job id."""
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    rows = [*JOB_STATUSES, "DEADLETTER"]
    with holo.db.write() as tx:
        for n, status in enumerate(rows):
            done = status in ("SUCCEEDED", "DEADLETTER", "CANCELLED")
            result = tx.execute(
                tx.t.job.insert().values(
                    job_type="CHUNK_SOURCE" if n % 2 == 0 else "EMBED_CHUNKS",
                    status=status,
                    priority=0,
                    input_json={"space_id": space_id, "source_ids": [f"s{n}"]},
                    embedding_space_id=space_id,
                    max_attempts=3,
                    attempt_count=3 if status == "DEADLETTER" else (1 if status != "NEW" else 0),
                    available_utc=now - timedelta(seconds=30 + n),
                    last_error=f"boom {n}: extraction failed" if status in ("FAILED", "DEADLETTER") else None,
                    locked_by="w1" if status == "RUNNING" else None,
                    created_utc=now - timedelta(minutes=5),
                    updated_utc=now - timedelta(seconds=n),
                    completed_utc=now - timedelta(seconds=10) if done else None,
                )
            )
            ids.setdefault(status, int(result.inserted_primary_key[0]))
    return ids


class GatedProvider(HashProvider):
    """Once ``gated``, a query waits inside the model until ``release`` is set (``waiting`` says it is there)."""

    def __init__(self) -> None:
        super().__init__()
        self.gated = False
        self.waiting = threading.Event()
        self.release = threading.Event()

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> np.ndarray:
        if self.gated and purpose is Purpose.QUERY:
            self.waiting.set()
            if not self.release.wait(120):
                raise RuntimeError("the test never released the model")
        return super().embed(texts, purpose)


@contextmanager
def indexed_holocron(
    tmp_path: Path, database_url: str | None = None, provider: EmbeddingProvider | None = None
) -> Iterator[Holocron]:
    """PAGES ingested from tmp_path/pages (outside the data home) and indexed, on the given database."""
    pages = tmp_path / "pages"
    pages.mkdir(exist_ok=True)
    for name, text in PAGES.items():
        (pages / name).write_text(text)
    settings = Settings(home=tmp_path / "home", database_url=database_url, embed_batch_size=8)
    with Holocron(settings, provider=provider or HashProvider()) as h:
        h.ingest([pages])
        h.index()
        yield h


@pytest.fixture()
def holo(tmp_path: Path) -> Iterator[Holocron]:
    with indexed_holocron(tmp_path) as h:
        yield h


@pytest.fixture()
def client(holo: Holocron) -> Iterator[TestClient]:
    with TestClient(create_app(holo)) as c:
        yield c


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    spec = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/evidence", "/api/sources", "/api/spaces", "/api/jobs", "/api/runs", "/metrics"):
        assert path in spec["paths"], path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_search_and_evidence(client: TestClient) -> None:
    body = client.post("/api/search", json={"query": "green tea picking", "k": 2, "mode": "vector"}).json()
    assert body["mode"] == "vector"
    assert 1 <= len(body["hits"]) <= 2
    assert body["hits"][0]["title"] == "Tea"
    assert body["hits"][0]["source_url"].startswith("/api/sources/")
    assert client.get(body["hits"][0]["source_url"]).status_code == 200
    only_bees = client.post(
        "/api/search",
        json={"query": "tea", "k": 5, "mode": "keyword", "filters": {"source_ids": [body["hits"][0]["source_id"]]}},
    ).json()
    assert {h["source_id"] for h in only_bees["hits"]} <= {body["hits"][0]["source_id"]}
    bundle = client.post("/api/evidence", json={"question": "how do bees talk", "max_items": 2}).json()
    assert 1 <= len(bundle["items"]) <= 2
    assert bundle["bundle_id"]


def test_one_vocabulary(client: TestClient) -> None:
    """The field names the CLI's --json uses too: offsets, decoded JSON columns, a run's options and metrics."""

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    body = client.post("/api/search", json={"query": "green tea", "k": 2, "filters": {"tags": []}}).json()
    hit = body["hits"][0]
    assert body["filters"] == {} and {"start_offset", "end_offset", "evidence_id", "source_ref"} <= set(hit)
    assert hit["end_offset"] > hit["start_offset"] >= 0 and hit["evidence_id"].startswith("ev_")
    sources = client.get("/api/sources").json()
    assert all(isinstance(s["source_ref"], dict) and isinstance(s["tags"], list) for s in sources["items"])
    assert client.get(hit["source_url"]).json()["source_id"] == hit["source_id"]
    run = client.get("/api/runs").json()["items"][0]
    assert {"options", "metrics", "model_name", "model_tag", "model_digest"} <= set(run)
    everything = [body, sources, run, client.get("/api/status").json(), client.get("/api/spaces").json()]
    assert not {k for k in keys(everything) if k.endswith("_json")}
    assert not keys(everything) & {"start", "end", "all"}


def test_validation_errors_are_clear_4xx(client: TestClient) -> None:
    for payload, needle in [
        ({"query": "", "k": 3}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "mode": "psychic"}, "mode"),
        ({"query": "x", "filters": {"colour": ["red"]}}, "colour"),
        ({"k": 3}, "query"),
    ]:
        response = client.post("/api/search", json=payload)
        assert response.status_code == 422, payload
        assert needle in response.json()["detail"], response.json()
    assert client.get("/api/sources", params={"limit": 100000}).status_code == 422
    assert client.get("/api/sources", params={"offset": -1}).status_code == 422
    assert client.get("/api/jobs", params={"status": "SLEEPING"}).status_code == 422
    assert client.get("/api/jobs/999999").status_code == 404
    assert client.get("/api/runs/nope").status_code == 404
    bad = client.post("/api/jobs", json={"job_type": "CHUNK_SOURCE", "input": {"space_id": 1}})
    assert bad.status_code == 422 and "source_ids" in bad.json()["detail"]
    assert client.post("/api/jobs", json={"job_type": "NAP", "input": {}}).status_code == 422


def test_pagination_on_lists(client: TestClient, holo: Holocron) -> None:
    add_jobs(holo, holo.space.embedding_space_id)
    first = client.get("/api/sources", params={"limit": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_offset"] == 2
    rest = client.get("/api/sources", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    assert {s["source_id"] for s in first["items"] + rest["items"]} == {
        s["source_id"] for s in client.get("/api/sources").json()["items"]
    }
    jobs = client.get("/api/jobs", params={"limit": 3, "offset": 3}).json()
    assert jobs["total"] == 7 and len(jobs["items"]) == 3
    dead = client.get("/api/jobs", params={"status": "DEADLETTER"}).json()
    assert dead["total"] == 2 and all(j["status"] == "DEADLETTER" for j in dead["items"])
    spaces = client.get("/api/spaces", params={"limit": 1}).json()
    assert spaces["total"] == 1 and spaces["items"][0]["coverage"] == 1.0
    runs = client.get("/api/runs", params={"limit": 1}).json()
    assert runs["total"] == 1 and runs["next_offset"] is None


def test_runs_with_metrics_and_artifacts(client: TestClient, holo: Holocron) -> None:
    run = client.get("/api/runs").json()["items"][0]
    assert run["status"] == "SUCCEEDED" and run["metrics"]["chunks_written"] == 3
    detail = client.get(f"/api/runs/{run['run_id']}").json()
    assert {a["artifact_type"] for a in detail["artifacts"]} == {"chunk_manifest", "embedding_manifest"}


def test_jobs_enqueue_retry_cancel(client: TestClient, holo: Holocron) -> None:
    ids = add_jobs(holo, holo.space.embedding_space_id)
    made = client.post(
        "/api/jobs",
        json={"job_type": "CHUNK_SOURCE", "input": {"space_id": holo.space.embedding_space_id, "source_ids": ["x"]}},
    )
    assert made.status_code == 201 and made.json()["created"] is True
    assert made.json()["job"]["status"] == "NEW"
    dead = ids["DEADLETTER"]
    assert client.post(f"/api/jobs/{dead}/retry").json() == {"job_ids": [dead]}
    assert client.get(f"/api/jobs/{dead}").json()["status"] == "NEW"
    conflict = client.post(f"/api/jobs/{ids['SUCCEEDED']}/retry")
    assert conflict.status_code == 409 and "SUCCEEDED" in conflict.json()["detail"]
    assert client.post(f"/api/jobs/{ids['NEW']}/cancel").json() == {"job_ids": [ids["NEW"]]}
    assert client.post(f"/api/jobs/{ids['NEW']}/cancel").status_code == 409
    assert client.post("/api/jobs/424242/retry").status_code == 404


def test_status_overview_matches_database(client: TestClient, holo: Holocron) -> None:
    add_jobs(holo, holo.space.embedding_space_id)
    o = client.get("/api/status").json()
    assert o["queue"]["by_status"] == {
        "NEW": 1,
        "RUNNING": 1,
        "SUCCEEDED": 1,
        "FAILED": 1,
        "DEADLETTER": 2,
        "CANCELLED": 1,
    }
    assert o["queue"]["depth"] == 2 and o["queue"]["available"] == 2
    assert o["queue"]["oldest_available_age_s"] >= 30
    assert o["dead_letters"]["total"] == 2 and "extraction failed" in o["dead_letters"]["items"][0]["reason"]
    assert o["spaces"][0]["chunks_embedded"] == o["spaces"][0]["chunks_total"] == 3
    assert o["sources"]["by_status"] == {"indexed": 3}
    assert sum(b["chunks_written"] for b in o["throughput"]["buckets"]) == 3
    assert sum(b["jobs_succeeded"] for b in o["throughput"]["buckets"]) == 1
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="queue-status-DEADLETTER">2<' in page.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_beyond_loopback_needs_a_token_to_start(host: str, holo: Holocron) -> None:
    assert not is_loopback(host)
    with pytest.raises(AuthConfigError, match="HOLOCRON_API_TOKEN"):
        create_app(holo, host=host)


def test_token_required_beyond_loopback(holo: Holocron) -> None:
    token = "s3cret-token-value"
    holo.settings = holo.settings.model_copy(update={"api_token": SecretStr(token)})
    app = create_app(holo, host="0.0.0.0")
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/ready").status_code == 200
        for n, (method, path) in enumerate(
            [
                ("GET", "/api/status"),
                ("GET", "/api/sources"),
                ("GET", "/api/jobs"),
                ("GET", "/metrics"),
                ("GET", "/openapi.json"),
                ("POST", "/api/search"),
                ("POST", "/api/jobs/1/retry"),
                ("DELETE", "/api/sources/files:pages/tea.md"),
            ]
        ):
            response = c.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            # From an address of its own each time: failed logins are rate-limited per address.
            wrong = TestClient(app, client=(f"203.0.113.{n + 1}", 40000))
            assert wrong.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/status", headers=good).status_code == 200
        assert c.get("/metrics", headers=good).status_code == 200
        assert c.post("/api/search", headers=good, json={"query": "tea"}).status_code == 200
        # The browser: redirected to the login form, then a cookie that is not the token itself.
        assert c.get("/", follow_redirects=False).headers["location"] == "/login"
        assert c.post("/login", data={"token": "nope"}, follow_redirects=False).status_code == 401
        login = c.post("/login", data={"token": token}, follow_redirects=False)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and token not in cookie
        assert c.get("/").status_code == 200
        assert c.get("/api/status").status_code == 200
    with TestClient(app) as fresh:
        once = fresh.get(f"/?token={token}", follow_redirects=False)
        assert once.status_code == 303 and once.headers["location"] == "/"
        assert fresh.get("/api/status").status_code == 200


def test_settings_target_opens_its_own_library(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", api_host="127.0.0.1")
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/spaces").json()["total"] == 0
        assert c.get("/api/status").json()["queue"]["total"] == 0


# --- searches side by side --------------------------------------------------------------------------------------


def test_searches_run_side_by_side(db_url: str, tmp_path: Path) -> None:
    """A search waiting inside the model holds nothing that a keyword search needs: the second one is answered
    while the first is still in flight, over real HTTP."""
    provider = GatedProvider()
    with indexed_holocron(tmp_path, db_url, provider) as holo:
        server = UvicornThread(create_app(holo))
        slow: dict[str, httpx.Response] = {}

        def vector_search() -> None:
            body = {"query": "green tea picking", "mode": "vector", "k": 2}
            slow["response"] = httpx.post(f"{server.url}/api/search", json=body, timeout=120)

        thread = threading.Thread(target=vector_search)
        try:
            provider.gated = True
            thread.start()
            assert provider.waiting.wait(60), "the vector search never reached the model"
            quick = httpx.post(
                f"{server.url}/api/search", json={"query": "honey bees hive", "mode": "keyword"}, timeout=60
            )
            assert quick.status_code == 200, quick.text
            assert quick.json()["hits"][0]["title"] == "Bees"
            assert thread.is_alive() and "response" not in slow  # the first search is still waiting
        finally:
            provider.release.set()
            thread.join(60)
            server.stop()
        assert slow["response"].status_code == 200, slow["response"].text
        assert slow["response"].json()["hits"][0]["title"] == "Tea"


def test_query_log_is_written_after_the_search(tmp_path: Path) -> None:
    """While a logged search runs, SQLite's write lock stays free (another writer takes it at once); the
    retrieval and its hits are written afterwards, in a transaction of their own."""
    provider = GatedProvider()
    with indexed_holocron(tmp_path, provider=provider) as holo:
        assert holo.db.sqlite_path is not None
        server = UvicornThread(create_app(holo))
        done: dict[str, httpx.Response] = {}

        def hybrid_search() -> None:
            body = {"query": "green tea picking", "mode": "hybrid", "k": 2, "log": True}
            done["response"] = httpx.post(f"{server.url}/api/search", json=body, timeout=120)

        thread = threading.Thread(target=hybrid_search)
        try:
            provider.gated = True
            thread.start()
            assert provider.waiting.wait(60), "the search never reached the model"
            other = sqlite3.connect(holo.db.sqlite_path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # 'database is locked' at once if the search held the lock
                other.execute("COMMIT")
            finally:
                other.close()
        finally:
            provider.release.set()
            thread.join(60)
            server.stop()
        response = done["response"]
        assert response.status_code == 200, response.text
        r, h = holo.db.t.retrieval, holo.db.t.retrieval_hit
        retrieval_id = response.json()["retrieval_id"]
        with holo.db.read() as tx:
            assert tx.execute(select(func.count()).select_from(r).where(r.c.retrieval_id == retrieval_id)).scalar()
            hits = tx.execute(select(func.count()).select_from(h).where(h.c.retrieval_id == retrieval_id)).scalar()
        assert hits == len(response.json()["hits"]) > 0


class _OneAtATime:
    """A stand-in for the sentence-transformers model that notices two ``encode`` calls inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.overlapped = False
        self.first_inside = threading.Event()
        self.second_inside = threading.Event()
        self._count = threading.Lock()

    def encode(self, inputs: list[str], **_options: Any) -> np.ndarray:
        with self._count:
            self.inside += 1
            first = self.inside == 1
        try:
            if first:
                self.first_inside.set()
                # A second call that got past the provider's lock would arrive now.
                self.overlapped = self.second_inside.wait(2)
            else:
                self.overlapped = True
                self.second_inside.set()
            return np.ones((len(inputs), 384), dtype=np.float32)
        finally:
            with self._count:
                self.inside -= 1


def test_local_provider_makes_one_model_call_at_a_time() -> None:
    provider = LocalProvider()
    model = _OneAtATime()
    provider.__dict__["model"] = model  # the cached model, never loaded
    first = threading.Thread(target=provider.embed, args=(["one"],))
    first.start()
    assert model.first_inside.wait(30)
    second = threading.Thread(target=provider.embed, args=(["two"],))
    second.start()
    first.join(30)
    second.join(30)
    assert not first.is_alive() and not second.is_alive()
    assert not model.overlapped, "two threads were inside the model at once"
    assert provider.stats.calls == 2
