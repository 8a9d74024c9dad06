"""The five job handlers. They call the same pipeline code as ``holocron index`` (``holocron.indexer``) and
search (``Searcher``); what they add is the queue's shape: batches, follow-up jobs, progress, artifacts.

Every handler is idempotent, because a job may run more than once (a retry, a reclaimed lease): chunk ids
are deterministic, embeddings are unique per (chunk, space, text), and each step only does what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select

from holocron.chunking import ChunkPolicy, embedding_input
from holocron.embedding.base import EmbeddingProvider, Purpose, tokenizer_for_policy
from holocron.embedding.validation import validate_vectors
from holocron.hashing import sha256_text
from holocron.indexer import chunk_sources, embed_chunks
from holocron.jobs import drift
from holocron.jobs.models import (
    PAYLOADS,
    ChunkPolicySpec,
    ChunkSourcePayload,
    DriftTestPayload,
    EmbedChunksPayload,
    Job,
    JobError,
    JobType,
    PermanentJobError,
    ReembedSpacePayload,
    RetrieveTestPayload,
)
from holocron.jobs.queue import Enqueued, JobQueue, NewJob
from holocron.jobs.registry import Handler, JobContext, JobRegistry, JobSpec
from holocron.retrieval.config import RetrievalConfig
from holocron.retrieval.search import Searcher
from holocron.store.database import Database, Tx
from holocron.store.embeddings import count_current_embeddings
from holocron.store.spaces import EmbeddingSpace, SpaceMismatchError
from holocron.vectors import Matrix

CHUNK_JOB_SOURCES = 50
"""Sources per CHUNK_SOURCE job: big enough that the per-job cost vanishes, small enough to spread."""
ID_PAGE = 1000


# --- what to enqueue -------------------------------------------------------------------------------------------


def chunk_job_key(space_id: int, sources: Sequence[tuple[str, str | None]]) -> str:
    """``chunk:{space}:{source_id}:{content_sha256}``; a batch of sources is named by the hash of its pairs."""
    if len(sources) == 1:
        source_id, digest = sources[0]
        key = f"chunk:{space_id}:{source_id}:{digest or '-'}"
        if len(key) <= 500:  # the column's width; a longer source id is hashed like a batch
            return key
    listing = "\n".join(f"{source_id}\x1f{digest or '-'}" for source_id, digest in sorted(sources))
    return f"chunk:{space_id}:batch:{len(sources)}:{sha256_text(listing)}"


def embed_job_key(space_id: int, chunk_ids: Sequence[str]) -> str:
    return f"embed:{space_id}:{len(chunk_ids)}:{sha256_text(','.join(sorted(chunk_ids)))}"


def enqueue_indexing(
    queue: JobQueue,
    space_id: int,
    source_ids: Sequence[str] | None = None,
    *,
    policy_version: str | None = None,
    policy: ChunkPolicy | None = None,
    batch_sources: int = CHUNK_JOB_SOURCES,
) -> list[Enqueued[Job]]:
    """Queue CHUNK_SOURCE jobs for ``source_ids``, or, with None, for every source not chunked at
    ``policy_version`` (the sweep that also recovers sources registered by a process that died before it
    could enqueue them). Dedupe keys carry each source's content hash, so repeating this is harmless.

    ``policy`` travels in each payload: the workers chunk with it, not with their own settings (None leaves
    the choice to each worker, as payloads from before policies travelled did).
    """
    db = queue.db
    with db.read() as tx:
        reg = tx.t.source_registry
        query = select(reg.c.source_id, reg.c.content_sha256).where(reg.c.ingest_id.is_not(None))
        if source_ids is None:
            query = query.where(_needs_chunking(tx, policy_version))
            pairs = [(row.source_id, row.content_sha256) for row in tx.execute(query.order_by(reg.c.source_id))]
        else:
            pairs = []
            wanted = sorted(set(source_ids))
            for start in range(0, len(wanted), ID_PAGE):
                page = wanted[start : start + ID_PAGE]
                pairs.extend(
                    (row.source_id, row.content_sha256)
                    for row in tx.execute(query.where(reg.c.source_id.in_(page)).order_by(reg.c.source_id))
                )
    return queue.enqueue_many(chunk_jobs(space_id, pairs, policy=policy, batch_sources=batch_sources))


def chunk_jobs(
    space_id: int,
    pairs: Sequence[tuple[str, str]],
    *,
    policy: ChunkPolicy | None,
    batch_sources: int = CHUNK_JOB_SOURCES,
) -> list[NewJob]:
    """The CHUNK_SOURCE jobs for ``(source_id, content_sha256)`` pairs: the trigger of every write path that
    stores new content (ingest, crawl), enqueued by the caller in its own transaction or in one of its own."""
    carried = {"chunk_policy": ChunkPolicySpec.of(policy).model_dump(mode="json")} if policy is not None else {}
    jobs = []
    for start in range(0, len(pairs), batch_sources):
        batch = pairs[start : start + batch_sources]
        jobs.append(
            NewJob(
                JobType.CHUNK_SOURCE,
                {"space_id": space_id, "source_ids": [source_id for source_id, _ in batch], **carried},
                dedupe_key=chunk_job_key(space_id, batch),
            )
        )
    return jobs


def _needs_chunking(tx: Tx, policy_version: str | None) -> Any:
    """The registry's own test for "chunks are stale": a new or changed payload, an error, or another policy."""
    reg = tx.t.source_registry
    conditions = [
        reg.c.status != "indexed",
        reg.c.indexed_content_sha256.is_(None),
        reg.c.indexed_content_sha256 != reg.c.content_sha256,
    ]
    if policy_version is not None:
        conditions += [reg.c.chunk_policy_version.is_(None), reg.c.chunk_policy_version != policy_version]
    return or_(*conditions)


