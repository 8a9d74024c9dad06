"""The tables of the ``ingest``, ``vector``, ``llm`` and ``lake`` schemas.

PostgreSQL keeps the four schemas as real schemas (``vector.job``). SQLite has none, so each table is named
``<schema>_<table>`` there (``vector_job``), which can never collide with a later ``llm_job``. The tables are
built once per flavour by :func:`build_tables`; the store picks the flavour from the engine's dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from holocron.store.types import JsonType, UtcDateTime, VectorType, WorkItemStatus
from holocron.vocabulary import EXCHANGE_TYPES, JOB_STATUSES, JOB_TYPES

SCHEMAS = ("ingest", "vector", "llm", "lake")
"""The schemas of the first migration; ``sem`` (semantic facts derived from the LLM's answers) came with 0004."""
SEM_SCHEMA = "sem"

SOURCE_STATUSES = ("pending", "indexed", "error")
LLM_RUN_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED")
LLM_ARTIFACT_TYPES = (
    "request_json",
    "response_json",
    "evidence_bundle",
    "prompt_text",
    "parsed_output",
    "raw_response",
    "invalid_json_response",
    "error_manifest",
)


def _flat_table_name(_constraint: object, table: Table) -> str:
    return f"{table.schema}_{table.name}" if table.schema else table.name


# Constraint and index names carry the schema on both engines, so one migration file serves both and
# SQLite's database-wide index namespace can never see two ``ix_job_...``.
NAMING_CONVENTION: dict[str, object] = {
    "flat": _flat_table_name,
    "ix": "ix_%(flat)s_%(column_0_N_name)s",
    "uq": "uq_%(flat)s_%(column_0_N_name)s",
    "ck": "ck_%(flat)s_%(constraint_name)s",
    "fk": "fk_%(flat)s_%(column_0_name)s",
    "pk": "pk_%(flat)s",
}

# Identifier widths
SHA = 64
SOURCE_ID = 512
WORK_ITEM_STATUSES = ("pending", "claimed", "completed", "failed")
WORK_ITEM_NAMES = {
    "attempt_count": "attempt",
    "locked_by": "claimed_by",
    "locked_utc": "claimed_at",
    "lease_expires_utc": "lease_expires_at",
}
"""``ingest.work_items``' names (the inventory's) for the queue columns that carry another name elsewhere."""


def queue_columns(
    names: Mapping[str, str] | None = None, *, status: Any = None, statuses: tuple[str, ...] = JOB_STATUSES
) -> list[Column[Any] | CheckConstraint | Index]:
    """What every queue table has besides its id, type and own columns: the columns the one queue
    implementation (:mod:`holocron.jobs.queue`) claims, leases, fences and retries with, and their indexes.

    ``names`` gives a column another name in the database (``attempt_count`` -> ``attempt``); the queue's code
    still finds it under its own name (the column's ``key``). ``status`` is the status column's type and
    ``statuses`` what the database may hold in it."""
    renamed = dict(names or {})

    def column(key: str, *args: Any, **kwargs: Any) -> Column[Any]:
        return Column(renamed.get(key, key), *args, key=key, **kwargs)

    return [
        column("status", status if status is not None else String(20), nullable=False),
        column("priority", Integer, nullable=False, default=0),
        column("input_json", JsonType, nullable=False),
        column("max_attempts", Integer, nullable=False),
        column("attempt_count", Integer, nullable=False, default=0),
        column("locked_by", String(200), nullable=True),
        column("locked_utc", UtcDateTime, nullable=True),
        column("lease_expires_utc", UtcDateTime, nullable=True),
        column("available_utc", UtcDateTime, nullable=False),
        column("last_error", Text, nullable=True),
        column("result_json", JsonType, nullable=True),
        column("created_utc", UtcDateTime, nullable=False),
        column("updated_utc", UtcDateTime, nullable=False),
        column("completed_utc", UtcDateTime, nullable=True),
        # Migration 0003: a fresh token per claim; owner-only writes match on it (fencing).
        column("claim_token", String(36), nullable=True),
        CheckConstraint(
            f"{renamed.get('status', 'status')} IN (" + ", ".join(f"'{s}'" for s in statuses) + ")", name="status"
        ),
        Index(None, "status", "priority", "available_utc"),  # indexes name columns by their keys
        Index(None, "status", "lease_expires_utc"),
    ]


def table_name_for(uses_schemas: bool, schema: str, table: str) -> tuple[str, str | None]:
    """The one naming rule: ``vector.job`` on PostgreSQL, ``vector_job`` on SQLite."""
    return (table, schema) if uses_schemas else (f"{schema}_{table}", None)


def column_ref(uses_schemas: bool, schema: str, table: str, column: str) -> str:
    name, schema_or_none = table_name_for(uses_schemas, schema, table)
    return f"{schema_or_none}.{name}.{column}" if schema_or_none else f"{name}.{column}"


@dataclass(frozen=True)
class Tables:
    metadata: MetaData
    uses_schemas: bool
    ingest_records: Table
    embedding_space: Table
    source_registry: Table
    chunk: Table
    embedding: Table
    embedding_log: Table | None
    job: Table
    run: Table
    store_info: Table
    run_artifact: Table
    retrieval: Table
    retrieval_hit: Table
    evidence_bundle: Table
    evidence_item: Table
    llm_job: Table
    llm_run: Table
    llm_artifact: Table
    llm_run_evidence: Table
    source_page: Table
    work_items: Table
    crawl_run: Table
    crawl_control: Table
    raw_exchange_record: Table

    def qualified(self, table: Table) -> str:
        """The name to use in hand-written SQL (FTS triggers, pgvector indexes)."""
        return f"{table.schema}.{table.name}" if table.schema else table.name


def _fulltext_column(uses_schemas: bool) -> list[object]:
    """PostgreSQL's full-text column on ``vector.chunk``: generated by the server from ``content`` (migration
    0002), never written by Holocron. SQLite's full-text index is an FTS5 virtual table instead, which table
    metadata cannot describe (see :data:`UNMAPPED_SQLITE_PREFIX`)."""
    if not uses_schemas:
        return []
    return [
        Column("content_tsv", TSVECTOR, Computed("to_tsvector('english'::regconfig, content)", persisted=True)),
        Index("ix_vector_chunk_content_tsv", "content_tsv", postgresql_using="gin"),
    ]


# SQLite's FTS5 virtual table ``vector_chunk_fts`` (and its shadow tables) and its key table are made by raw DDL
# in migration 0002: the only objects of the store that these table definitions do not describe.
UNMAPPED_SQLITE_PREFIX = "vector_chunk_fts"


def build_tables(uses_schemas: bool) -> Tables:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)  # type: ignore[arg-type]

    def ref(schema: str, table: str, column: str) -> str:
        return column_ref(uses_schemas, schema, table, column)

    def table(schema: str, table_name: str, *items: object, **options: Any) -> Table:
        name, schema_or_none = table_name_for(uses_schemas, schema, table_name)
        return Table(name, metadata, *items, schema=schema_or_none, **options)  # type: ignore[arg-type]

    ingest_records = table(
        "ingest",
        "ingest_records",
        Column("ingest_id", Integer, primary_key=True, autoincrement=True),
        Column("source_system", String(200), nullable=False),
        Column("resource_id", String(SOURCE_ID), nullable=False),
        Column("request_uri", Text, nullable=False),
        Column("request_method", String(10), nullable=False, default="GET"),
        Column("status_code", Integer, nullable=True),
        Column("content_type", String(100), nullable=False),
        Column("content_length", Integer, nullable=False),
        Column("payload", Text, nullable=False),
        Column("response_headers", JsonType, nullable=True),
        Column("hash_sha256", String(SHA), nullable=False),
        Column("run_id", String(36), nullable=True),
        Column("fetched_at_utc", UtcDateTime, nullable=False),
        # Migration 0005: the rest of the audit trail of a fetched response.
        Column("request_headers", JsonType, nullable=True),
        Column("requested_at_utc", UtcDateTime, nullable=True),
        Column("responded_at_utc", UtcDateTime, nullable=True),
        Column("duration_ms", Float, nullable=True),
        Column("error_message", Text, nullable=True),
        Column("work_item_id", BigInteger, nullable=True),
        UniqueConstraint("source_system", "resource_id", "hash_sha256"),
        Index(None, "source_system", "resource_id"),
        Index(None, "fetched_at_utc"),
    )

    embedding_space = table(
        "vector",
        "embedding_space",
        Column("embedding_space_id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("provider", String(50), nullable=False),
        Column("model_name", String(300), nullable=False),
        Column("model_tag", String(100), nullable=False),
        Column("model_digest", String(100), nullable=False),
        Column("dimensions", Integer, nullable=False),
        Column("normalize_flag", Boolean, nullable=False),
        Column("distance_metric", String(20), nullable=False),
        Column("max_input_tokens", Integer, nullable=True),
        Column("preprocess_policy_json", JsonType, nullable=False),
        Column("endpoint_url", Text, nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        UniqueConstraint("provider", "model_name", "model_tag", "model_digest", "dimensions"),
        CheckConstraint("dimensions > 0", name="dimensions_positive"),
        CheckConstraint("distance_metric IN ('cosine', 'ip', 'l2')", name="metric"),
    )

    source_registry = table(
        "vector",
        "source_registry",
        Column("source_id", String(SOURCE_ID), primary_key=True),
        Column("source_type", String(50), nullable=False),
        Column("source_system", String(200), nullable=False),
        Column("source_ref_json", JsonType, nullable=False),
        Column("title", Text, nullable=True),
        Column("ingest_id", Integer, ForeignKey(ref("ingest", "ingest_records", "ingest_id")), nullable=True),
        Column("content_sha256", String(SHA), nullable=True),
        Column("indexed_content_sha256", String(SHA), nullable=True),
        Column("chunk_policy_version", String(100), nullable=True),
        Column("last_indexed_utc", UtcDateTime, nullable=True),
        Column("chunk_count", Integer, nullable=False, default=0),
        Column("chunks_dropped", Integer, nullable=False, default=0),
        Column("tags_json", JsonType, nullable=False),
        Column("status", String(20), nullable=False),
        Column("error", Text, nullable=True),
        Column("source_date_utc", UtcDateTime, nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        Column("updated_utc", UtcDateTime, nullable=False),
        CheckConstraint("status IN ('pending', 'indexed', 'error')", name="status"),
        Index(None, "status"),
        Index(None, "source_type"),
    )

    run = table(
        "vector",
        "run",
        Column("run_id", String(36), primary_key=True),
        Column("job_id", BigInteger, ForeignKey(ref("vector", "job", "job_id")), nullable=True),
        Column("run_type", String(50), nullable=False),
        Column("worker_id", String(200), nullable=True),
        Column("status", String(20), nullable=False),
        Column(
            "embedding_space_id",
            Integer,
            ForeignKey(ref("vector", "embedding_space", "embedding_space_id")),
            nullable=True,
        ),
        Column("endpoint_url", Text, nullable=True),
        Column("model_name", String(300), nullable=True),
        Column("model_tag", String(100), nullable=True),
        Column("model_digest", String(100), nullable=True),
        Column("options_json", JsonType, nullable=False),
        Column("metrics_json", JsonType, nullable=False),
        Column("error", Text, nullable=True),
        Column("started_utc", UtcDateTime, nullable=False),
        Column("completed_utc", UtcDateTime, nullable=True),
        # Migration 0003: where the run executes, and the lease it renews while alive.
        Column("host", String(200), nullable=True),
        Column("pid", Integer, nullable=True),
        Column("lease_expires_utc", UtcDateTime, nullable=True),
        CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED')", name="status"),
        Index(None, "job_id"),
        Index(None, "started_utc"),
        Index(None, "status", "lease_expires_utc"),
    )

    chunk = table(
        "vector",
        "chunk",
        Column("chunk_id", String(SHA), primary_key=True),
        Column(
            "source_id",
            String(SOURCE_ID),
            ForeignKey(ref("vector", "source_registry", "source_id"), ondelete="CASCADE"),
            nullable=False,
        ),
        Column("source_type", String(50), nullable=False),
        Column("source_ref_json", JsonType, nullable=False),
        Column("chunk_index", Integer, nullable=False),
        Column("start_offset", Integer, nullable=False),
        Column("end_offset", Integer, nullable=False),
        Column("content", Text, nullable=False),
        Column("content_sha256", String(SHA), nullable=False),
        Column("byte_count", Integer, nullable=False),
        # Embedded before the content (a structure policy's heading path); null: the content is embedded alone.
        Column("context", Text, nullable=True),
        Column("policy_version", String(100), nullable=False),
        Column("policy_json", JsonType, nullable=False),
        Column("run_id", String(36), ForeignKey(ref("vector", "run", "run_id")), nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        Index(None, "source_id", "chunk_index"),
        *_fulltext_column(uses_schemas),
    )

    embedding = table(
        "vector",
        "embedding",
        Column("embedding_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column(
            "chunk_id",
            String(SHA),
            ForeignKey(ref("vector", "chunk", "chunk_id"), ondelete="CASCADE"),
            nullable=False,
        ),
        Column(
            "embedding_space_id",
            Integer,
            ForeignKey(ref("vector", "embedding_space", "embedding_space_id")),
            nullable=False,
        ),
        Column("input_content_sha256", String(SHA), nullable=False),
        Column("run_id", String(36), ForeignKey(ref("vector", "run", "run_id")), nullable=True),
        Column("vector", VectorType(), nullable=False),
        Column("vector_sha256", String(SHA), nullable=False),
        Column("created_utc", UtcDateTime, nullable=False),
        UniqueConstraint("chunk_id", "embedding_space_id", "input_content_sha256"),
        Index(None, "embedding_space_id", "embedding_id"),
    )

    # SQLite only: one row per embedding added or removed, written by triggers (migration 0002) in the same
    # transaction as the change, so the embedded ANN index can catch up by replaying it.
    # (PostgreSQL's pgvector index is maintained by the server.)
    embedding_log = (
        None
        if uses_schemas
        else table(
            "vector",
            "embedding_log",
            # An alias of SQLite's rowid, declared by migration 0002 without NOT NULL (rowids never are NULL).
            Column("seq", Integer, primary_key=True, autoincrement=True, nullable=True),
            Column("embedding_space_id", Integer, nullable=False),
            Column("embedding_id", Integer, nullable=False),
            Column("op", CHAR(1), nullable=False),
            Index("ix_vector_embedding_log_space_seq", "embedding_space_id", "seq"),
            sqlite_autoincrement=True,
        )
    )

    job = table(
        "vector",
        "job",
        Column("job_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("job_type", String(30), nullable=False),
        Column(
            "embedding_space_id",
            Integer,
            ForeignKey(ref("vector", "embedding_space", "embedding_space_id")),
            nullable=True,
        ),
        Column("dedupe_key", String(500), nullable=True, unique=True),
        *queue_columns(),
        CheckConstraint("job_type IN (" + ", ".join(f"'{t}'" for t in JOB_TYPES) + ")", name="job_type"),
    )

    # Migration 0003: facts about this database itself (``store_id``: generated once per database).
    store_info = table(
        "vector",
        "store_info",
        Column("key", String(100), primary_key=True),
        Column("value", Text, nullable=False),
    )

    run_artifact = table(
        "lake",
        "run_artifact",
        Column("artifact_id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(36), ForeignKey(ref("vector", "run", "run_id")), nullable=False),
        Column("artifact_type", String(50), nullable=False),
        Column("uri", Text, nullable=False),
        Column("content_sha256", String(SHA), nullable=False),
        Column("byte_count", BigInteger, nullable=False),
        Column("created_utc", UtcDateTime, nullable=False),
        UniqueConstraint("run_id", "artifact_type"),
    )

    retrieval = table(
        "vector",
        "retrieval",
        Column("retrieval_id", String(36), primary_key=True),
        Column(
            "embedding_space_id",
            Integer,
            ForeignKey(ref("vector", "embedding_space", "embedding_space_id")),
            nullable=False,
        ),
        Column("query_text", Text, nullable=False),
        Column("query_embedding", VectorType(), nullable=True),
        Column("top_k", Integer, nullable=False),
        Column("mode", String(20), nullable=False),
        Column("filters_json", JsonType, nullable=False),
        Column("policy_json", JsonType, nullable=False),
        Column("latency_ms", Float, nullable=True),
        Column("run_id", String(36), ForeignKey(ref("vector", "run", "run_id")), nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        Index(None, "created_utc"),
    )

    retrieval_hit = table(
        "vector",
        "retrieval_hit",
        Column(
            "retrieval_id",
            String(36),
            ForeignKey(ref("vector", "retrieval", "retrieval_id"), ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("rank", Integer, primary_key=True),
        # No foreign key: the query log outlives chunks that a later edit of the source replaces.
        Column("chunk_id", String(SHA), nullable=False),
        Column("score", Float, nullable=False),
        Column("metadata_json", JsonType, nullable=False),
    )

    evidence_bundle = table(
        "llm",
        "evidence_bundle",
        Column("bundle_id", String(36), primary_key=True),
        Column("bundle_type", String(50), nullable=False),
        Column("query_text", Text, nullable=True),
        Column(
            "retrieval_id",
            String(36),
            ForeignKey(ref("vector", "retrieval", "retrieval_id")),
            nullable=True,
        ),
        Column("policy_json", JsonType, nullable=False),
        Column("stats_json", JsonType, nullable=False),
        Column("created_utc", UtcDateTime, nullable=False),
    )

    evidence_item = table(
        "llm",
        "evidence_item",
        Column("item_id", Integer, primary_key=True, autoincrement=True),
        Column(
            "bundle_id",
            String(36),
            ForeignKey(ref("llm", "evidence_bundle", "bundle_id"), ondelete="CASCADE"),
            nullable=False,
        ),
        Column("sequence", Integer, nullable=False),
        Column("evidence_id", String(40), nullable=False),
        Column("content_type", String(50), nullable=False),
        Column("content_text", Text, nullable=False),
        Column("content_ref_json", JsonType, nullable=False),
        Column("metadata_json", JsonType, nullable=False),
        Column("created_utc", UtcDateTime, nullable=False),
        # Migration 0004: the chunk the item was cut from (lineage: an answer built on a replaced chunk is stale).
        Column("chunk_id", String(SHA), nullable=True),
        UniqueConstraint("bundle_id", "sequence"),
        Index(None, "chunk_id"),
    )

    # Migration 0004: the LLM interrogation runtime. ``llm.job`` is a queue table with the same queue columns as
    # ``vector.job`` (one queue implementation serves both).
    llm_job = table(
        "llm",
        "job",
        Column("job_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("interrogation_key", String(100), nullable=False),
        Column("evidence_ref_json", JsonType, nullable=True),
        Column("subject_key", String(1000), nullable=False),
        Column("dedupe_key", String(1000), nullable=True, unique=True),
        *queue_columns(),
        Index(None, "subject_key"),
    )

    llm_run = table(
        "llm",
        "run",
        Column("run_id", String(36), primary_key=True),
        Column("job_id", BigInteger, ForeignKey(ref("llm", "job", "job_id")), nullable=True),
        Column("interrogation_key", String(100), nullable=False),
        Column("interrogation_version", String(50), nullable=False),
        Column("worker_id", String(200), nullable=True),
        Column("status", String(20), nullable=False),
        Column("provider", String(50), nullable=True),
        Column("endpoint_url", Text, nullable=True),
        Column("model_name", String(300), nullable=True),
        Column("model_tag", String(100), nullable=True),
        Column("model_digest", String(100), nullable=True),
        Column("options_json", JsonType, nullable=False),
        Column("metrics_json", JsonType, nullable=False),
        Column("error", Text, nullable=True),
        Column("host", String(200), nullable=True),
        Column("pid", Integer, nullable=True),
        Column("started_utc", UtcDateTime, nullable=False),
        Column("completed_utc", UtcDateTime, nullable=True),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in LLM_RUN_STATUSES) + ")", name="status"),
        Index(None, "job_id"),
        Index(None, "started_utc"),
        Index(None, "status"),
    )

    llm_artifact = table(
        "llm",
        "artifact",
        Column("artifact_id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(36), ForeignKey(ref("llm", "run", "run_id")), nullable=False),
        Column("artifact_type", String(50), nullable=False),
        Column("content_json", JsonType, nullable=True),
        Column("content_ref", Text, nullable=True),
        Column("content_sha256", String(SHA), nullable=False),
        Column("byte_count", BigInteger, nullable=False),
        Column("created_utc", UtcDateTime, nullable=False),
        UniqueConstraint("run_id", "artifact_type"),
        CheckConstraint(
            "artifact_type IN (" + ", ".join(f"'{a}'" for a in LLM_ARTIFACT_TYPES) + ")", name="artifact_type"
        ),
    )

    llm_run_evidence = table(
        "llm",
        "run_evidence",
        Column("run_id", String(36), ForeignKey(ref("llm", "run", "run_id")), primary_key=True),
        Column("bundle_id", String(36), ForeignKey(ref("llm", "evidence_bundle", "bundle_id")), primary_key=True),
        Column("created_utc", UtcDateTime, nullable=False),
    )

    # Migration 0004: a page's primary type, as the latest successful ``page_classification`` answered it.
    source_page = table(
        SEM_SCHEMA,
        "source_page",
        Column(
            "page_id",
            String(SOURCE_ID),
            ForeignKey(ref("vector", "source_registry", "source_id"), ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("title", Text, nullable=True),
        Column("primary_type", String(100), nullable=False),
        Column("confidence", Float, nullable=True),
        Column("content_sha256", String(SHA), nullable=True),
        Column("run_id", String(36), ForeignKey(ref("llm", "run", "run_id")), nullable=False),
        Column("interrogation_version", String(50), nullable=False),
        Column("classified_utc", UtcDateTime, nullable=False),
        Index(None, "primary_type"),
    )

    # Migration 0005: the crawl. ``ingest.work_items`` is a queue table with the inventory's column names; the
    # queue's code reaches them under its own names (see queue_columns) and its states through WorkItemStatus.
    work_items = table(
        "ingest",
        "work_items",
        Column(
            "work_item_id",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
            key="job_id",
        ),
        Column("source_system", String(200), nullable=False),
        Column("source_name", String(200), nullable=False),
        Column("resource_type", String(50), nullable=False),
        Column("resource_id", String(SOURCE_ID), nullable=False),
        Column("variant", String(100), nullable=False, default=""),
        Column("request_uri", Text, nullable=False),
        Column("dedupe_key", String(1000), nullable=True, unique=True),
        Column("depth", Integer, nullable=False, default=0),
        Column("crawl_run_id", String(36), nullable=True),
        *queue_columns(WORK_ITEM_NAMES, status=WorkItemStatus(), statuses=WORK_ITEM_STATUSES),
        UniqueConstraint(
            "source_system",
            "source_name",
            "resource_type",
            "resource_id",
            "variant",
            name="uq_ingest_work_items_identity",
        ),
    )

    crawl_run = table(
        "ingest",
        "crawl_run",
        Column("run_id", String(36), primary_key=True),
        Column("status", String(20), nullable=False),
        Column("config_json", JsonType, nullable=False),
        Column("stats_json", JsonType, nullable=False),
        Column("worker_id", String(200), nullable=True),
        Column("host", String(200), nullable=True),
        Column("pid", Integer, nullable=True),
        Column("error", Text, nullable=True),
        Column("started_utc", UtcDateTime, nullable=False),
        Column("completed_utc", UtcDateTime, nullable=True),
        CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED')", name="status"),
        Index(None, "started_utc"),
    )

    # One row per scope ("*": every source): what every crawler obeys, on every machine.
    crawl_control = table(
        "ingest",
        "crawl_control",
        Column("scope", String(200), primary_key=True),
        Column("state", String(20), nullable=False),
        Column("reason", Text, nullable=True),
        Column("updated_by", String(200), nullable=True),
        Column("updated_utc", UtcDateTime, nullable=False),
        CheckConstraint("state IN ('running', 'paused', 'draining')", name="state"),
    )

    raw_exchange_record = table(
        "lake",
        "raw_exchange_record",
        Column("exchange_id", String(36), primary_key=True),
        Column("exchange_type", String(20), nullable=False),
        Column("natural_key", String(1000), nullable=False),
        Column("payload_json", JsonType, nullable=False),
        Column("content_sha256", String(SHA), nullable=False),
        Column("source_entity", String(200), nullable=True),
        Column("observed_at_utc", UtcDateTime, nullable=False),
        Column("created_at_utc", UtcDateTime, nullable=False),
        UniqueConstraint("exchange_type", "natural_key", "content_sha256", name="uq_lake_raw_exchange_record_version"),
        CheckConstraint("exchange_type IN (" + ", ".join(f"'{t}'" for t in EXCHANGE_TYPES) + ")", name="exchange_type"),
        Index(None, "exchange_type", "natural_key"),
    )

    return Tables(
        metadata=metadata,
        uses_schemas=uses_schemas,
        ingest_records=ingest_records,
        embedding_space=embedding_space,
        source_registry=source_registry,
        chunk=chunk,
        embedding=embedding,
        embedding_log=embedding_log,
        job=job,
        run=run,
        store_info=store_info,
        run_artifact=run_artifact,
        retrieval=retrieval,
        retrieval_hit=retrieval_hit,
        evidence_bundle=evidence_bundle,
        evidence_item=evidence_item,
        llm_job=llm_job,
        llm_run=llm_run,
        llm_artifact=llm_artifact,
        llm_run_evidence=llm_run_evidence,
        source_page=source_page,
        work_items=work_items,
        crawl_run=crawl_run,
        crawl_control=crawl_control,
        raw_exchange_record=raw_exchange_record,
    )


SQLITE_TABLES = build_tables(uses_schemas=False)
POSTGRES_TABLES = build_tables(uses_schemas=True)


def tables_for(dialect_name: str) -> Tables:
    return POSTGRES_TABLES if dialect_name == "postgresql" else SQLITE_TABLES
