"""Team mode on the real engine: per-space HNSW indexes, filtered and exact search, SKIP LOCKED claims,
LISTEN/NOTIFY wake-ups and ``holocron db`` against PostgreSQL + pgvector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, insert, select, text

from datafiles import data_file
from holocron.jobs import notify
from holocron.jobs.notify import JobWaiter, notify_job_available
from holocron.jobs.queue import JobQueue
from holocron.retrieval.keyword import keyword_search
from holocron.store import pg_hnsw
from holocron.store.chunks import refresh_chunk_statistics
from holocron.store.database import Database
from holocron.store.embeddings import EmbeddingWrite, insert_embeddings
from holocron.store.types import utcnow

pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


def add_space(db: Database, dimensions: int, metric: str = "cosine", name: str = "space") -> pg_hnsw.SpaceKey:
    t = db.t.embedding_space
    with db.write() as tx:
        space_id = tx.execute(
            insert(t)
            .values(
                name=name,
                provider="local",
                model_name="test-model",
                model_tag=name,
                model_digest="sha256:0",
                dimensions=dimensions,
                normalize_flag=True,
                distance_metric=metric,
                preprocess_policy_json={},
                created_utc=utcnow(),
            )
            .returning(t.c.embedding_space_id)
        ).scalar_one()
    return pg_hnsw.SpaceKey(int(space_id), dimensions, metric)


def add_chunks(db: Database, n: int, *, rare_every: int = 0, text_of: Callable[[int], str] | None = None) -> list[str]:
    """n chunks over two sources; with ``rare_every``, every rare_every-th chunk is of type 'rare'; ``text_of``
    gives the i-th chunk's text."""
    now = utcnow()
    with db.write() as tx:
        for source_id in ("common", "rare"):
            tx.execute(
                insert(db.t.source_registry).values(
                    source_id=source_id,
                    source_type="html",
                    source_system=source_id,
                    source_ref_json={},
                    tags_json=[],
                    status="indexed",
                    chunk_count=0,
                    chunks_dropped=0,
                    created_utc=now,
                    updated_utc=now,
                )
            )
        ids = [f"chunk-{i:06d}" for i in range(n)]
        tx.execute(
            insert(db.t.chunk),
            [
                {
                    "chunk_id": chunk_id,
                    "source_id": "rare" if rare_every and i % rare_every == 0 else "common",
                    "source_type": "rare" if rare_every and i % rare_every == 0 else "html",
                    "source_ref_json": {},
                    "chunk_index": i,
                    "start_offset": 0,
                    "end_offset": 1,
                    "content": text_of(i) if text_of else "x",
                    "content_sha256": "c" * 64,
                    "byte_count": 1,
                    "policy_version": "v1",
                    "policy_json": {},
                    "created_utc": now,
                }
                for i, chunk_id in enumerate(ids)
            ],
        )
    return ids