def enqueue_embedding(
    queue: JobQueue, space_id: int, chunk_ids: Sequence[str], *, batch_size: int
) -> list[Enqueued[Job]]:
    ids = sorted(chunk_ids)
    jobs = []
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        jobs.append(
            NewJob(
                JobType.EMBED_CHUNKS,
                {"space_id": space_id, "chunk_ids": batch},
                dedupe_key=embed_job_key(space_id, batch),
            )
        )
    return queue.enqueue_many(jobs)


# --- CHUNK_SOURCE ----------------------------------------------------------------------------------------------


def chunk_source(ctx: JobContext, payload: ChunkSourcePayload) -> dict[str, Any]:
    """Extract and chunk the sources whose chunks are stale, then queue embedding of what the space lacks.

    The policy is the payload's (fixed when the job was queued); only a payload without one uses this worker's.
    """
    holo = ctx.holo
    space = ctx.space(payload.space_id)
    provider = ctx.provider_for(space)  # the chunk policy is fitted to this model's window
    policy = payload.chunk_policy.to_policy() if payload.chunk_policy is not None else holo.chunk_policy()
    tokenizer = tokenizer_for_policy(provider, policy)
    requested = sorted(set(payload.source_ids))
    with holo.db.read() as tx:
        todo = requested if payload.force else _stale_sources(tx, requested, policy.version)
    ctx.report_progress(sources=len(requested), to_chunk=len(todo))
    stats = chunk_sources(holo.db, policy, run_id=ctx.run_id, source_ids=todo, tokenizer=tokenizer) if todo else None
    ctx.checkpoint()
    with holo.db.read() as tx:
        missing = _chunks_missing_for_sources(tx, space.embedding_space_id, requested)
    embed_jobs: list[Enqueued[Job]] = []
    if payload.embed and missing:
        batch = payload.embed_batch_size or holo.settings.embed_batch_size
        embed_jobs = enqueue_embedding(ctx.queue, space.embedding_space_id, missing, batch_size=batch)
    metrics = stats.as_metrics() if stats else {}
    metrics.update(
        sources_requested=len(requested),
        sources_skipped=len(requested) - len(todo),
        chunks_to_embed=len(missing),
        embed_jobs=len(embed_jobs),
    )
    ctx.metrics.update(metrics)
    ctx.artifact(
        "chunk_manifest",
        {
            "job_id": ctx.job.job_id,
            "policy": policy.to_json(),
            "sources_requested": requested,
            "sources_chunked": todo if stats else [],
            "chunks_written": stats.chunks_written if stats else 0,
            "capped_sources": stats.capped_sources if stats else [],
            "errors": [{"source_id": s, "reason": r} for s, r in (stats.errors if stats else [])],
            "embedding_space": space.name,
            "embed_jobs": [e.job.job_id for e in embed_jobs],
        },
    )
    return {
        **{k: v for k, v in metrics.items() if k != "capped_sources"},
        "embed_job_ids": [e.job.job_id for e in embed_jobs],
        "errors": [{"source_id": s, "reason": r} for s, r in (stats.errors if stats else [])][:50],
    }


