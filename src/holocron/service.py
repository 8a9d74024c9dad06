"""The library entry point: what the CLI, the API and the job handlers call.

``Holocron(settings)`` opens (and migrates) the store; the embedding provider and its space are resolved
lazily, so commands that never embed never load a model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from holocron.chunking import ChunkPolicy
from holocron.config import Settings, load_settings
from holocron.embedding.base import (
    EmbeddingError,
    EmbeddingProvider,
    loaded_device,
    tokenizer_for_policy,
    tokenizer_of,
)
from holocron.identity import ModelIdentity
from holocron.observability.logs import log_context
from holocron.observability.metrics import metrics_registry, observe_search, record_search_error
from holocron.observability.overview import compute_overview, space_coverage
from holocron.retrieval.config import RetrievalConfig
from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.pgvector import PgVectorIndex
from holocron.retrieval.search import Searcher, SearchResult, open_space_index
from holocron.retrieval.space_index import SpaceIndex, SyncReport
from holocron.store import pg_hnsw
from holocron.store.chunks import count_chunks
from holocron.store.crawl import ControlState, crawl_overview, set_control
from holocron.store.database import Database, Tx
from holocron.store.embeddings import count_current_embeddings
from holocron.store.evidence import save_bundle
from holocron.store.llm import (
    count_llm_runs,
    get_llm_run,
    list_llm_runs,
    llm_artifacts,
    llm_run_counts,
    source_pages,
    stale_current_answers,
)
from holocron.store.runs import (
    close_expired_runs,
    count_runs,
    finish_run,
    get_run,
    keep_alive,
    list_runs,
    run_artifacts,
    start_run,
)
from holocron.store.sources import (
    PAYLOAD_BATCH_BYTES,
    DeleteResult,
    RawRecord,
    RegisterResult,
    RejectedSource,
    count_sources,
    delete_sources,
    file_sources_under,
    get_source,
    list_sources,
    record_rejections,
    register_records,
    unstorable,
)
from holocron.store.spaces import (
    EmbeddingSpace,
    find_space,
    get_or_create_space,
    get_space,
    list_spaces,
    other_spaces_of_model,
)
from holocron.store.types import PgHnswParams
from holocron.vocabulary import FILES_SOURCE_SYSTEM

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from holocron.chat.base import ChatProvider
    from holocron.crawl.config import CrawlConfig
    from holocron.crawl.runner import Crawler, CrawlStats, IndexTrigger
    from holocron.evidence import BoundingPolicy, EvidenceBundle
    from holocron.indexer import ChunkStats, EmbedStats
    from holocron.ingest.files import Skipped
    from holocron.jobs.models import Job, JobType
    from holocron.jobs.queue import Enqueued, JobQueue
    from holocron.lake.exchange import ExportReport, ImportReport
    from holocron.llm.interrogations import InterrogationRegistry
    from holocron.llm.lane import LlmLane
    from holocron.llm.queue import LlmJob, LlmQueue

# The search path imports only what it needs: the crawler, the indexer (and with it the extractors), the job
# handlers, the lake and the LLM runtime are imported by the methods that use them, so that a cold
# `holocron search` does not wait for them.

log = logging.getLogger(__name__)

INGEST_BATCH = 200
Progress = Callable[[int], None]


@dataclass
class IngestReport:
    registered: RegisterResult = field(default_factory=RegisterResult)
    rejected: list[RejectedSource] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)
    """CHUNK_SOURCE job ids queued for the new and changed sources (``ingest(enqueue=True)``)."""
    skipped: list[Skipped] = field(default_factory=list)
    """Paths deliberately not read (symlinks out of the roots, special files), with the reason."""
    missing: list[str] = field(default_factory=list)
    """Registered sources under the ingested folders whose files are gone (``prune`` deletes them)."""
    pruned: DeleteResult | None = None

    def add(self, result: RegisterResult) -> None:
        self.registered.new += result.new
        self.registered.changed += result.changed
        self.registered.unchanged += result.unchanged
        self.registered.retagged += result.retagged


@dataclass(frozen=True)
class Listing:
    """One page of a listing and the size of the whole (the CLI's and the API's ``total``)."""

    items: list[Any]
    total: int
    limit: int
    offset: int


@dataclass
class IndexReport:
    run_id: str
    space: EmbeddingSpace
    policy: ChunkPolicy
    chunking: ChunkStats
    embedding: EmbedStats
    ingest: IngestReport | None
    seconds: float
    model_calls: int
    warnings: list[str] = field(default_factory=list)
    vector_index: SyncReport | None = None
    """The space's vector index brought up to date at the run's end (None when the run changed nothing, and
    on PostgreSQL, where pgvector keeps its own)."""
    query_export_seconds: float | None = None
    """Seconds spent exporting the local model for ONNX queries in this run (None: nothing exported)."""
    device: str | None = None
    """Where the in-process model ran (``cpu``, ``cuda``); None when no in-process model was loaded."""

    @property
    def status(self) -> str:
        """``succeeded``; ``failed`` when embedding was attempted and nothing was embedded, or nothing at all
        got done; ``partial`` otherwise (some sources or embedding batches failed, others were done)."""
        if not self.chunking.errors and not self.embedding.failed_batches:
            return "succeeded"
        if self.embedding.failed_batches and not self.embedding.embeddings_written:
            return "failed"  # chunks are searchable by keyword at most: the run did not do its job
        if not self.chunking.sources_chunked and not self.embedding.embeddings_written:
            return "failed"
        return "partial"

    @property
    def errors(self) -> list[str]:
        return [f"{source_id}: {reason}" for source_id, reason in self.chunking.errors] + list(self.embedding.errors)

    def metrics(self) -> dict[str, Any]:
        return {
            "status": self.status,
            **self.chunking.as_metrics(),
            **self.embedding.as_metrics(),
            "model_calls": self.model_calls,
            "seconds": round(self.seconds, 4),
            "sources_rejected": len(self.ingest.rejected) if self.ingest else 0,
            **(self.vector_index.as_metrics() if self.vector_index else {}),
            **({"query_export_seconds": round(self.query_export_seconds, 4)} if self.query_export_seconds else {}),
            **({"device": self.device} if self.device else {}),
        }


def pg_hnsw_params(settings: Settings) -> PgHnswParams:
    """The pgvector HNSW parameters of these settings (the store is handed them, it never reads settings)."""
    return PgHnswParams(
        m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search
    )


class Holocron:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        provider: EmbeddingProvider | None = None,
        chat_provider: ChatProvider | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.db = Database(self.settings.resolved_database_url, hnsw=pg_hnsw_params(self.settings))
        self.db.upgrade()
        self._space_indexes: dict[int, SpaceIndex] = {}  # other spaces' indexes kept up by keep_index_up
        if provider is not None:
            self.__dict__["provider"] = provider
        if chat_provider is not None:
            self.__dict__["chat_provider"] = chat_provider

    def close(self) -> None:
        for name in ("provider", "chat_provider"):
            provider = self.__dict__.get(name)
            if provider is not None:
                provider.close()
        self.db.dispose()

    def __enter__(self) -> Holocron:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- configuration -------------------------------------------------------------------------

    @cached_property
    def provider(self) -> EmbeddingProvider:
        from holocron.embedding.registry import build_provider

        return build_provider(self.settings)

    @cached_property
    def space(self) -> EmbeddingSpace:
        """The space of the configured model as it is now; a new digest makes a new space."""
        identity = self.provider.identity()
        space, created = get_or_create_space(self.db, identity)
        if created:
            with self.db.read() as tx:
                previous = other_spaces_of_model(tx, identity)
            if previous:
                log.warning(
                    "model %s changed (digest %s): new embedding space %s; vectors of %s are kept apart",
                    identity.model_name,
                    identity.model_digest[:19],
                    space.name,
                    ", ".join(p.name for p in previous),
                )
        return space

    def chunk_policy(self) -> ChunkPolicy:
        """The configured policy: structure chunks in the model's own tokens, or character windows (the
        configured size, or the one fitted to the model's input window)."""
        if self.settings.chunk_policy == "structure":
            identity = self.provider.identity()
            tokenizer = tokenizer_of(self.provider)
            if tokenizer is None or identity.max_input_tokens is None:
                raise EmbeddingError(
                    f"HOLOCRON_CHUNK_POLICY=structure counts tokens with the model's tokenizer, and provider "
                    f"{identity.provider} ({identity.model_name}) has none at hand or no known input window: "
                    "use the local model, or HOLOCRON_CHUNK_POLICY=window"
                )
            policy = ChunkPolicy.structured(
                identity.max_input_tokens,
                tokenizer.name,
                context="path" if self.settings.chunk_context == "path" else "",
                max_chunks=self.settings.max_chunks_per_source,
            )
            # HOLOCRON_CHUNK_SIZE counts tokens here, and never more than the model reads.
            size = min(self.settings.chunk_size or policy.chunk_size, policy.chunk_size)
            return dataclasses.replace(policy, chunk_size=size)
        fitted = ChunkPolicy.fitted_to_model(
            self.provider.identity().max_input_tokens, max_chunks=self.settings.max_chunks_per_source
        )
        size = self.settings.chunk_size or fitted.chunk_size
        overlap = self.settings.chunk_overlap
        if overlap is None:
            overlap = fitted.overlap if size == fitted.chunk_size else max(0, size // 10)
        return ChunkPolicy(chunk_size=size, overlap=overlap, max_chunks=self.settings.max_chunks_per_source)

    # -- ingest --------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        source_system: str = FILES_SOURCE_SYSTEM,
        tags: Sequence[str] = (),
        progress: Progress | None = None,
        enqueue: bool = False,
        allow_roots: Sequence[Path] = (),
        prune: bool = False,
        keep_last_good: bool | None = None,
    ) -> IngestReport:
        """Register files and folders as raw records; unchanged files are a no-op.

        Nothing outside ``paths`` and ``allow_roots`` is read (symlinks that lead elsewhere are skipped and
        reported). Sources under an ingested folder whose files are gone are reported as ``missing``; with
        ``prune`` they are deleted. With ``enqueue``, new and changed sources are queued as CHUNK_SOURCE jobs
        (the trigger), so running workers index them with no further step.
        """
        from holocron.ingest.files import FileRef, Skipped, read_file, walk

        found = list(walk(paths, allow_roots=allow_roots))
        refs = [item for item in found if isinstance(item, FileRef)]
        records = (
            read_file(ref, source_system=source_system, max_bytes=self.settings.max_source_bytes, tags=tuple(tags))
            for ref in refs
        )
        report = self._register(records, progress, keep_last_good=keep_last_good, by_location=True)
        report.skipped = [item for item in found if isinstance(item, Skipped)]
        for item in report.skipped:
            log.warning("%s: skipped, %s", item.path, item.reason)
        seen = {ref.path.resolve().as_uri() for ref in refs}
        with self.db.read() as tx:
            gone = {
                source_id
                for folder in paths
                if folder.is_dir()
                for source_id, uri in file_sources_under(tx, source_system, folder.resolve().as_uri()).items()
                if uri not in seen
            }
        if prune:
            report.pruned = self.delete_sources(sorted(gone))
        else:
            report.missing = sorted(gone)
        if enqueue and report.registered.to_index:
            report.enqueued = [e.job.job_id for e in self.enqueue_indexing(report.registered.to_index)]
        return report

    def delete_sources(self, source_ids: Sequence[str]) -> DeleteResult:
        """Delete sources with everything stored of them (raw records, chunks, vectors, full-text and index
        entries) in one transaction; unknown ids come back in ``missing``."""
        result = delete_sources(self.db, source_ids)
        for source_id in result.deleted:
            log.info("source deleted", extra={"fields": {"source_id": source_id}})
        return result

    def enqueue_indexing(self, source_ids: Sequence[str] | None = None) -> list[Enqueued[Job]]:
        """Queue CHUNK_SOURCE jobs (batches of sources) for this model's space; dedupe keys carry each
        source's content hash, so calling this twice queues nothing new. With no ids: every source whose
        chunks are stale under the current policy (also recovers sources whose trigger was lost in a crash).
        """
        from holocron.jobs.handlers import enqueue_indexing as enqueue_for_indexing

        policy = self.chunk_policy()  # travels in the payloads: every worker chunks with it
        policy_version = policy.version if source_ids is None else None
        return enqueue_for_indexing(
            self.jobs, self.space.embedding_space_id, source_ids, policy_version=policy_version, policy=policy
        )

    def enqueue_job(
        self,
        job_type: JobType | str,
        payload: dict[str, Any],
        *,
        priority: int | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
    ) -> Enqueued[Job]:
        """Queue one job. A payload's space, when left out, is the configured model's space; a CHUNK_SOURCE
        payload's chunk policy, the configured one (fixed now, so that every worker chunks with it, not with
        its own settings). Raises ``ValueError`` for an unknown type or a payload its schema refuses."""
        from holocron.jobs.models import PAYLOADS, ChunkPolicySpec, JobType, parse_job_type

        kind = parse_job_type(job_type) if isinstance(job_type, str) else job_type
        data = dict(payload)
        space_field = PAYLOADS[kind].space_field
        if space_field not in data:
            data[space_field] = self.space.embedding_space_id
        if kind is JobType.CHUNK_SOURCE and "chunk_policy" not in data:
            data["chunk_policy"] = ChunkPolicySpec.of(self.chunk_policy()).model_dump(mode="json")
        return self.jobs.enqueue(kind, data, priority=priority, dedupe_key=dedupe_key, max_attempts=max_attempts)

    def ingest_manifest(
        self,
        manifest: Path,
        *,
        progress: Progress | None = None,
        allow_roots: Sequence[Path] = (),
        keep_last_good: bool | None = None,
    ) -> IngestReport:
        """Register a manifest's entries; its files must lie under its folder or ``allow_roots``."""
        from holocron.ingest.files import read_manifest

        entries = read_manifest(manifest, max_bytes=self.settings.max_source_bytes, allow_roots=allow_roots)
        return self._register(entries, progress, keep_last_good=keep_last_good)

    def _register(
        self,
        items: Iterable[RawRecord | RejectedSource],
        progress: Progress | None,
        *,
        keep_last_good: bool | None = None,
        by_location: bool = False,
    ) -> IngestReport:
        keep = self.settings.keep_last_good if keep_last_good is None else keep_last_good
        report = IngestReport()
        batch: list[RawRecord] = []
        rejected: list[RejectedSource] = []
        batch_bytes = 0

        def flush() -> None:
            report.add(register_records(self.db, batch, by_location=by_location))
            report.rejected.extend(record_rejections(self.db, rejected, keep_last_good=keep, by_location=by_location))
            if progress:
                progress(len(batch) + len(rejected))
            batch.clear()
            rejected.clear()

        for item in items:
            if isinstance(item, RawRecord):
                reason = unstorable(item)
                if reason:
                    name = item.resource_id.replace("\x00", "\\x00")
                    item = RejectedSource(item.source_system, name, item.request_uri.replace("\x00", ""), reason)
            if isinstance(item, RawRecord):
                batch.append(item)
                batch_bytes += len(item.payload)
            else:
                rejected.append(item)
            if len(batch) + len(rejected) >= INGEST_BATCH or batch_bytes >= PAYLOAD_BATCH_BYTES:
                flush()
                batch_bytes = 0
        flush()
        for item in report.rejected:
            log.error("%s: %s", item.source_id, item.reason)
        return report

    # -- index ---------------------------------------------------------------------------------

    def index(
        self,
        *,
        mode: str = "incremental",
        manifest: Path | None = None,
        on_chunk_progress: Progress | None = None,
        on_embed_progress: Progress | None = None,
        on_embed_total: Callable[[int], None] | None = None,
        allow_roots: Sequence[Path] = (),
    ) -> IndexReport:
        """Everything new or changed: extract, chunk, embed and store, as one recorded run; the report's
        ``status`` says whether it all succeeded."""
        from holocron.indexer import chunk_sources, embed_chunks

        if mode not in ("full", "incremental"):
            raise ValueError("mode is 'full' or 'incremental'")
        started = time.perf_counter()
        ingest = self.ingest_manifest(manifest, allow_roots=allow_roots) if manifest else None
        policy = self.chunk_policy()
        warnings = [w for w in [policy.token_fit_warning(self.space.max_input_tokens)] if w]
        for warning in warnings:
            log.warning(warning)
        calls_before = self.provider.stats.calls
        with self.db.write() as tx:
            close_expired_runs(tx)
        run_id = start_run(
            self.db,
            "INDEX",
            options={
                "mode": mode,
                "policy": policy.to_json(),
                "batch_size": self.settings.embed_batch_size,
                "device": self.settings.device,
            },
            space=self.space,
        )
        with log_context(run_id=run_id, space=self.space.name), keep_alive(self.db, run_id):
            try:
                chunking = chunk_sources(
                    self.db,
                    policy,
                    tokenizer=tokenizer_for_policy(self.provider, policy),
                    run_id=run_id,
                    everything=mode == "full",
                    progress=on_chunk_progress,
                    keep_last_good=self.settings.keep_last_good,
                )
                pending = self.pending_embeddings()
                if on_embed_total is not None:
                    on_embed_total(pending)
                # Exported before the batches, while the process holds little more than the model: the export's
                # transient memory is handed back before the batches need theirs, instead of adding to the peak.
                export_seconds = self.prepare_queries() if pending else None
                # A space's first load on PostgreSQL writes its rows without the HNSW index and builds the
                # graph once at the end: pgvector's row-by-row upkeep is tens of times slower than one build.
                with pg_hnsw.deferred_index_build() if self._builds_index_after(pending) else nullcontext():
                    embedding = embed_chunks(
                        self.db,
                        self.space,
                        self.provider,
                        run_id=run_id,
                        batch_size=self.settings.embed_batch_size,
                        progress=on_embed_progress,
                    )
                changed = chunking.sources_chunked or embedding.embeddings_written
                vector_index = (
                    self.keep_index_up(self.space, save=True) if changed or self.db.dialect == "postgresql" else None
                )
            except BaseException as exc:
                finish_run(self.db, run_id, metrics={}, error=f"{type(exc).__name__}: {exc}")
                raise
            report = IndexReport(
                run_id=run_id,
                space=self.space,
                policy=policy,
                chunking=chunking,
                embedding=embedding,
                ingest=ingest,
                seconds=time.perf_counter() - started,
                model_calls=self.provider.stats.calls - calls_before,
                warnings=warnings,
                vector_index=vector_index,
                query_export_seconds=export_seconds,
                device=loaded_device(self.provider),
            )
            for source_id, reason in chunking.errors:
                log.warning("source not indexed: %s", reason, extra={"fields": {"source_id": source_id}})
            for reason in embedding.errors:
                log.warning("embedding batch failed: %s", reason)
            self._record_index_run(report)
            return report

    def _record_index_run(self, report: IndexReport) -> None:
        from holocron.lake import write_artifact

        lake = self.settings.resolved_lake_dir
        write_artifact(
            self.db,
            lake,
            report.run_id,
            "chunk_manifest",
            {
                "policy": report.policy.to_json(),
                "sources_chunked": report.chunking.sources_chunked,
                "chunks_written": report.chunking.chunks_written,
                "capped_sources": report.chunking.capped_sources,
                "errors": [{"source_id": s, "reason": r} for s, r in report.chunking.errors],
            },
        )
        write_artifact(
            self.db,
            lake,
            report.run_id,
            "embedding_manifest",
            {
                "embedding_space": report.space.name,
                "embeddings_written": report.embedding.embeddings_written,
                "model_calls": report.model_calls,
                "errors": report.embedding.errors,
            },
        )
        failures = len(report.chunking.errors) + report.embedding.failed_batches
        finish_run(
            self.db,
            report.run_id,
            metrics=report.metrics(),
            error=None
            if report.status == "succeeded"
            else f"{report.status}: {len(report.chunking.errors)} sources and "
            f"{report.embedding.failed_batches} embedding batches failed ({failures} in all); "
            f"first: {report.errors[0]}",
        )

    def pending_embeddings(self) -> int:
        with self.db.read() as tx:
            return count_chunks(tx) - count_current_embeddings(tx, self.space.embedding_space_id)

    # -- search --------------------------------------------------------------------------------

    @cached_property
    def searcher(self) -> Searcher:
        return Searcher(self.db, self.space, self.provider, RetrievalConfig.from_settings(self.settings))

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        run_id: str | None = None,
        mode: str | None = None,
        filters: SearchFilters | None = None,
        max_per_source: int | None = None,
        log: bool = True,
    ) -> SearchResult:
        """The k best chunks (``mode`` vector, keyword or hybrid; default from settings), logged."""
        if "\x00" in query:
            raise ValueError("the query contains a NUL character")
        started = time.perf_counter()
        try:
            result = self.searcher.search(
                query, k, run_id=run_id, log=log, mode=mode, filters=filters, max_per_source=max_per_source
            )
        except Exception:
            record_search_error(mode or self.settings.search_mode)
            raise
        observe_search(time.perf_counter() - started, result.mode)
        return result

    def evidence(
        self,
        question: str,
        *,
        k: int | None = None,
        run_id: str | None = None,
        mode: str | None = None,
        filters: SearchFilters | None = None,
        max_per_source: int | None = None,
        policy: BoundingPolicy | None = None,
        save: bool = True,
    ) -> EvidenceBundle:
        """Search, then bound the hits into a stored evidence bundle (what the LLM is given)."""
        from holocron.evidence import BoundingPolicy, build_bundle

        policy = policy or BoundingPolicy.from_settings(self.settings)
        result = self.search(
            question,
            k or policy.max_items,
            run_id=run_id,
            mode=mode,
            filters=filters,
            max_per_source=max_per_source,
        )
        bundle = build_bundle(result.hits, policy, query=question, retrieval_id=result.retrieval_id or None)
        if save:
            save_bundle(self.db, *bundle.to_rows())
        return bundle

    # -- catalog: what the CLI and the API list and show ----------------------------------------

    @cached_property
    def jobs(self) -> JobQueue:
        """The job queue of this store (enqueue, list, retry, cancel, stats)."""
        from holocron.jobs.queue import JobQueue

        return JobQueue(self.db)

    def _known_space_id(self) -> int | None:
        """The configured model's space when it exists and the model can say who it is without a failure
        (a listing must work while an embedding server is down); None otherwise."""
        if "space" in self.__dict__:
            return self.space.embedding_space_id
        try:
            identity = self.provider.identity()
        except Exception:  # an unreachable embedding server: statuses then say nothing about vectors
            return None
        with self.db.read() as tx:
            space = find_space(tx, identity)
        return space.embedding_space_id if space else None

    def sources(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> Listing:
        """Registered sources by id, each with its status (pending, chunked: not every chunk has a vector,
        indexed, stale: in error but serving its last good chunks, error), chunk counts, error,
        ``source_ref`` and ``tags``."""
        space_id = self._known_space_id()
        with self.db.read() as tx:
            items = list_sources(tx, status=status, limit=limit, offset=offset, embedding_space_id=space_id)
            return Listing(items, count_sources(tx, status=status, embedding_space_id=space_id), limit, offset)

    def source(self, source_id: str) -> dict[str, Any] | None:
        space_id = self._known_space_id()
        with self.db.read() as tx:
            return get_source(tx, source_id, embedding_space_id=space_id)

    def close_dead_runs(self) -> int:
        """Close as FAILED the runs whose process died; returns how many."""
        with self.db.write() as tx:
            return close_expired_runs(tx)

    def runs(self, *, job_id: int | None = None, limit: int = 50, offset: int = 0) -> Listing:
        """Runs (index runs and job executions), newest first; runs of dead processes are closed first."""
        self.close_dead_runs()
        with self.db.read() as tx:
            items = list_runs(tx, limit=limit, offset=offset, job_id=job_id)
            return Listing(items, count_runs(tx, job_id=job_id), limit, offset)

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its ``artifacts`` (path, sha256, bytes), or None."""
        with self.db.read() as tx:
            found = get_run(tx, run_id)
            return {**found, "artifacts": run_artifacts(tx, run_id)} if found else None

    def spaces(self) -> list[tuple[EmbeddingSpace, int]]:
        """Every embedding space with its embedding count."""
        with self.db.read() as tx:
            return list_spaces(tx)

    def find_space(self, key: int | str) -> EmbeddingSpace | None:
        """A space by id or name."""
        with self.db.read() as tx:
            return get_space(tx, key)

    def space_of(self, identity: ModelIdentity, *, create: bool = False) -> tuple[EmbeddingSpace | None, bool]:
        """The space of a model identity, made when ``create`` is set; the flag says whether it was new."""
        if create:
            return get_or_create_space(self.db, identity)
        with self.db.read() as tx:
            return find_space(tx, identity), False

    def space_coverage(self) -> list[dict[str, Any]]:
        """Per space: embeddings of current chunks against all chunks (what is left to embed)."""
        with self.db.read() as tx:
            return space_coverage(tx)

    def overview(self, **options: Any) -> dict[str, Any]:
        """The dashboard's figures: queue, recent runs, dead letters, sources, coverage, throughput."""
        return compute_overview(self.db, **options)

    def metrics_registry(self) -> CollectorRegistry:
        """A Prometheus registry with this process's metrics and this store's gauges."""
        return metrics_registry(self.db)

    def ping(self) -> str:
        """Ask the database to answer (readiness); returns the engine's name, raises when it does not."""
        with self.db.read() as tx:
            tx.execute(select(1))
        return self.db.dialect

    def schema_revision(self) -> tuple[str | None, str | None]:
        """(the store's migration revision, the newest this code knows)."""
        from holocron.store.migrate import current_revision, head_revision

        return current_revision(self.db), head_revision(self.db)

    def index_status(self) -> dict[str, Any]:
        """The configured space's vector index: kind, size, files."""
        return self.searcher.index.status()

    def sync_index(self) -> SyncReport:
        """Bring the vector index up to date with the embedding table."""
        return self.searcher.index.sync()

    def keep_index_up(self, space: EmbeddingSpace, *, save: bool = False) -> SyncReport | None:
        """Add what was just embedded into ``space`` to its vector index, so that no search builds it.

        On SQLite the exact or HNSW index of the space is caught up with the table (built the first time, and
        then saved). ``save`` also writes a graph with unsaved additions to its file, as an index run does at
        its end; workers leave that to the index's ``save_every``. On PostgreSQL pgvector keeps an existing
        index up inside each write; a missing one (a first load, or a run that stopped before its end) is built
        here, and only then is there something to report.
        """
        if self.db.dialect == "postgresql":
            return PgVectorIndex(self.db, space).build_if_missing()
        started = time.perf_counter()
        index = self._space_index(space)
        report = index.sync()
        if save and not report.saved and index.save(only_if_changed=True):
            report = dataclasses.replace(report, saved=True, seconds=time.perf_counter() - started)
        return report

    def _builds_index_after(self, pending: int) -> bool:
        """Whether this run's vectors go in before the space's PostgreSQL index exists (see :meth:`index`)."""
        if self.db.dialect != "postgresql" or not pending:
            return False
        with self.db.read() as tx:
            return not pg_hnsw.index_exists(tx, self.space.embedding_space_id)

    def prepare_queries(self) -> float | None:
        """Export the local model for fast-starting queries while it is loaded (once per model digest).

        An export that fails, or does not reproduce the model's vectors, is logged and left out: queries go on
        through torch, and the run is not failed for it.
        """
        prepare = getattr(self.provider, "prepare_query_encoder", None)
        if prepare is None:
            return None
        try:
            seconds: float | None = prepare()
        except Exception as exc:  # an optional accelerator: never the reason an index run fails
            log.warning("queries stay on torch: the ONNX export failed: %s: %s", type(exc).__name__, exc)
            return None
        return seconds or None

    def _space_index(self, space: EmbeddingSpace) -> SpaceIndex:
        if space.embedding_space_id == self.space.embedding_space_id:
            index = self.searcher.index
        else:  # looked up by key: an empty index has no length, so it is falsy
            known = self._space_indexes.get(space.embedding_space_id)
            index = (
                known
                if known is not None
                else open_space_index(self.db, space, RetrievalConfig.from_settings(self.settings))
            )
        if not isinstance(index, SpaceIndex):
            raise TypeError(f"space {space.name}: the embedded index only exists on SQLite")
        self._space_indexes[space.embedding_space_id] = index
        return index

    def rebuild_index(self, *, reason: str = "requested") -> SyncReport:
        """Recompute the configured space's vector index from the embedding table."""
        return self.searcher.index.rebuild(reason=reason)

    # -- the LLM runtime -------------------------------------------------------------------------

    @cached_property
    def chat_provider(self) -> ChatProvider:
        """The configured chat model (loaded on its first answer, once per process)."""
        from holocron.llm.providers import build_chat_from_settings

        return build_chat_from_settings(self.settings)

    @cached_property
    def interrogations(self) -> InterrogationRegistry:
        """The built-in interrogations, the entry points' and the ``interrogations_file``'s."""
        from holocron.llm.interrogations import build_registry

        return build_registry(self.settings.interrogations_file)

    @cached_property
    def llm_jobs(self) -> LlmQueue:
        """The ``llm.job`` queue (the same queue implementation as :attr:`jobs`)."""
        from holocron.llm.queue import LlmQueue

        return LlmQueue(self.db, self.interrogations)

    def llm_lane(self, interrogations: Sequence[str] | None = None) -> LlmLane:
        """``llm.job`` as a worker lane (``holocron worker --queues llm``)."""
        from holocron.llm.lane import LlmLane

        return LlmLane(self, self.llm_jobs, interrogations)

    def llm_enqueue(
        self,
        interrogation: str,
        *,
        source_ids: Sequence[str] = (),
        all_sources: bool = False,
        queries: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> list[Enqueued[LlmJob]]:
        """One job per source (``all_sources``: every source with chunks) or per query; all validated before
        any is stored. A subject already waiting for an answer returns its job (the dedupe key)."""
        from holocron.jobs.models import InvalidPayloadError
        from holocron.jobs.queue import NewJob

        if all_sources:
            with self.db.read() as tx:
                s = tx.t.source_registry
                query = select(s.c.source_id).where(s.c.chunk_count > 0).order_by(s.c.source_id)
                source_ids = list(tx.execute(query).scalars())
        given = dict(params or {})
        payloads: list[dict[str, Any]] = [{"source_id": source_id, "params": given} for source_id in source_ids]
        payloads += [{"query": query, "params": given} for query in queries]
        if not payloads and given:
            payloads = [{"params": given}]  # the interrogation's query template makes the question
        if not payloads:
            raise InvalidPayloadError(f"{interrogation}: name the sources, or the queries, to ask about")
        return self.llm_jobs.enqueue_many([NewJob(interrogation, p, priority=priority) for p in payloads])

    def llm_refresh(self, *, interrogation: str | None = None) -> list[Enqueued[LlmJob]]:
        """Ask again exactly the current answers whose evidence chunks were replaced; idempotent (a second
        refresh before the workers run returns the same jobs)."""
        from holocron.jobs.queue import NewJob

        with self.db.read() as tx:
            stale = stale_current_answers(tx, interrogation=interrogation)
        jobs = []
        for answer in stale:
            payload = dict(answer["input_json"])
            payload.pop("version", None)  # ask at the interrogation's current version
            jobs.append(NewJob(answer["interrogation_key"], payload))
        return self.llm_jobs.enqueue_many(jobs)

    def llm_runs(
        self,
        *,
        job_id: int | None = None,
        interrogation: str | None = None,
        status: str | None = None,
        stale: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Listing:
        """LLM runs, newest first, each with ``stale`` (an evidence chunk it was built from is gone)."""
        with self.db.read() as tx:
            items = list_llm_runs(
                tx,
                limit=limit,
                offset=offset,
                job_id=job_id,
                interrogation=interrogation,
                status=status,
                stale=stale,
            )
            total = count_llm_runs(tx, job_id=job_id, interrogation=interrogation, status=status, stale=stale)
            return Listing(items, total, limit, offset)

    def llm_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its artifacts, evidence lineage (each item's chunk, and whether it still exists) and
        parsed output."""
        with self.db.read() as tx:
            return get_llm_run(tx, run_id)

    def llm_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """A run's artifacts with their content."""
        with self.db.read() as tx:
            return llm_artifacts(tx, run_id)

    def source_pages(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """``sem.source_page``: the classified pages, each with whether its answer is stale."""
        with self.db.read() as tx:
            return source_pages(tx, limit=limit)

    def llm_counts(self) -> dict[str, int]:
        with self.db.read() as tx:
            return llm_run_counts(tx)

    def register_records(self, records: Sequence[RawRecord]) -> RegisterResult:
        """Store raw records (already read by the caller, e.g. a benchmark's corpus) as sources."""
        return register_records(self.db, records)

    # -- crawl ---------------------------------------------------------------------------------

    def crawler(
        self,
        config: CrawlConfig,
        *,
        only: Sequence[str] = (),
        max_workers: int = 4,
        max_items: int | None = None,
        progress: Callable[[CrawlStats], None] | None = None,
        index: bool = True,
    ) -> Crawler:
        """A crawler of the configured sources (``only`` these, when given). With ``index``, every new or
        changed page queues its CHUNK_SOURCE job in the transaction that stores it, so running workers index
        what the crawl fetches with no further step."""
        from holocron.crawl.runner import Crawler

        settings = config.crawl if max_items is None else config.crawl.model_copy(update={"max_items": max_items})
        return Crawler(
            self.db,
            config.build(only),
            settings,
            index=self._index_trigger() if index else None,
            max_workers=max_workers,
            progress=progress,
        )

    def _index_trigger(self) -> IndexTrigger:
        from holocron.jobs.handlers import chunk_jobs

        space_id, policy = self.space.embedding_space_id, self.chunk_policy()

        def trigger(tx: Tx, pairs: list[tuple[str, str]]) -> None:
            self.jobs.enqueue_many_in(tx, chunk_jobs(space_id, pairs, policy=policy))

        return trigger

    def crawl_control(self, state: ControlState, *, source: str | None = None, reason: str | None = None) -> None:
        """Pause, resume (``running``) or drain every crawler, on every machine, or those of one source."""
        set_control(self.db, state, scope=source or "*", reason=reason)

    def crawl_status(self, sources: Sequence[str] | None = None) -> dict[str, Any]:
        """Work items by state and source, errors by reason, the latest crawl runs and the control states."""
        with self.db.read() as tx:
            return crawl_overview(tx, source_names=sources)

    def lake_export(self, path: Path, *, fmt: str = "jsonl", types: Sequence[str] | None = None) -> ExportReport:
        """Write this installation's snapshot (raw pages, LLM artifacts and runs) to an exchange file, and
        record each snapshot in ``lake.raw_exchange_record`` (see :mod:`holocron.lake.exchange`)."""
        from holocron.lake.exchange import export_records

        return export_records(self.db, path, fmt=fmt, types=types)

    def lake_import(self, path: Path) -> ImportReport:
        """Load an exchange file idempotently: raw pages get their raw record back, bad lines are reported."""
        from holocron.lake.exchange import import_records

        return import_records(self.db, path)
