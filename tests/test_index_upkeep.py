"""The vector index is kept up by the runs and jobs that write vectors, never built at the first search.

SQLite with the exact threshold lowered so that a handful of vectors make an HNSW graph with a file; the real
local model embeds. On PostgreSQL, a space's first load builds pgvector's index once at its end; later writes
keep it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from datafiles import write_pages
from holocron.config import Settings
from holocron.embedding.local import LocalProvider
from holocron.jobs import JobQueue, JobStatus, Worker, WorkerOptions
from holocron.service import Holocron
from holocron.store import pg_hnsw
from servers import local_provider

pytestmark = pytest.mark.model

PAGES = {
    f"page-{n}.txt": f"Page {n}\n\nThe harbour of town number {n} ships {word} along the coast every spring."
    for n, word in enumerate(["salt", "wool", "timber", "copper", "grain", "wine", "fish", "glass", "silk", "tin"])
}


@pytest.fixture()
def pages(tmp_path: Path) -> Path:
    return write_pages(tmp_path / "pages", PAGES)


def settings(home: Path, **more: Any) -> Settings:
    return Settings(home=home, ann_exact_threshold=4, **more)  # type: ignore[call-arg]


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def holo(home: Path) -> Iterator[Holocron]:
    with Holocron(settings(home), provider=local_provider()) as instance:
        yield instance


def run_metrics(holo: Holocron, run_id: str) -> dict[str, Any]:
    with holo.db.read() as tx:
        return dict(
            tx.execute(select(holo.db.t.run.c.metrics_json).where(holo.db.t.run.c.run_id == run_id)).scalar_one()
        )


def test_an_index_run_leaves_a_saved_graph_that_the_next_process_loads(holo: Holocron, home: Path, pages: Path) -> None:
    holo.ingest([pages])
    first = holo.index()
    upkeep = first.vector_index
    assert upkeep is not None and upkeep.kind == "hnsw" and upkeep.rebuilt and upkeep.saved
    assert upkeep.size == first.embedding.embeddings_written == len(PAGES)
    metrics = run_metrics(holo, first.run_id)
    assert metrics["vector_index"] == "hnsw" and metrics["vector_index_size"] == len(PAGES)
    assert metrics["vector_index_saved"] is True and metrics["vector_index_seconds"] >= 0
    space_id = holo.space.embedding_space_id
    assert (home / "index" / f"space-{space_id}.hnsw").is_file()

    # Another process's first search: it loads the graph the run saved, builds nothing and replays nothing.
    with Holocron(settings(home), provider=local_provider()) as later:
        loaded = later.sync_index()
        assert loaded.loaded_file and not loaded.rebuilt and loaded.replayed == 0 and loaded.size == len(PAGES)

    # A changed page: its old vector leaves the graph, its new one joins, and the file is saved again.
    (pages / "page-3.txt").write_text("Page 3\n\nThe harbour of town number 3 now ships marble instead.")
    holo.ingest([pages])
    second = holo.index()
    upkeep = second.vector_index
    assert upkeep is not None and not upkeep.rebuilt and upkeep.replayed == 2 and upkeep.saved
    assert upkeep.size == len(PAGES)
    with Holocron(settings(home), provider=local_provider()) as later:
        loaded = later.sync_index()
        assert loaded.loaded_file and not loaded.rebuilt and loaded.replayed == 0
        assert "marble" in later.search("Which town ships marble?", k=1, mode="vector").hits[0].text

    # A run that changes nothing leaves the index alone.
    unchanged = holo.index()
    assert unchanged.vector_index is None and "vector_index" not in run_metrics(holo, unchanged.run_id)


def test_an_embedding_job_adds_its_vectors_to_the_index(home: Path, pages: Path) -> None:
    provider: LocalProvider = local_provider()
    with Holocron(settings(home, embed_batch_size=4), provider=provider) as holo:
        holo.ingest([pages], enqueue=True)
        report = Worker(holo, WorkerOptions(worker_id="w", drain=True, handle_signals=False)).run()
        assert report.failed == 0 and report.succeeded >= 2
        embed_jobs = [job for job in JobQueue(holo.db).list(limit=100) if job.job_type.value == "EMBED_CHUNKS"]
        assert embed_jobs and all(job.status is JobStatus.SUCCEEDED for job in embed_jobs)
        with holo.db.read() as tx:
            query = select(holo.db.t.run.c.metrics_json).where(holo.db.t.run.c.run_type == "EMBED_CHUNKS")
            metrics = list(tx.execute(query).scalars().all())
        sizes = sorted(m["vector_index_size"] for m in metrics)
        assert sizes[-1] == len(PAGES) and all(m["vector_index"] in ("exact", "hnsw") for m in metrics)
        # The worker's process has the graph in memory already: a search there replays nothing.
        assert holo.sync_index().replayed == 0


@pytest.mark.postgres
def test_postgres_builds_a_new_spaces_index_once_after_its_first_load(pg_url: str, tmp_path: Path, pages: Path) -> None:
    with Holocron(
        Settings(database_url=pg_url, home=tmp_path / "pg-home"),  # type: ignore[call-arg]
        provider=local_provider(),
    ) as holo:
        holo.ingest([pages])
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "INSERT INTO vector.embedding " in statement or "USING hnsw" in statement:
                statements.append("build" if "USING hnsw" in statement else "insert")

        event.listen(holo.db.engine, "before_cursor_execute", record)
        report = holo.index()
        event.remove(holo.db.engine, "before_cursor_execute", record)
        space_id = holo.space.embedding_space_id
        # Every vector went in before the graph was built, and the graph was built once, over all of them.
        assert statements[-1] == "build" and statements.count("build") == 1 and "insert" in statements
        assert report.vector_index is not None
        assert (report.vector_index.kind, report.vector_index.size) == ("pgvector-hnsw", len(PAGES))
        metrics = run_metrics(holo, report.run_id)
        assert metrics["vector_index"] == "pgvector-hnsw" and metrics["vector_index_rebuilt"] is True
        with holo.db.read() as tx:
            assert pg_hnsw.index_exists(tx, space_id)

        # With the index there, a later run's vectors go in through it: nothing to build, nothing reported.
        (pages / "page-new.txt").write_text("Page new\n\nThe harbour of the new town ships amber to the coast.")
        holo.ingest([pages])
        later = holo.index()
        assert later.embedding.embeddings_written == 1 and later.vector_index is None
        assert holo.search("amber", k=1).hits[0].source_id.endswith("page-new.txt")

        # A run that stopped between its writes and its build leaves no index; the next run builds it, even
        # with nothing left to embed.
        pg_hnsw.drop_space_index(holo.db, space_id)
        again = holo.index()
        assert again.embedding.embeddings_written == 0
        assert again.vector_index is not None and again.vector_index.size == len(PAGES) + 1
        with holo.db.read() as tx:
            assert pg_hnsw.index_exists(tx, space_id)