def _stale_sources(tx: Tx, source_ids: Sequence[str], policy_version: str) -> list[str]:
    reg = tx.t.source_registry
    out: list[str] = []
    for start in range(0, len(source_ids), ID_PAGE):
        page = list(source_ids[start : start + ID_PAGE])
        out.extend(
            tx.execute(
                select(reg.c.source_id).where(reg.c.source_id.in_(page), _needs_chunking(tx, policy_version))
            ).scalars()
        )
    return sorted(out)


def _chunks_missing_for_sources(tx: Tx, space_id: int, source_ids: Sequence[str]) -> list[str]:
    c, e = tx.t.chunk, tx.t.embedding
    has_embedding = (
        select(e.c.embedding_id)
        .where(
            e.c.chunk_id == c.c.chunk_id,
            e.c.embedding_space_id == space_id,
            e.c.input_content_sha256 == c.c.content_sha256,
        )
        .exists()
    )
    out: list[str] = []
    for start in range(0, len(source_ids), ID_PAGE):
        page = list(source_ids[start : start + ID_PAGE])
        out.extend(
            tx.execute(
                select(c.c.chunk_id).where(c.c.source_id.in_(page), ~has_embedding).order_by(c.c.chunk_id)
            ).scalars()
        )
    return sorted(out)


# --- EMBED_CHUNKS ----------------------------------------------------------------------------------------------

COMMIT_EVERY_CHUNKS = 16
"""An EMBED_CHUNKS job commits its vectors every this many chunks (one model call each), so a worker killed
mid-job loses at most one model call's work, and the next attempt embeds only what is left."""


def embed_chunk_batch(ctx: JobContext, payload: EmbedChunksPayload) -> dict[str, Any]:
    """Embed the chunks of the batch that have no vector of their current text in the space."""
    space = ctx.space(payload.space_id)
    provider = ctx.provider_for(space)
    calls_before = provider.stats.calls
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        ctx.report_progress(chunks=len(payload.chunk_ids), embedded=done)
        if done < len(payload.chunk_ids):  # after the last batch, finishing beats stopping
            ctx.checkpoint()

    stats = embed_chunks(
        ctx.holo.db,
        space,
        provider,
        run_id=ctx.run_id,
        chunk_ids=payload.chunk_ids,
        batch_size=min(payload.batch_size or ctx.holo.settings.embed_batch_size, COMMIT_EVERY_CHUNKS),
        progress=progress,
    )
    model_calls = provider.stats.calls - calls_before
    ctx.metrics.update(stats.as_metrics(), chunks_requested=len(payload.chunk_ids), model_calls=model_calls)
    if stats.embeddings_written:  # the vectors go into the space's index now, not at the first search
        upkeep = ctx.holo.keep_index_up(space)
        ctx.metrics.update(upkeep.as_metrics() if upkeep else {})
        if space.embedding_space_id == ctx.holo.space.embedding_space_id:  # the model is loaded: export it
            exported = ctx.holo.prepare_queries()
            ctx.metrics.update({"query_export_seconds": round(exported, 4)} if exported else {})
    ctx.artifact(
        "embedding_manifest",
        {
            "job_id": ctx.job.job_id,
            "embedding_space": space.name,
            "chunks_requested": len(payload.chunk_ids),
            "chunks_embedded": stats.chunks_embedded,
            "embeddings_written": stats.embeddings_written,
            "already_present": None if stats.failed_batches else len(payload.chunk_ids) - stats.chunks_embedded,
            "model_calls": model_calls,
            "errors": stats.errors,
        },
    )
    if stats.failed_batches:
        # What was written stays; the retry embeds only the rest.
        raise JobError(f"{stats.failed_batches} embedding batches failed: {stats.errors[0]}")
    return {
        "chunks_requested": len(payload.chunk_ids),
        "chunks_embedded": stats.chunks_embedded,
        "embeddings_written": stats.embeddings_written,
        "model_calls": model_calls,
    }


