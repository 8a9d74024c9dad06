"""Prometheus metrics: every metric object of the product is defined here, and nowhere else.

Counters and histograms live in the process-wide default registry and are moved by cheap helper calls from the
pipeline, the queue and the search path. What the database already knows (queue depth, the age of the oldest
available job, jobs by type and status, index size, coverage) is read at scrape time by
:class:`DatabaseCollector`, so that a scrape always tells the truth even when the work was done by another
process. :func:`metrics_registry` combines the two for ``/metrics`` and for a worker's own port.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

if TYPE_CHECKING:
    from holocron.store.database import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

JOBS_FINISHED = Counter(
    "holocron_jobs_finished",
    "Job attempts that ended, by job type and the status they ended in.",
    ["job_type", "status"],
)
JOB_CLAIMS = Counter("holocron_job_claims", "Jobs claimed by workers.", ["job_type"])
JOB_RETRIES = Counter("holocron_job_retries", "Jobs put back to be tried again (backoff or operator).", ["job_type"])
JOB_DEADLETTERS = Counter("holocron_job_deadletters", "Jobs moved to the dead-letter state.", ["job_type"])
JOB_SECONDS = Histogram(
    "holocron_job_duration_seconds", "Time a job attempt ran.", ["job_type"], buckets=_LATENCY_BUCKETS
)
CHUNKS_WRITTEN = Counter("holocron_chunks_written", "Chunk rows inserted.")
EMBEDDINGS_WRITTEN = Counter("holocron_embeddings_written", "Embedding rows inserted.", ["space"])
PROVIDER_SECONDS = Histogram(
    "holocron_provider_request_seconds",
    "Time of one embedding call to the provider.",
    ["provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "holocron_provider_errors", "Embedding calls that failed, by provider and model.", ["provider", "model"]
)
SEARCH_SECONDS = Histogram(
    "holocron_search_seconds", "Search latency end to end, by mode.", ["mode"], buckets=_LATENCY_BUCKETS
)
SEARCH_ERRORS = Counter("holocron_search_errors", "Searches that raised.", ["mode"])
CRAWL_FETCHES = Counter(
    "holocron_crawl_fetches", "Crawl requests answered, by source and HTTP status code.", ["source", "status"]
)
CRAWL_FETCH_ERRORS = Counter(
    "holocron_crawl_fetch_errors", "Crawl requests without an answer (timeout, connection), by source.", ["source"]
)
CRAWL_BYTES = Counter("holocron_crawl_bytes", "Bytes of crawl answers received, by source.", ["source"])
CRAWL_FETCH_SECONDS = Histogram(
    "holocron_crawl_fetch_seconds", "Time of one crawl request, by source.", ["source"], buckets=_LATENCY_BUCKETS
)


# -- helpers called from the hot paths (each is one or two dictionary lookups) ------------------------------


def record_chunks_written(n: int) -> int:
    """Count chunk rows inserted; returns ``n`` so that it can wrap the expression that produced it."""
    if n:
        CHUNKS_WRITTEN.inc(n)
    return n


def record_embeddings_written(n: int, space: str) -> int:
    """Count embedding rows inserted into ``space``; returns ``n``."""
    if n:
        EMBEDDINGS_WRITTEN.labels(space).inc(n)
    return n


@contextmanager
def provider_call(provider: str, model: str) -> Iterator[None]:
    """Time one provider call and count it as an error if it raises."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        PROVIDER_ERRORS.labels(provider, model).inc()
        raise
    finally:
        PROVIDER_SECONDS.labels(provider, model).observe(time.perf_counter() - started)


def observe_fetch(source: str, status: int | None, size: int, seconds: float) -> None:
    """One crawl request: its answer's status code (None: no answer), bytes and time."""
    if status is None:
        CRAWL_FETCH_ERRORS.labels(source).inc()
    else:
        CRAWL_FETCHES.labels(source, str(status)).inc()
        CRAWL_BYTES.labels(source).inc(size)
    CRAWL_FETCH_SECONDS.labels(source).observe(seconds)


def observe_search(seconds: float, mode: str) -> None:
    SEARCH_SECONDS.labels(mode).observe(seconds)


def record_search_error(mode: str) -> None:
    SEARCH_ERRORS.labels(mode).inc()


def record_job_claimed(job_type: str) -> None:
    JOB_CLAIMS.labels(job_type).inc()


def record_job_retry(job_type: str, n: int = 1) -> None:
    JOB_RETRIES.labels(job_type).inc(n)


