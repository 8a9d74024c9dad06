"""Team mode on PostgreSQL + pgvector against SQLite: queue claims, bulk inserts, HNSW search.

Run by hand (a PostgreSQL server with pgvector; ``scripts/pg.sh start`` prints a URL):

    .venv/bin/python bench/postgres.py --pg-url "$(scripts/pg.sh start | tail -1)"
    .venv/bin/python bench/postgres.py --pg-url ... --quick     # fewer jobs and vectors, for a smoke run

Prints, side by side:

1. claim-and-complete throughput of 1, 2, 4 and 8 ``Worker`` processes (no-op handlers, real queue, real run
   rows) on PostgreSQL and on a SQLite file; target: 4 PostgreSQL workers >= 1.8x one;
2. embedding insert throughput (``insert_embeddings``, batches of 1,000 rows) on both engines, on
   PostgreSQL with the space's HNSW index built after the load and maintained row by row; target >= 5,000/s;
3. HNSW search against exact search on PostgreSQL: recall@10, p50 and p95 latency, on the real SciFact
   embeddings (5,183 abstracts, real queries) and on 10k and 100k vectors made from them (Gaussian noise,
   renormalised); target at 100k: p50 < 5 ms and recall@10 >= 0.95.

The SciFact embeddings (all-MiniLM-L6-v2, the bundled model, first 128 tokens of each abstract) are cached in
``--cache`` between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from noop_workers import seed_noop_jobs, start_noop_workers  # a sibling script module

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
DIMS = 384
MAX_TOKENS = 128  # the first 128 tokens of each abstract: a full-corpus embedding in minutes on two cores


# --- databases -------------------------------------------------------------------------------------------------


@contextmanager
def fresh_pg(server_url: str) -> Iterator[str]:
    """A new database with pgvector on the server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"holocron_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name)
    try:
        setup = create_engine(url, isolation_level="AUTOCOMMIT")
        with setup.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        setup.dispose()
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_db(engine: str, server_url: str) -> Iterator[str]:
    if engine == "postgres":
        with fresh_pg(server_url) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


def add_space(db: Any, dims: int = DIMS, name: str = "bench") -> Any:
    from sqlalchemy import insert

    from holocron.store.pg_hnsw import SpaceKey
    from holocron.store.types import utcnow

    t = db.t.embedding_space
    with db.write() as tx:
        space_id = tx.execute(
            insert(t)
            .values(
                name=name,
                provider="bench",
                model_name="all-MiniLM-L6-v2",
                model_tag=name,
                model_digest="sha256:bench",
                dimensions=dims,
                normalize_flag=True,
                distance_metric="cosine",
                preprocess_policy_json={},
                created_utc=utcnow(),
            )
            .returning(t.c.embedding_space_id)
        ).scalar_one()
    return SpaceKey(int(space_id), dims, "cosine")


def add_chunks(db: Any, n: int) -> list[str]:
    from sqlalchemy import insert

    from holocron.store.types import utcnow

    now = utcnow()
    ids = [f"{i:064x}" for i in range(n)]
    with db.write() as tx:
        tx.execute(
            insert(db.t.source_registry).values(
                source_id="bench",
                source_type="text",
                source_system="bench",
                source_ref_json={},
                tags_json=[],
                status="indexed",
                chunk_count=n,
                chunks_dropped=0,
                created_utc=now,
                updated_utc=now,
            )
        )
    for start in range(0, n, 10_000):
        with db.write() as tx:
            tx.execute(
                insert(db.t.chunk),
                [
                    {
                        "chunk_id": ids[i],
                        "source_id": "bench",
                        "source_type": "text",
                        "source_ref_json": {},
                        "chunk_index": i,
                        "start_offset": 0,
                        "end_offset": 1,
                        "content": "x",
                        "content_sha256": "c" * 64,
                        "byte_count": 1,
                        "policy_version": "bench",
                        "policy_json": {},
                        "created_utc": now,
                    }
                    for i in range(start, min(n, start + 10_000))
                ],
            )
    return ids


def insert_all(db: Any, space: Any, ids: list[str], vectors: np.ndarray, batch: int = 1000) -> float:
    """Seconds to write every vector with the product's insert path, one transaction per batch."""
    from holocron.store.embeddings import EmbeddingWrite, insert_embeddings

    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        writes = [EmbeddingWrite(chunk_id, "c" * 64) for chunk_id in ids[start : start + batch]]
        with db.write() as tx:
            insert_embeddings(tx, space.embedding_space_id, writes, vectors[start : start + batch], None)
    return time.perf_counter() - started


def analyze(db: Any) -> None:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


# --- 1. claim-and-complete throughput --------------------------------------------------------------------------


LOCK_WAITS: dict[int, float] = {}