# --- REEMBED_SPACE ---------------------------------------------------------------------------------------------


def reembed_space(ctx: JobContext, payload: ReembedSpacePayload) -> dict[str, Any]:
    """Embed every chunk that has a current vector in the source space into the target space.

    The source space is only read, so it keeps serving searches until the target is complete; a rerun after a
    crash skips what the target already has.
    """
    db = ctx.holo.db
    source = ctx.space(payload.source_space_id)
    target = ctx.space(payload.target_space_id)
    provider = ctx.provider_for(target)
    with db.read() as tx:
        total = count_current_embeddings(tx, source.embedding_space_id)
    batch_size = payload.batch_size or ctx.holo.settings.embed_batch_size
    seen = written = embedded = failed = 0
    errors: list[str] = []
    started = time.perf_counter()
    ctx.report_progress(total=total, done=0, embedded=0)
    for page in _current_chunk_pages(db, source.embedding_space_id, payload.page_size):
        ctx.checkpoint()
        stats = embed_chunks(db, target, provider, run_id=ctx.run_id, chunk_ids=page, batch_size=batch_size)
        seen += len(page)
        written += stats.embeddings_written
        embedded += stats.chunks_embedded
        failed += stats.failed_batches
        errors.extend(stats.errors)
        elapsed = time.perf_counter() - started
        ctx.report_progress(
            total=total,
            done=seen,
            embedded=embedded,
            percent=round(100.0 * seen / total, 1) if total else 100.0,
            eta_seconds=round(elapsed / seen * (total - seen), 1) if seen else None,
        )
    with db.read() as tx:
        covered = _covered(tx, source.embedding_space_id, target.embedding_space_id)
    result = {
        "source_space": source.name,
        "target_space": target.name,
        "chunks_total": total,
        "chunks_embedded": embedded,
        "embeddings_written": written,
        "already_present": seen - embedded,
        "covered": covered,
        "complete": covered >= total and not failed,
        "failed_batches": failed,
    }
    ctx.metrics.update(result, reembed_seconds=round(time.perf_counter() - started, 4))
    ctx.artifact("embedding_manifest", {**result, "job_id": ctx.job.job_id, "errors": errors[:100]})
    if failed:
        raise JobError(f"{failed} embedding batches failed: {errors[0]}")
    return result


def _current_chunk_pages(db: Database, space_id: int, page_size: int) -> Iterator[list[str]]:
    """Chunk ids with a vector of their current text in the space, in pages (keyset on chunk id)."""
    after = ""
    while True:
        with db.read() as tx:
            c, e = tx.t.chunk, tx.t.embedding
            page = list(
                tx.execute(
                    select(c.c.chunk_id)
                    .join(e, and_(e.c.chunk_id == c.c.chunk_id, e.c.input_content_sha256 == c.c.content_sha256))
                    .where(e.c.embedding_space_id == space_id, c.c.chunk_id > after)
                    .order_by(c.c.chunk_id)
                    .limit(page_size)
                ).scalars()
            )
        if not page:
            return
        yield page
        after = page[-1]