def record_job_deadletter(job_type: str, n: int = 1) -> None:
    JOB_DEADLETTERS.labels(job_type).inc(n)


def record_job_finished(job_type: str, status: str, seconds: float | None = None) -> None:
    """An attempt ended (SUCCEEDED, FAILED, DEADLETTER, CANCELLED); ``seconds`` is how long it ran."""
    JOBS_FINISHED.labels(job_type, status).inc()
    if seconds is not None:
        JOB_SECONDS.labels(job_type).observe(seconds)


# -- what the database knows, read at scrape time -----------------------------------------------------------


def _utc(value: Any) -> datetime | None:
    """Aggregates over timestamp columns come back untyped on SQLite (a string); make them aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


class DatabaseCollector(Collector):
    """Gauges computed from the store at each scrape: true across every process that shares it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        jobs = GaugeMetricFamily(
            "holocron_jobs", "Jobs in the queue table, by type and status.", labels=["job_type", "status"]
        )
        depth = GaugeMetricFamily(
            "holocron_queue_depth", "Jobs waiting to run (NEW or FAILED awaiting retry), by type.", labels=["job_type"]
        )
        available = GaugeMetricFamily("holocron_queue_available", "Jobs claimable right now.")
        oldest = GaugeMetricFamily(
            "holocron_queue_oldest_available_age_seconds", "How long the oldest claimable job has waited (0 if none)."
        )
        vectors = GaugeMetricFamily("holocron_index_vectors", "Embeddings stored, by space.", labels=["space"])
        chunks = GaugeMetricFamily("holocron_chunks", "Chunk rows stored.")
        sources = GaugeMetricFamily("holocron_sources", "Registered sources, by status.", labels=["status"])
        up = GaugeMetricFamily("holocron_database_up", "1 if the database answered this scrape.")
        now = datetime.now(UTC)
        try:
            with self.db.read() as tx:
                t = tx.t
                waiting: dict[str, float] = {}
                for job_type, status, n in tx.execute(
                    select(t.job.c.job_type, t.job.c.status, func.count()).group_by(t.job.c.job_type, t.job.c.status)
                ):
                    jobs.add_metric([job_type, status], float(n))
                    if status in ("NEW", "FAILED"):
                        waiting[job_type] = waiting.get(job_type, 0.0) + float(n)
                for job_type, n in sorted(waiting.items()):
                    depth.add_metric([job_type], n)
                ready_count, oldest_at = tx.execute(
                    select(func.count(), func.min(t.job.c.available_utc)).where(
                        t.job.c.status.in_(("NEW", "FAILED")), t.job.c.available_utc <= now
                    )
                ).one()
                available.add_metric([], float(ready_count))
                oldest_dt = _utc(oldest_at)
                oldest.add_metric([], max(0.0, (now - oldest_dt).total_seconds()) if oldest_dt else 0.0)
                names = dict(tx.execute(select(t.embedding_space.c.embedding_space_id, t.embedding_space.c.name)).all())
                for space_id, n in tx.execute(
                    select(t.embedding.c.embedding_space_id, func.count()).group_by(t.embedding.c.embedding_space_id)
                ):
                    vectors.add_metric([str(names.get(space_id, space_id))], float(n))
                chunks.add_metric([], float(tx.execute(select(func.count()).select_from(t.chunk)).scalar_one()))
                for status, n in tx.execute(
                    select(t.source_registry.c.status, func.count()).group_by(t.source_registry.c.status)
                ):
                    sources.add_metric([status], float(n))
            up.add_metric([], 1.0)
        except Exception:
            up.add_metric([], 0.0)
            yield up
            return
        yield from (jobs, depth, available, oldest, vectors, chunks, sources, up)


class _Combined(Collector):
    """The process-wide metrics plus one database's gauges, as one registry."""

    def __init__(self, db: Database | None) -> None:
        self.database = DatabaseCollector(db) if db is not None else None

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        yield from REGISTRY.collect()
        if self.database is not None:
            yield from self.database.collect()


def metrics_registry(db: Database | None = None) -> CollectorRegistry:
    """A registry to expose: the default one's metrics, and ``db``'s gauges when given."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Combined(db))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format, for an HTTP response."""
    return generate_latest(registry)


def start_metrics_server(port: int, db: Database | None = None, *, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread (for workers, which have no API)."""
    start_http_server(port, addr=addr, registry=metrics_registry(db))
