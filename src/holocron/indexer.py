"""The indexing pipeline: stored sources -> extracted text -> chunks -> embeddings.

Two steps with the database between them, so that the single-process ``holocron index`` and the job queue's
``CHUNK_SOURCE`` / ``EMBED_CHUNKS`` handlers run exactly the same code. Both steps are idempotent: chunks are
keyed by a deterministic id, embeddings by (chunk, space, content hash), and a rerun with nothing changed
reads a few rows and calls the model zero times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from holocron.chunking import ChunkingResult, ChunkPolicy, Tokenizer, chunk_structure, chunk_text, embedding_input
from holocron.embedding.base import EmbeddingError, EmbeddingProvider, Purpose
from holocron.embedding.validation import validate_vectors
from holocron.extract import ExtractedDocument, ExtractionError, extract, section_path
from holocron.hashing import chunk_id_for, sha256_text
from holocron.observability.metrics import provider_call, record_chunks_written, record_embeddings_written
from holocron.store.chunks import (
    ChunkRow,
    PendingChunk,
    chunks_missing_embeddings,
    refresh_chunk_statistics,
    replace_chunks,
)
from holocron.store.database import Database
from holocron.store.embeddings import EmbeddingWrite, insert_embeddings
from holocron.store.sources import (
    IndexedSource,
    SourcePayload,
    batches_by_bytes,
    load_payloads,
    mark_error,
    mark_indexed,
    sources_to_chunk,
)
from holocron.store.spaces import EmbeddingSpace

Progress = Callable[[int], None]
SOURCE_BATCH = 200
# Chunks read at once and ordered by token count before they are cut into batches (see _by_length).
EMBED_WINDOW = 1024


@dataclass
class ChunkStats:
    sources_chunked: int = 0
    sources_failed: int = 0
    chunks_total: int = 0
    chunks_written: int = 0
    chunks_dropped: int = 0
    capped_sources: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_metrics(self) -> dict[str, Any]:
        return {
            "sources_chunked": self.sources_chunked,
            "sources_failed": self.sources_failed,
            "chunks_total": self.chunks_total,
            "chunks_written": self.chunks_written,
            "chunks_dropped": self.chunks_dropped,
            "capped_sources": self.capped_sources[:100],
            "chunk_seconds": round(self.seconds, 4),
        }


@dataclass
class EmbedStats:
    chunks_embedded: int = 0
    embeddings_written: int = 0
    batches: int = 0
    failed_batches: int = 0
    errors: list[str] = field(default_factory=list)
    model_seconds: float = 0.0
    seconds: float = 0.0
    input_bytes: int = 0

    def as_metrics(self) -> dict[str, Any]:
        return {
            "chunks_embedded": self.chunks_embedded,
            "embeddings_written": self.embeddings_written,
            "embed_batches": self.batches,
            "failed_batches": self.failed_batches,
            "model_seconds": round(self.model_seconds, 4),
            "embed_seconds": round(self.seconds, 4),
            "input_bytes": self.input_bytes,
        }


@dataclass(frozen=True)
class SourceChunks:
    document: ExtractedDocument
    chunks: list[ChunkRow]
    total_windows: int
    dropped: int


def build_chunks(source: SourcePayload, policy: ChunkPolicy, tokenizer: Tokenizer | None = None) -> SourceChunks:
    """Pure: a stored payload to its chunk rows. Raises :class:`ExtractionError` for unusable input.

    A structure policy needs the tokenizer it names. A chunk's id covers what is embedded (its header and its
    content), so a changed header re-embeds that chunk and no other."""
    document = storable(extract(source.source_type, source.payload, origin=source.source_id))
    result, contexts = chunk_document(document, policy, tokenizer)
    policy_json = policy.to_json()
    rows = []
    for span, context in zip(result.spans, contexts, strict=True):
        digest = sha256_text(span.text)
        embedded = sha256_text(embedding_input(context, span.text)) if context else digest
        section = section_path(document.sections, span.start)
        rows.append(
            ChunkRow(
                chunk_id=chunk_id_for(source.source_id, span.start, span.end, policy.version, embedded),
                source_id=source.source_id,
                source_type=source.source_type,
                source_ref={**source.source_ref, "title": document.title, **({"section": section} if section else {})},
                chunk_index=span.index,
                start_offset=span.start,
                end_offset=span.end,
                content=span.text,
                content_sha256=digest,
                policy_version=policy.version,
                policy_json=policy_json,
                context=context or None,
            )
        )
    return SourceChunks(document, rows, result.total_windows, result.dropped)


def chunk_document(
    document: ExtractedDocument, policy: ChunkPolicy, tokenizer: Tokenizer | None = None
) -> tuple[ChunkingResult, list[str]]:
    """Pure: an extracted document's chunks under ``policy``, and each chunk's contextual header ("" for none)."""
    if policy.algorithm == "structure-v1":
        if tokenizer is None or tokenizer.name != policy.tokenizer:
            raise ValueError(f"chunk policy {policy.version} needs its tokenizer {policy.tokenizer}")
        return chunk_structure(
            document.text,
            policy,
            tokenizer,
            section_starts=[section.offset for section in document.sections],
            heading_path=lambda offset: section_path(document.sections, offset),
            title=document.title,
        )
    result = chunk_text(document.text, policy)
    return result, [""] * len(result.spans)


def storable(document: ExtractedDocument) -> ExtractedDocument:
    """Text both engines can store: NUL (from a JSON ``\\u0000`` or a stray byte) becomes U+FFFD, one
    character for one, so offsets stay valid."""
    if "\x00" not in document.text and "\x00" not in (document.title or ""):
        return document
    return replace(
        document,
        text=document.text.replace("\x00", "\ufffd"),
        title=document.title.replace("\x00", "\ufffd") if document.title else document.title,
    )


def _source_date(document: ExtractedDocument) -> datetime | None:
    raw = document.metadata.get("publication_date") or document.metadata.get("date")
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def chunk_sources(
    db: Database,
    policy: ChunkPolicy,
    *,
    run_id: str | None = None,
    source_ids: Sequence[str] | None = None,
    everything: bool = False,
    progress: Progress | None = None,
    keep_last_good: bool = False,
    tokenizer: Tokenizer | None = None,
) -> ChunkStats:
    """Extract and chunk every source whose content or policy changed (or the given ones).

    A source that fails extraction is marked ``error`` and its old chunks go (``keep_last_good`` keeps them,
    shown as ``stale``)."""
    stats = ChunkStats()
    started = time.perf_counter()
    for batch in _source_batches(db, policy, source_ids, everything):
        with db.read() as tx:
            payloads = load_payloads(tx, batch)
        built: list[tuple[SourcePayload, SourceChunks | str]] = []
        for payload in payloads:
            try:
                built.append((payload, build_chunks(payload, policy, tokenizer)))
            except ExtractionError as exc:
                built.append((payload, str(exc)))
        indexed: list[IndexedSource] = []
        chunks_by_source: dict[str, list[ChunkRow]] = {}
        failures: list[tuple[str, str]] = []
        for payload, outcome in built:
            if isinstance(outcome, str):
                failures.append((payload.source_id, outcome))
                continue
            chunks_by_source[payload.source_id] = outcome.chunks
            indexed.append(
                IndexedSource(
                    source_id=payload.source_id,
                    title=outcome.document.title,
                    content_sha256=payload.content_sha256,
                    policy_version=policy.version,
                    chunk_count=len(outcome.chunks),
                    chunks_dropped=outcome.dropped,
                    source_date_utc=_source_date(outcome.document),
                )
            )
            stats.chunks_total += len(outcome.chunks)
            if outcome.dropped:
                stats.chunks_dropped += outcome.dropped
                stats.capped_sources.append(payload.source_id)
        with db.write() as tx:
            stats.chunks_written += record_chunks_written(replace_chunks(tx, chunks_by_source, run_id))
            mark_indexed(tx, indexed)
            for source_id, reason in failures:
                mark_error(tx, source_id, reason, keep_last_good=keep_last_good)
        stats.sources_chunked += len(indexed)
        stats.sources_failed += len(failures)
        stats.errors.extend(failures)
        if progress:
            progress(len(batch))
    refresh_chunk_statistics(db, stats.chunks_written)
    stats.seconds = time.perf_counter() - started
    return stats


def _source_batches(db: Database, policy: ChunkPolicy, source_ids: Sequence[str] | None, everything: bool) -> Any:
    if source_ids is not None:
        with db.read() as tx:
            batches = batches_by_bytes(tx, source_ids, limit=SOURCE_BATCH)
        yield from batches
        return
    after = ""
    while True:
        with db.read() as tx:
            batch = sources_to_chunk(tx, policy.version, after=after, limit=SOURCE_BATCH, everything=everything)
        if not batch:
            return
        yield batch
        after = batch[-1]


def embed_chunks(
    db: Database,
    space: EmbeddingSpace,
    provider: EmbeddingProvider,
    *,
    run_id: str | None = None,
    batch_size: int = 64,
    chunk_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    stop_on_error: bool = False,
) -> EmbedStats:
    """Embed every chunk that has no vector of its current text in ``space``; nothing else calls the model."""
    identity = provider.identity()
    if not space.matches(identity):
        raise EmbeddingError(
            f"provider serves {identity.model_name}:{identity.model_tag} ({identity.model_digest[:19]}), "
            f"not the space {space.name}"
        )
    stats = EmbedStats()
    started = time.perf_counter()
    after = ""
    while True:
        with db.read() as tx:
            pending = chunks_missing_embeddings(
                tx, space.embedding_space_id, after=after, limit=max(batch_size, EMBED_WINDOW), chunk_ids=chunk_ids
            )
        if not pending:
            break
        after = pending[-1].chunk_id
        for batch in _by_length(provider, pending, batch_size):
            try:
                written = _embed_batch(db, space, provider, batch, run_id, stats)
            except EmbeddingError as exc:
                stats.failed_batches += 1
                stats.errors.append(str(exc))
                if stop_on_error:
                    raise
                continue
            stats.embeddings_written += record_embeddings_written(written, space.name)
            if progress:
                progress(len(batch))
    stats.seconds = time.perf_counter() - started
    return stats


def _by_length(provider: EmbeddingProvider, pending: list[PendingChunk], batch_size: int) -> list[list[PendingChunk]]:
    """Batches of similar token counts, shortest first: a batch is padded to its longest member, so mixing a
    short chunk with a long one makes the model work on padding. The writes are idempotent, so the order
    they land in does not matter, and a vector does not depend on its batch beyond float noise."""
    counts = provider.count_tokens([embedding_input(chunk.context, chunk.content) for chunk in pending])
    order = sorted(range(len(pending)), key=lambda index: (counts[index], pending[index].chunk_id))
    ordered = [pending[index] for index in order]
    return [ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size)]


def _embed_batch(
    db: Database,
    space: EmbeddingSpace,
    provider: EmbeddingProvider,
    pending: list[PendingChunk],
    run_id: str | None,
    stats: EmbedStats,
) -> int:
    texts = [embedding_input(chunk.context, chunk.content) for chunk in pending]
    ids = [chunk.chunk_id for chunk in pending]
    model_started = time.perf_counter()
    with provider_call(space.provider, space.model_name):
        raw = provider.embed(texts, Purpose.DOCUMENT)
    stats.model_seconds += time.perf_counter() - model_started
    vectors = space.prepare(validate_vectors(raw, expected=len(pending), dimensions=space.dimensions, ids=ids))
    stats.batches += 1
    stats.chunks_embedded += len(pending)
    stats.input_bytes += sum(len(text.encode("utf-8")) for text in texts)
    writes = [EmbeddingWrite(chunk.chunk_id, chunk.content_sha256) for chunk in pending]
    with db.write() as tx:
        return insert_embeddings(tx, space.embedding_space_id, writes, vectors, run_id)