def _covered(tx: Tx, source_space_id: int, target_space_id: int) -> int:
    """Chunks with a current vector in the source space that also have one in the target."""
    c, e = tx.t.chunk, tx.t.embedding
    e2 = e.alias("target")
    query = (
        select(func.count())
        .select_from(c)
        .join(e, and_(e.c.chunk_id == c.c.chunk_id, e.c.input_content_sha256 == c.c.content_sha256))
        .join(e2, and_(e2.c.chunk_id == c.c.chunk_id, e2.c.input_content_sha256 == c.c.content_sha256))
        .where(e.c.embedding_space_id == source_space_id, e2.c.embedding_space_id == target_space_id)
    )
    return int(tx.execute(query).scalar_one())


# --- RETRIEVE_TEST ---------------------------------------------------------------------------------------------


def retrieve_test(ctx: JobContext, payload: RetrieveTestPayload) -> dict[str, Any]:
    """Run the query set through the normal search path, with this worker's retrieval settings (mode, fusion,
    index); every retrieval and hit is logged with the run id. An expectation is met when its source id is
    exactly the id of one of the query's hits."""
    space = ctx.space(payload.space_id)
    try:
        searcher = Searcher(
            ctx.holo.db, space, ctx.provider_for(space), RetrievalConfig.from_settings(ctx.holo.settings)
        )
    except SpaceMismatchError as exc:
        raise PermanentJobError(str(exc)) from exc
    report: list[dict[str, Any]] = []
    met = 0
    latencies = []
    for done, query in enumerate(payload.queries, start=1):
        ctx.checkpoint()
        result = searcher.search(query, payload.k, run_id=ctx.run_id, log=True)
        latencies.append(result.latency_ms)
        hits = [
            {"rank": h.rank, "score": round(h.score, 6), "chunk_id": h.chunk_id, "source_id": h.source_id}
            for h in result.hits
        ]
        expected = payload.expect.get(query)
        found = None
        if expected is not None:
            found = any(h.source_id == expected for h in result.hits)
            met += bool(found)
        report.append(
            {"query": query, "retrieval_id": result.retrieval_id, "expected": expected, "found": found, "hits": hits}
        )
        ctx.report_progress(queries=len(payload.queries), done=done)
    passed = met == len(payload.expect)
    summary = {
        "embedding_space": space.name,
        "queries": len(payload.queries),
        "k": payload.k,
        "retrievals": len(report),
        "hits": sum(len(item["hits"]) for item in report),
        "expectations": len(payload.expect),
        "expectations_met": met,
        "passed": passed,
        "mean_latency_ms": round(float(np.mean(latencies)), 3) if latencies else None,
    }
    ctx.metrics.update(summary)
    ctx.artifact("retrieval_report", {**summary, "job_id": ctx.job.job_id, "results": report})
    return {**summary, "retrieval_ids": [item["retrieval_id"] for item in report][:100]}


# --- DRIFT_TEST ------------------------------------------------------------------------------------------------