class LockSampler:
    """Samples the benchmark database's backends while workers run: the share of them waiting on a lock.

    A global lock would show here as a share near (workers - 1) / workers; SKIP LOCKED claims keep it near 0.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, make_url

        self.database = make_url(url).database
        self.engine = create_engine(url)
        self.samples = 0
        self.waiting = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from sqlalchemy import text

        query = text(
            "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FROM pg_stat_activity"
            " WHERE datname = :db AND pid <> pg_backend_pid() AND state <> 'idle'"
        )
        with self.engine.connect() as conn:
            while not self._done.wait(0.02):
                waiting, active = conn.execute(query, {"db": self.database}).one()
                conn.rollback()
                self.samples += int(active)
                self.waiting += int(waiting)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        self.engine.dispose()
        return self.waiting / self.samples if self.samples else 0.0


def claim_throughput(engine: str, server_url: str, processes: int, jobs: int) -> float:
    """Jobs claimed, run (no-op) and completed per second by ``processes`` worker processes (all started and
    waiting before the first claim)."""
    from sqlalchemy import func, select

    from holocron.store.database import Database

    with fresh_db(engine, server_url) as url, tempfile.TemporaryDirectory() as home:
        db = Database(url)
        db.upgrade()
        seed_noop_jobs(db, jobs)
        go = Path(home) / "go"
        children = start_noop_workers(url, home, processes, go)
        sampler = LockSampler(url) if engine == "postgres" else None
        started = time.perf_counter()
        go.touch()
        done = sum(int(child.communicate(timeout=900)[0].strip().split()[-1]) for child in children)
        wall = time.perf_counter() - started
        if sampler is not None:
            LOCK_WAITS[processes] = sampler.stop()
        with db.read() as tx:
            j = tx.t.job
            first, last, succeeded = tx.execute(
                select(func.min(j.c.locked_utc), func.max(j.c.completed_utc), func.count()).where(
                    j.c.status == "SUCCEEDED"
                )
            ).one()
        db.dispose()
    if succeeded != jobs or done != jobs:
        raise RuntimeError(f"{engine}: expected {jobs} jobs, {succeeded} succeeded, {done} reported")
    # From the first claim to the last completion, as the database saw them: process start and exit (the
    # interpreter's teardown, several at once on two cores) are not queue throughput.
    span = (_utc(last) - _utc(first)).total_seconds()
    return jobs / span if span > 0 else jobs / wall


def _utc(value: Any) -> datetime:
    """SQLite hands ``min()``/``max()`` of a timestamp back as text; PostgreSQL as a datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- 2 and 3: vectors ------------------------------------------------------------------------------------------


def scifact_vectors(cache: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The SciFact abstracts and the first queries, embedded with the bundled model (cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    docs_file = cache / f"scifact-minilm-{MAX_TOKENS}.npy"
    queries_file = cache / f"scifact-queries-{n_queries}.npy"
    model: Any = None

    def encode(texts: list[str]) -> np.ndarray:
        nonlocal model
        if model is None:
            from sentence_transformers import SentenceTransformer

            from holocron.embedding.local import bundled_model_path

            model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
            model.max_seq_length = MAX_TOKENS
        return np.asarray(model.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)

    if not docs_file.is_file():
        docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open(encoding="utf-8")]
        np.save(docs_file, encode([f"{d.get('title', '')}. {d.get('text', '')}".strip() for d in docs]))
    if not queries_file.is_file():
        lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:n_queries]
        np.save(queries_file, encode([json.loads(line)["text"] for line in lines]))
    return np.load(docs_file), np.load(queries_file)


