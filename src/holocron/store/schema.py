"""The tables of the ``ingest``, ``vector``, ``llm`` and ``lake`` schemas.

PostgreSQL keeps the four schemas as real schemas (``vector.job``). SQLite has none, so each table is named
``<schema>_<table>`` there (``vector_job``), which can never collide with a later ``llm_job``. The tables are
built once per flavour by :func:`build_tables`; the store picks the flavour from the engine's dialect.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
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

from holocron.store.types import JsonType, UtcDateTime, VectorType

SCHEMAS = ("ingest", "vector", "llm", "lake")

JOB_TYPES = ("CHUNK_SOURCE", "EMBED_CHUNKS", "REEMBED_SPACE", "RETRIEVE_TEST", "DRIFT_TEST")
JOB_STATUSES = ("NEW", "RUNNING", "SUCCEEDED", "FAILED", "DEADLETTER", "CANCELLED")
SOURCE_STATUSES = ("pending", "indexed", "error")


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
    job: Table
    run: Table
    run_artifact: Table
    retrieval: Table
    retrieval_hit: Table
    evidence_bundle: Table
    evidence_item: Table

    def qualified(self, table: Table) -> str:
        """The name to use in hand-written SQL (FTS triggers, pgvector indexes)."""
        return f"{table.schema}.{table.name}" if table.schema else table.name


def build_tables(uses_schemas: bool) -> Tables:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)  # type: ignore[arg-type]

    def ref(schema: str, table: str, column: str) -> str:
        return column_ref(uses_schemas, schema, table, column)

    def table(schema: str, table_name: str, *items: object) -> Table:
        name, schema_or_none = table_name_for(uses_schemas, schema, table_name)
        return Table(name, metadata, *items, schema=schema_or_none)  # type: ignore[arg-type]

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
        CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED')", name="status"),
        Index(None, "job_id"),
        Index(None, "started_utc"),
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
        Column("policy_version", String(100), nullable=False),
        Column("policy_json", JsonType, nullable=False),
        Column("run_id", String(36), ForeignKey(ref("vector", "run", "run_id")), nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        Index(None, "source_id", "chunk_index"),
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

    job = table(
        "vector",
        "job",
        Column("job_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("job_type", String(30), nullable=False),
        Column("status", String(20), nullable=False),
        Column("priority", Integer, nullable=False, default=0),
        Column("input_json", JsonType, nullable=False),
        Column(
            "embedding_space_id",
            Integer,
            ForeignKey(ref("vector", "embedding_space", "embedding_space_id")),
            nullable=True,
        ),
        Column("dedupe_key", String(500), nullable=True, unique=True),
        Column("max_attempts", Integer, nullable=False),
        Column("attempt_count", Integer, nullable=False, default=0),
        Column("locked_by", String(200), nullable=True),
        Column("locked_utc", UtcDateTime, nullable=True),
        Column("lease_expires_utc", UtcDateTime, nullable=True),
        Column("available_utc", UtcDateTime, nullable=False),
        Column("last_error", Text, nullable=True),
        Column("result_json", JsonType, nullable=True),
        Column("created_utc", UtcDateTime, nullable=False),
        Column("updated_utc", UtcDateTime, nullable=False),
        Column("completed_utc", UtcDateTime, nullable=True),
        CheckConstraint("job_type IN (" + ", ".join(f"'{t}'" for t in JOB_TYPES) + ")", name="job_type"),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in JOB_STATUSES) + ")", name="status"),
        Index(None, "status", "priority", "available_utc"),
        Index(None, "status", "lease_expires_utc"),
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
        UniqueConstraint("bundle_id", "sequence"),
    )

    return Tables(
        metadata=metadata,
        uses_schemas=uses_schemas,
        ingest_records=ingest_records,
        embedding_space=embedding_space,
        source_registry=source_registry,
        chunk=chunk,
        embedding=embedding,
        job=job,
        run=run,
        run_artifact=run_artifact,
        retrieval=retrieval,
        retrieval_hit=retrieval_hit,
        evidence_bundle=evidence_bundle,
        evidence_item=evidence_item,
    )


SQLITE_TABLES = build_tables(uses_schemas=False)
POSTGRES_TABLES = build_tables(uses_schemas=True)


def tables_for(dialect_name: str) -> Tables:
    return POSTGRES_TABLES if dialect_name == "postgresql" else SQLITE_TABLES