def drift_test(ctx: JobContext, payload: DriftTestPayload) -> dict[str, Any]:
    """Compare a space with its baseline (another space, or its own vectors re-embedded now)."""
    db = ctx.holo.db
    space = ctx.space(payload.space_id)
    notes: list[str] = []
    if payload.baseline_space_id is None:
        mode = "reembed"
        baseline = space
        provider = ctx.provider_for(space)
        with db.read() as tx:
            ids, old, texts = _sample_with_text(tx, space.embedding_space_id, payload.sample)
        new = _embed_now(ctx, provider, space, texts)
    else:
        mode = "spaces"
        baseline = ctx.space(payload.baseline_space_id)
        with db.read() as tx:
            ids, old, new = _paired_sample(tx, baseline.embedding_space_id, space.embedding_space_id, payload.sample)
    ctx.checkpoint()
    if ids and old.shape[1] == new.shape[1]:
        cosines = drift.paired_cosines(old, new)
    else:
        cosines = np.zeros(0)
        if ids:
            notes.append(f"dimensions differ ({old.shape[1]} and {new.shape[1]}): no vector cosines")
    cosine_summary = drift.summarize_cosines(cosines)
    worst = [{"chunk_id": ids[i], "cosine": round(float(cosines[i]), 6)} for i in np.argsort(cosines)[:10]]

    comparisons: list[drift.RankingComparison] = []
    skipped: list[str] = []
    if payload.queries and ids:
        old_queries = _query_vectors(ctx, baseline, payload.queries)
        new_queries = old_queries if mode == "reembed" else _query_vectors(ctx, space, payload.queries)
        usable = [q for q in payload.queries if q in old_queries and q in new_queries]
        skipped = [q for q in payload.queries if q not in usable]
        if usable:
            old_top = drift.top_k(np.vstack([old_queries[q] for q in usable]), old, payload.k)
            new_top = drift.top_k(np.vstack([new_queries[q] for q in usable]), new, payload.k)
            comparisons = [
                drift.compare_rankings(q, [ids[i] for i in a], [ids[i] for i in b])
                for q, a, b in zip(usable, old_top, new_top, strict=True)
            ]
        if skipped:
            notes.append(f"{len(skipped)} queries have no vector in one of the spaces (run RETRIEVE_TEST there)")
    ranking_summary = drift.summarize_rankings(comparisons)
    failures = drift.verdict(
        cosine_summary,
        ranking_summary,
        drift.Thresholds(payload.min_cosine, payload.min_mean_cosine, payload.min_mean_jaccard),
    )
    passed = not failures
    summary = {
        "mode": mode,
        "embedding_space": space.name,
        "baseline_space": baseline.name,
        "chunks_compared": len(ids),
        "mean_cosine": cosine_summary.mean,
        "min_cosine": cosine_summary.minimum,
        "p01_cosine": cosine_summary.p01,
        "queries_compared": ranking_summary.n,
        "queries_skipped": len(skipped),
        "k": payload.k,
        "mean_jaccard": ranking_summary.mean_jaccard,
        "min_jaccard": ranking_summary.min_jaccard,
        "mean_spearman": ranking_summary.mean_spearman,
        "mean_kendall": ranking_summary.mean_kendall,
        "passed": passed,
        "failures": failures,
        "notes": notes,
    }
    ctx.metrics.update(summary)
    ctx.artifact(
        "drift_report",
        {
            **summary,
            "job_id": ctx.job.job_id,
            "thresholds": {
                "min_cosine": payload.min_cosine,
                "min_mean_cosine": payload.min_mean_cosine,
                "min_mean_jaccard": payload.min_mean_jaccard,
            },
            "worst_chunks": worst,
            "queries": [
                {
                    "query": c.query,
                    "jaccard": c.jaccard,
                    "spearman": c.spearman,
                    "kendall": c.kendall,
                    "old": c.old,
                    "new": c.new,
                }
                for c in comparisons
            ],
            "queries_without_vectors": skipped,
        },
    )
    if failures and payload.fail_on_drift:
        raise PermanentJobError("drift test failed: " + "; ".join(failures))
    return summary


def _sample_with_text(tx: Tx, space_id: int, limit: int) -> tuple[list[str], Matrix, list[str]]:
    """Up to ``limit`` chunks with a current vector in the space, in chunk-id order (a hash: spread evenly)."""
    c, e = tx.t.chunk, tx.t.embedding
    rows = tx.execute(
        select(c.c.chunk_id, e.c.vector, c.c.content, c.c.context)
        .join(e, and_(e.c.chunk_id == c.c.chunk_id, e.c.input_content_sha256 == c.c.content_sha256))
        .where(e.c.embedding_space_id == space_id)
        .order_by(c.c.chunk_id)
        .limit(limit)
    ).all()
    texts = [embedding_input(r.context, r.content) for r in rows]
    return [r.chunk_id for r in rows], _stack([r.vector for r in rows]), texts