def synthetic(base: np.ndarray, n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """n vectors around the real ones: each a real embedding plus Gaussian noise, renormalised."""
    rng = np.random.default_rng(seed)
    picks = np.arange(n) % len(base)
    out = base[picks] + rng.normal(0.0, sigma, (n, base.shape[1])).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def insert_throughput(engine: str, server_url: str, vectors: np.ndarray, live_index_rows: int) -> dict[str, float]:
    from holocron.store import pg_hnsw
    from holocron.store.database import Database

    out: dict[str, float] = {}
    with fresh_db(engine, server_url) as url:
        db = Database(url)
        db.upgrade()
        space = add_space(db, name="bulk")
        ids = add_chunks(db, len(vectors))
        with pg_hnsw.deferred_index_build():
            out["bulk_per_s"] = len(ids) / insert_all(db, space, ids, vectors)
        if engine == "postgres":
            started = time.perf_counter()
            pg_hnsw.ensure_space_index(db, space)
            out["build_s"] = time.perf_counter() - started
            live = add_space(db, name="live")  # index created at its first insert and maintained row by row
            out["live_index_per_s"] = live_index_rows / insert_all(
                db, live, ids[:live_index_rows], vectors[:live_index_rows]
            )
        db.dispose()
    return out


def search_quality(server_url: str, vectors: np.ndarray, queries: np.ndarray, ef_values: list[int]) -> dict[str, Any]:
    """Load, build the index, then per ef_search: recall@10 against exact, and latency percentiles."""
    from holocron.store import pg_hnsw
    from holocron.store.database import Database

    out: dict[str, Any] = {"n": len(vectors)}
    with fresh_pg(server_url) as url:
        db = Database(url)
        db.upgrade()
        space = add_space(db)
        ids = add_chunks(db, len(vectors))
        with pg_hnsw.deferred_index_build():
            insert_all(db, space, ids, vectors)
        started = time.perf_counter()
        pg_hnsw.ensure_space_index(db, space)
        out["build_s"] = time.perf_counter() - started
        analyze(db)
        exact: list[list[int]] = []
        exact_ms: list[float] = []
        for query in queries:
            t0 = time.perf_counter()
            with db.read() as tx:
                exact.append([i for i, _ in pg_hnsw.exact_search(tx, space, query, 10)])
            exact_ms.append(1000 * (time.perf_counter() - t0))
        out["exact_p50_ms"] = statistics.median(exact_ms)
        for ef in ef_values:
            with db.read() as tx:  # warm the index's pages once
                pg_hnsw.hnsw_search(tx, space, queries[0], 10, ef_search=ef)
            approx: list[list[int]] = []
            latencies: list[float] = []
            for query in queries:
                t0 = time.perf_counter()
                with db.read() as tx:
                    approx.append([i for i, _ in pg_hnsw.hnsw_search(tx, space, query, 10, ef_search=ef)])
                latencies.append(1000 * (time.perf_counter() - t0))
            latencies.sort()
            out[ef] = {
                "recall": pg_hnsw.recall_at_k(approx, exact, 10),
                "p50_ms": statistics.median(latencies),
                "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
            }
        db.dispose()
    return out


# --- report ----------------------------------------------------------------------------------------------------


def _unshadow_stdlib() -> None:
    """Run as a script, this folder leads sys.path and its queue.py would hide the standard library's."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]


def main() -> None:
    _unshadow_stdlib()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", help="SQLAlchemy URL of a PostgreSQL server with pgvector")
    parser.add_argument("--quick", action="store_true", help="fewer jobs and vectors")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/holocron-bench"))
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1 or 2,3")
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("--pg-url is required (scripts/pg.sh start prints one)")
    from holocron.config import load_settings

    jobs = 400 if args.quick else 1500
    sizes = [10_000] if args.quick else [10_000, 100_000]
    n_queries = 50 if args.quick else 200
    ef_values = sorted({100, load_settings().hnsw_ef_search, 400})

    parts = {int(p) for p in args.parts.split(",")}
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} at the start (other programs share the machine)\n")
    if 1 in parts:
        print(f"1. claim-and-complete throughput, {jobs} no-op jobs (jobs/s)")
        print(f"{'workers':>8} {'postgres':>10} {'x of 1':>7} {'lock wait':>9} {'sqlite':>10} {'x of 1':>7}")
        base: dict[str, float] = {}
        for processes in (1, 2, 4, 8):
            rates = {e: claim_throughput(e, args.pg_url, processes, jobs) for e in ("postgres", "sqlite")}
            for engine, rate in rates.items():
                base.setdefault(engine, rate)
            pg_x, lite_x = rates["postgres"] / base["postgres"], rates["sqlite"] / base["sqlite"]
            print(
                f"{processes:>8} {rates['postgres']:>10.0f} {pg_x:>6.2f}x {LOCK_WAITS.get(processes, 0.0):>8.1%}"
                f" {rates['sqlite']:>10.0f} {lite_x:>6.2f}x",
                flush=True,
            )

    if not parts & {2, 3}:
        return
    docs, queries = scifact_vectors(args.cache, n_queries)
    bulk = synthetic(docs, 20_000 if not args.quick else 5_000, 0.02, seed=1)
    if 2 in parts:
        insert_report(args.pg_url, bulk)
    if 3 in parts:
        search_report(args.pg_url, docs, queries, sizes, ef_values)


def insert_report(pg_url: str, bulk: np.ndarray) -> None:
    print(f"\n2. embedding inserts, {len(bulk)} x {DIMS}d, batches of 1,000 (embeddings/s)")
    pg = insert_throughput("postgres", pg_url, bulk, live_index_rows=min(5_000, len(bulk)))
    lite = insert_throughput("sqlite", pg_url, bulk, live_index_rows=0)
    print(f"{'postgres, index built after the load':<44} {pg['bulk_per_s']:>8.0f}   (build {pg['build_s']:.1f} s)")
    print(f"{'postgres, HNSW index maintained per row':<44} {pg['live_index_per_s']:>8.0f}")
    print(f"{'sqlite':<44} {lite['bulk_per_s']:>8.0f}", flush=True)


def search_report(pg_url: str, docs: np.ndarray, queries: np.ndarray, sizes: list[int], ef_values: list[int]) -> None:
    print(f"\n3. HNSW (m 16, ef_construction 64) against exact search, top 10, {len(queries)} real SciFact queries")
    header = ("vectors", "ef_search", "recall@10", "p50 ms", "p95 ms", "exact p50", "build s")
    print(" ".join(f"{h:>9}" for h in header))
    corpora = [("scifact", docs)] + [(f"{n // 1000}k", synthetic(docs, n, 0.02, seed=n)) for n in sizes]
    for label, vectors in corpora:
        result = search_quality(pg_url, vectors, queries, ef_values)
        for ef in ef_values:
            row = result[ef]
            print(
                f"{label:>9} {ef:>9} {row['recall']:>9.3f} {row['p50_ms']:>9.2f} {row['p95_ms']:>9.2f}"
                f" {result['exact_p50_ms']:>9.1f} {result['build_s']:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