def unit(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def store(db: Database, space: pg_hnsw.SpaceKey, ids: list[str], vectors: np.ndarray) -> None:
    with db.write() as tx:
        insert_embeddings(tx, space.embedding_space_id, [EmbeddingWrite(i, "c" * 64) for i in ids], vectors, None)


def analyze(db: Database) -> None:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def analyzed_space(db: Database, n: int, dims: int, seed: int) -> tuple[pg_hnsw.SpaceKey, np.ndarray]:
    """A space of ``n`` random unit vectors over as many chunks, indexed and with fresh statistics."""
    space = add_space(db, dims)
    vectors = unit(np.random.default_rng(seed), n, dims)
    store(db, space, add_chunks(db, n), vectors)
    analyze(db)
    return space, vectors


def index_definition(db: Database, space_id: int) -> str | None:
    with db.read() as tx:
        found = tx.execute(
            text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'vector' AND indexname = :name"),
            {"name": pg_hnsw.index_name(space_id)},
        ).scalar()
    return str(found) if found is not None else None


# --- HNSW indexes ----------------------------------------------------------------------------------------------


def test_first_embeddings_create_the_spaces_partial_hnsw_index(pg: Database) -> None:
    space = add_space(pg, 8)
    assert index_definition(pg, space.embedding_space_id) is None
    ids = add_chunks(pg, 3)
    store(pg, space, ids, unit(np.random.default_rng(0), 3, 8))
    definition = index_definition(pg, space.embedding_space_id)
    assert definition is not None
    assert "USING hnsw (((vector)::vector(8)) vector_cosine_ops)" in definition
    assert "m='16'" in definition and "ef_construction='64'" in definition
    assert f"WHERE (embedding_space_id = {space.embedding_space_id})" in definition


@pytest.mark.parametrize(("metric", "opclass"), [("ip", "vector_ip_ops"), ("l2", "vector_l2_ops")])
def test_operator_class_follows_the_spaces_metric(pg: Database, metric: str, opclass: str) -> None:
    space = add_space(pg, 4, metric)
    params = pg_hnsw.PgHnswParams(m=8, ef_construction=32, ef_search=10)
    assert pg_hnsw.ensure_space_index(pg, space, params) is True
    assert pg_hnsw.ensure_space_index(pg, space, params) is False  # already there
    definition = index_definition(pg, space.embedding_space_id)
    assert definition is not None and opclass in definition and "m='8'" in definition


def test_search_uses_the_index_and_agrees_with_exact_search(pg: Database) -> None:
    space, vectors = analyzed_space(pg, 3000, 32, seed=1)
    query = vectors[17] + 0.05 * vectors[18]
    with pg.read() as tx:
        # pgvector costs an index scan by ef_search; on 3,000 small vectors a large one makes a sequential scan
        # cheaper, and the planner rightly takes it. At ef_search 100 the index wins: the expression matched.
        plan = pg_hnsw.explain(tx, space, query, 10, ef_search=100)
        assert f"Index Scan using {pg_hnsw.index_name(space.embedding_space_id)}" in plan, plan
        approx = pg_hnsw.hnsw_search(tx, space, query, 10, ef_search=200)
        ef = tx.execute(text("SHOW hnsw.ef_search")).scalar_one()
        exact = pg_hnsw.exact_search(tx, space, query, 10)
    assert ef == "200"  # SET LOCAL: this transaction only
    assert len(approx) == 10 and [s for _, s in approx] == sorted((s for _, s in approx), reverse=True)
    assert pg_hnsw.recall_at_k([[i for i, _ in approx]], [[i for i, _ in exact]], 10) >= 0.9
    assert approx[0][0] == exact[0][0]


def test_an_unfiltered_search_walks_the_graph_whatever_the_join_is_estimated_at(pg: Database) -> None:
    space, vectors = analyzed_space(pg, 3000, 32, seed=4)
    with pg.read() as tx:
        # The join to the chunk's current text is estimated at one row, and at the default ef_search a sort
        # of every vector then looks cheaper than the graph: left to itself, the planner scans the space.
        tx.execute(text("SET LOCAL hnsw.ef_search = 300"))
        unforced = "\n".join(
            str(row[0])
            for row in tx.execute(
                text(
                    f"EXPLAIN SELECT e.embedding_id FROM vector.embedding e JOIN vector.chunk c "
                    f"ON c.chunk_id = e.chunk_id AND c.content_sha256 = e.input_content_sha256 "
                    f"WHERE e.embedding_space_id = {space.embedding_space_id} "
                    f"ORDER BY e.vector::vector(32) <=> CAST(:q AS vector) LIMIT 100"
                ),
                {"q": "[" + ",".join(str(float(x)) for x in vectors[9]) + "]"},
            )
        )
        plan = pg_hnsw.explain(tx, space, vectors[9], 100)
        approx = pg_hnsw.hnsw_search(tx, space, vectors[9], 100)
    with pg.read() as tx:
        exact = pg_hnsw.exact_search(tx, space, vectors[9], 100)
    index = f"Index Scan using {pg_hnsw.index_name(space.embedding_space_id)}"
    assert index not in unforced, unforced
    assert index in plan and "Nested Loop" in plan, plan
    assert pg_hnsw.recall_at_k([[i for i, _ in approx]], [[i for i, _ in exact]], 100) >= 0.9


def test_filtered_search_returns_k_hits_when_k_exist(pg: Database) -> None:
    space = add_space(pg, 16)
    ids = add_chunks(pg, 4000, rare_every=200)  # 20 'rare' chunks among 4000
    vectors = unit(np.random.default_rng(2), 4000, 16)
    store(pg, space, ids, vectors)
    analyze(pg)
    rare = pg.t.chunk.c.source_type == "rare"
    with pg.read() as tx:
        # So selective a filter is cheaper exact, and the planner knows it; forbid the sort to make it walk
        # the graph, where only the iterative scan finds 10 rare rows (ef_search 300 sees about 1.5 of them).
        tx.execute(text("SET LOCAL enable_sort = off"))
        plan = pg_hnsw.explain(tx, space, vectors[5], 10, allowed_sql_filter=rare)
        approx = pg_hnsw.hnsw_search(tx, space, vectors[5], 10, allowed_sql_filter=rare)
        tx.execute(text("SET LOCAL enable_sort = on"))
        exact = pg_hnsw.exact_search(tx, space, vectors[5], 10, allowed_sql_filter=rare)
        rare_ids = set(
            tx.execute(
                select(pg.t.embedding.c.embedding_id)
                .join(pg.t.chunk, pg.t.chunk.c.chunk_id == pg.t.embedding.c.chunk_id)
                .where(rare)
            ).scalars()
        )
    assert f"Index Scan using {pg_hnsw.index_name(space.embedding_space_id)}" in plan, plan
    assert len(approx) == 10 and {i for i, _ in approx} <= rare_ids
    assert len(exact) == 10 and {i for i, _ in exact} <= rare_ids


def test_search_leaves_out_embeddings_of_a_chunks_earlier_text(pg: Database) -> None:
    space = add_space(pg, 8)
    ids = add_chunks(pg, 50)
    vectors = unit(np.random.default_rng(3), 50, 8)
    store(pg, space, ids, vectors)
    with pg.write() as tx:
        tx.execute(pg.t.chunk.update().where(pg.t.chunk.c.chunk_id == ids[0]).values(content_sha256="d" * 64))
    with pg.read() as tx:
        hits = pg_hnsw.hnsw_search(tx, space, vectors[0], 5)
        first_id = tx.execute(
            select(pg.t.embedding.c.embedding_id).where(pg.t.embedding.c.chunk_id == ids[0])
        ).scalar_one()
    assert first_id not in {i for i, _ in hits}


def test_recall_on_real_scifact_embeddings(pg: Database) -> None:
    """A real subset (model embeddings of SciFact abstracts); the full corpus is measured by bench/postgres.py."""
    from sentence_transformers import SentenceTransformer

    from holocron.embedding.local import bundled_model_path

    with data_file("scifact/corpus.jsonl").open(encoding="utf-8") as corpus:
        docs = [json.loads(line) for line, _ in zip(corpus, range(400), strict=False)]
    assert len(docs) == 400
    texts = [f"{d.get('title', '')}. {d.get('text', '')}" for d in docs]
    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    vectors = np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
    space = add_space(pg, vectors.shape[1])
    ids = add_chunks(pg, len(texts))
    store(pg, space, ids, vectors)
    analyze(pg)
    queries = vectors[:40] * 0.8 + vectors[40:80] * 0.2
    approx, exact = [], []
    with pg.read() as tx:
        for query in queries:
            approx.append([i for i, _ in pg_hnsw.hnsw_search(tx, space, query, 10)])
            exact.append([i for i, _ in pg_hnsw.exact_search(tx, space, query, 10)])
    assert pg_hnsw.recall_at_k(approx, exact, 10) >= 0.95


# --- the queue -------------------------------------------------------------------------------------------------


def _capture(engine: Engine) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_claims_skip_rows_another_worker_holds(pg: Database) -> None:
    space = add_space(pg, 4)
    queue = JobQueue(pg)
    first = queue.enqueue("EMBED_CHUNKS", {"space_id": space.embedding_space_id, "chunk_ids": ["a" * 64]}).job
    second = queue.enqueue("EMBED_CHUNKS", {"space_id": space.embedding_space_id, "chunk_ids": ["b" * 64]}).job
    seen = _capture(pg.engine)
    with ThreadPoolExecutor(1) as pool:
        with pg.engine.connect() as other, other.begin():
            other.execute(select(pg.t.job).where(pg.t.job.c.job_id == first.job_id).with_for_update())
            # The claim runs while the row stays locked. One that waited for the lock could only return once the
            # lock is released, below: it would still be running here (the timeout only bounds that hang).
            claim = pool.submit(queue.claim, "w2", lease_seconds=30)
            futures.wait([claim], timeout=60)
            finished_while_locked = claim.done()
        claimed = claim.result()
    assert finished_while_locked, "the claim waited for the row another worker holds instead of skipping it"
    assert claimed is not None and claimed.job_id == second.job_id
    assert any("FOR UPDATE SKIP LOCKED" in s for s in seen)


# --- LISTEN/NOTIFY ---------------------------------------------------------------------------------------------


class CountingReceives:
    """Wraps a waiter's ``_receive`` (one slice of a wait): counts the slices, and can set a stop event in one."""

    def __init__(self, waiter: JobWaiter, *, stop_in_slice: int = 0, stop: threading.Event | None = None) -> None:
        self.slices: list[float] = []
        self.results: list[bool] = []
        self._receive = waiter._receive
        self._stop_in_slice = stop_in_slice
        self._stop = stop
        waiter._receive = self  # type: ignore[method-assign]

    def __call__(self, timeout_s: float) -> bool:
        self.slices.append(timeout_s)
        if self._stop is not None:
            if len(self.slices) == self._stop_in_slice:
                self._stop.set()
            elif len(self.slices) > self._stop_in_slice:
                raise AssertionError(f"the wait went on for slice {len(self.slices)} after its stop event was set")
        got = self._receive(timeout_s)
        self.results.append(got)
        return got


def test_waiter_wakes_on_notify_at_commit_only(pg: Database) -> None:
    with JobWaiter(pg) as waiter:
        assert waiter.listen()
        receives = CountingReceives(waiter)

        def notify_later() -> None:
            time.sleep(0.3)  # so that the wait below is already blocked when the notification comes
            with pg.write() as tx:
                notify_job_available(tx)

        thread = threading.Thread(target=notify_later)
        thread.start()
        # Woken by the notification: True only comes from a received NOTIFY; without a stop event the wait is
        # one blocking receive, which returned because something arrived, not because 10 s went by.
        assert waiter.wait(10.0) is True
        assert receives.results == [True]
        thread.join()
        with pytest.raises(RuntimeError), pg.write() as tx:
            notify_job_available(tx)
            raise RuntimeError("rolled back")
        assert waiter.wait(0.4) is False  # a rolled-back enqueue wakes no one
        assert receives.results[0] is True and not any(receives.results[1:])


def test_waiter_returns_when_stopped(pg: Database) -> None:
    """A wait with a stop event listens in slices and looks at the event between them: it returns after the
    slice in which the event was set, not at its timeout."""
    with JobWaiter(pg) as waiter:
        assert waiter.listen()
        stop = threading.Event()
        receives = CountingReceives(waiter, stop_in_slice=2, stop=stop)
        assert waiter.wait(3600.0, stop=stop) is False
        assert receives.results == [False, False]  # two slices, the second one set the event, nothing notified
        assert all(0 < s <= notify._SLICE_S for s in receives.slices)
        assert waiter.wait(3600.0, stop=stop) is False  # already set: no slice at all
        assert len(receives.slices) == 2


def test_waiter_sleeps_on_sqlite(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(notify, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    with sqlite_db.write() as tx:
        notify_job_available(tx)  # nothing to do on SQLite
    waiter = JobWaiter(sqlite_db)
    assert waiter.wait(0.2) is False
    assert slept == [0.2]  # the whole timeout, as one plain sleep
    stop = RecordingEvent()
    assert waiter.wait(0.3, stop=stop) is False
    assert stop.waited == [0.3] and slept == [0.2]  # with a stop event, it sleeps on the event instead
    assert not waiter.listening


class RecordingEvent(threading.Event):
    """A stop event that records how long it was waited on, and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout)
        return self.is_set()


# --- holocron db -----------------------------------------------------------------------------------------------


def test_db_upgrade_and_status_commands_on_postgres(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "HOLOCRON_DATABASE_URL": pg_url, "HOLOCRON_HOME": str(tmp_path)}
    cli = [str(Path(sys.executable).with_name("holocron"))]
    upgraded = subprocess.run([*cli, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    status = subprocess.run([*cli, "db", "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["up_to_date"] is True and data["database"].startswith("postgresql")


# --- keyword search ---------------------------------------------------------------------------------------------


def harbour_text(i: int) -> str:
    """3,000 chunks: every one about the harbour, every other one about its ferry, two in a hundred about the
    lighthouse (one of them with the ferry)."""
    words = ["harbour", "quay"]
    if i % 2 == 0:
        words.append("ferry")
    if i % 100 in (0, 1):
        words.append("lighthouse")
    return " ".join(words)


def test_a_keyword_search_matches_on_the_rare_terms_and_ranks_by_every_term(pg: Database) -> None:
    ids = add_chunks(pg, 3000, text_of=harbour_text)
    lighthouse = {ids[i] for i in range(3000) if i % 100 in (0, 1)}
    with_ferry = {ids[i] for i in range(3000) if i % 100 == 0}

    def found(question: str, limit: int, cutoff: float = 0.1) -> list[str]:
        with pg.read() as tx:
            return [chunk_id for chunk_id, _ in keyword_search(tx, question, limit, common_cutoff=cutoff)]

    # No statistics yet: no term is known to be common, so every term is matched on, as without the cutoff.
    assert len(found("harbour lighthouse", 100)) == 100
    assert refresh_chunk_statistics(pg, written=3000) is True  # never analysed
    assert refresh_chunk_statistics(pg, written=10) is False  # a few rows more change no share
    # "harbour" is in every chunk: it ranks but does not match, so only the lighthouse chunks are scored.
    assert set(found("harbour lighthouse", 100)) == lighthouse
    assert len(found("harbour lighthouse", 100, cutoff=1.0)) == 100  # the cutoff off: any term matches
    # "ferry" (half the chunks) is common too, and still weighs in the ranking: the lighthouse chunks that also
    # mention the ferry come first.
    ranked = found("ferry lighthouse", 100)
    assert set(ranked) == lighthouse and set(ranked[: len(with_ferry)]) == with_ferry
    # Every term common: the least common one is matched on (the ferry's 1,500 chunks, not all 3,000).
    assert len(found("harbour ferry", 3000)) == 1500
    assert len(found("harbour ferry", 3000, cutoff=1.0)) == 3000