def _paired_sample(tx: Tx, old_space: int, new_space: int, limit: int) -> tuple[list[str], Matrix, Matrix]:
    """Chunks with a current vector in both spaces, and the two vectors of each."""
    c, e = tx.t.chunk, tx.t.embedding
    e_new = e.alias("new_embedding")
    rows = tx.execute(
        select(c.c.chunk_id, e.c.vector.label("old_vector"), e_new.c.vector.label("new_vector"))
        .join(e, and_(e.c.chunk_id == c.c.chunk_id, e.c.input_content_sha256 == c.c.content_sha256))
        .join(e_new, and_(e_new.c.chunk_id == c.c.chunk_id, e_new.c.input_content_sha256 == c.c.content_sha256))
        .where(e.c.embedding_space_id == old_space, e_new.c.embedding_space_id == new_space)
        .order_by(c.c.chunk_id)
        .limit(limit)
    ).all()
    return (
        [r.chunk_id for r in rows],
        _stack([r.old_vector for r in rows]),
        _stack([r.new_vector for r in rows]),
    )


def _stack(vectors: Sequence[Any]) -> Matrix:
    if not vectors:
        return np.zeros((0, 1), dtype=np.float32)
    return np.vstack([np.asarray(v, dtype=np.float32) for v in vectors])


def _embed_now(ctx: JobContext, provider: EmbeddingProvider, space: EmbeddingSpace, texts: list[str]) -> Matrix:
    """The sample's texts embedded by the model as it is now, exactly as the indexer would store them."""
    batch = ctx.holo.settings.embed_batch_size
    parts = []
    for start in range(0, len(texts), batch):
        ctx.checkpoint()
        chunk = texts[start : start + batch]
        raw = provider.embed(chunk, Purpose.DOCUMENT)
        vectors = validate_vectors(raw, expected=len(chunk), dimensions=space.dimensions)
        parts.append(space.prepare(vectors))
        ctx.report_progress(chunks=len(texts), embedded=start + len(chunk))
    return np.vstack(parts) if parts else np.zeros((0, space.dimensions), dtype=np.float32)


def _query_vectors(ctx: JobContext, space: EmbeddingSpace, queries: Sequence[str]) -> dict[str, Matrix]:
    """Query vectors in ``space``: from this worker's model when it is that space's model, otherwise the most
    recent logged retrieval of the same text in that space (how an old, replaced model is still compared)."""
    if ctx.serves(space):
        raw = ctx.holo.provider.embed(list(queries), Purpose.QUERY)
        vectors = space.prepare(validate_vectors(raw, expected=len(queries), dimensions=space.dimensions))
        return {q: vectors[i] for i, q in enumerate(queries)}
    found: dict[str, Matrix] = {}
    with ctx.holo.db.read() as tx:
        r = tx.t.retrieval
        rows = tx.execute(
            select(r.c.query_text, r.c.query_embedding)
            .where(
                r.c.embedding_space_id == space.embedding_space_id,
                r.c.query_text.in_(list(queries)),
                r.c.query_embedding.is_not(None),
            )
            .order_by(r.c.created_utc)
        ).all()
    for row in rows:  # oldest first, so the newest wins
        found[row.query_text] = space.prepare(np.asarray(row.query_embedding, dtype=np.float32))
    return found


@cache
def default_registry() -> JobRegistry:
    """The real job types and their handlers."""
    table: dict[JobType, Handler] = {
        JobType.CHUNK_SOURCE: chunk_source,
        JobType.EMBED_CHUNKS: embed_chunk_batch,
        JobType.REEMBED_SPACE: reembed_space,
        JobType.RETRIEVE_TEST: retrieve_test,
        JobType.DRIFT_TEST: drift_test,
    }
    return JobRegistry(JobSpec(kind, PAYLOADS[kind], table[kind]) for kind in JobType)
