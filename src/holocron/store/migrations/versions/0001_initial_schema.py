"""Initial schema: ingest records, the vector schema, llm evidence and lake artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from holocron.store.schema import SCHEMAS, column_ref, table_name_for
from holocron.store.types import JsonType, UtcDateTime, VectorType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _uses_schemas() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _ref(dotted: str) -> str:
    schema, table, column = dotted.split(".")
    return column_ref(_uses_schemas(), schema, table, column)


def _create_table(schema: str, table: str, *items: Any) -> None:
    name, schema_or_none = table_name_for(_uses_schemas(), schema, table)
    op.create_table(name, *items, schema=schema_or_none)


def _create_index(index_name: str, schema: str, table: str, columns: list[str]) -> None:
    name, schema_or_none = table_name_for(_uses_schemas(), schema, table)
    op.create_index(index_name, name, columns, unique=False, schema=schema_or_none)


def upgrade() -> None:
    if _uses_schemas():
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        for schema in SCHEMAS:
            op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    _create_table(
        "ingest",
        "ingest_records",
        sa.Column("ingest_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_system", sa.String(length=200), nullable=False),
        sa.Column("resource_id", sa.String(length=512), nullable=False),
        sa.Column("request_uri", sa.Text(), nullable=False),
        sa.Column("request_method", sa.String(length=10), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("content_length", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("response_headers", JsonType, nullable=True),
        sa.Column("hash_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("fetched_at_utc", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ingest_id", name=op.f("pk_ingest_ingest_records")),
        sa.UniqueConstraint(
            "source_system",
            "resource_id",
            "hash_sha256",
            name=op.f("uq_ingest_ingest_records_source_system_resource_id_hash_sha256"),
        ),
    )
    _create_table(
        "vector",
        "embedding_space",
        sa.Column("embedding_space_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("model_name", sa.String(length=300), nullable=False),
        sa.Column("model_tag", sa.String(length=100), nullable=False),
        sa.Column("model_digest", sa.String(length=100), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("normalize_flag", sa.Boolean(), nullable=False),
        sa.Column("distance_metric", sa.String(length=20), nullable=False),
        sa.Column("max_input_tokens", sa.Integer(), nullable=True),
        sa.Column("preprocess_policy_json", JsonType, nullable=False),
        sa.Column("endpoint_url", sa.Text(), nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.CheckConstraint("distance_metric IN ('cosine', 'ip', 'l2')", name=op.f("ck_vector_embedding_space_metric")),
        sa.CheckConstraint("dimensions > 0", name=op.f("ck_vector_embedding_space_dimensions_positive")),
        sa.PrimaryKeyConstraint("embedding_space_id", name=op.f("pk_vector_embedding_space")),
        sa.UniqueConstraint("name", name=op.f("uq_vector_embedding_space_name")),
        sa.UniqueConstraint(
            "provider",
            "model_name",
            "model_tag",
            "model_digest",
            "dimensions",
            name=op.f("uq_vector_embedding_space_provider_model_name_model_tag_model_digest_dimensions"),
        ),
    )
    _create_table(
        "vector",
        "job",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("input_json", JsonType, nullable=False),
        sa.Column("embedding_space_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=500), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_utc", UtcDateTime(), nullable=True),
        sa.Column("lease_expires_utc", UtcDateTime(), nullable=True),
        sa.Column("available_utc", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_json", JsonType, nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.Column("updated_utc", UtcDateTime(), nullable=False),
        sa.Column("completed_utc", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "job_type IN ('CHUNK_SOURCE', 'EMBED_CHUNKS', 'REEMBED_SPACE', 'RETRIEVE_TEST', 'DRIFT_TEST')",
            name=op.f("ck_vector_job_job_type"),
        ),
        sa.CheckConstraint(
            "status IN ('NEW', 'RUNNING', 'SUCCEEDED', 'FAILED', 'DEADLETTER', 'CANCELLED')",
            name=op.f("ck_vector_job_status"),
        ),
        sa.ForeignKeyConstraint(
            ["embedding_space_id"],
            [_ref("vector.embedding_space.embedding_space_id")],
            name=op.f("fk_vector_job_embedding_space_id"),
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_vector_job")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_vector_job_dedupe_key")),
    )
    _create_table(
        "vector",
        "source_registry",
        sa.Column("source_id", sa.String(length=512), nullable=False),
        sa.Column("source_type", sa.String(length=50), nullable=False),
        sa.Column("source_system", sa.String(length=200), nullable=False),
        sa.Column("source_ref_json", JsonType, nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("ingest_id", sa.Integer(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("indexed_content_sha256", sa.String(length=64), nullable=True),
        sa.Column("chunk_policy_version", sa.String(length=100), nullable=True),
        sa.Column("last_indexed_utc", UtcDateTime(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("chunks_dropped", sa.Integer(), nullable=False),
        sa.Column("tags_json", JsonType, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source_date_utc", UtcDateTime(), nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.Column("updated_utc", UtcDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'indexed', 'error')", name=op.f("ck_vector_source_registry_status")),
        sa.ForeignKeyConstraint(
            ["ingest_id"],
            [_ref("ingest.ingest_records.ingest_id")],
            name=op.f("fk_vector_source_registry_ingest_id"),
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_vector_source_registry")),
    )
    _create_table(
        "vector",
        "run",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("run_type", sa.String(length=50), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("embedding_space_id", sa.Integer(), nullable=True),
        sa.Column("endpoint_url", sa.Text(), nullable=True),
        sa.Column("model_name", sa.String(length=300), nullable=True),
        sa.Column("model_tag", sa.String(length=100), nullable=True),
        sa.Column("model_digest", sa.String(length=100), nullable=True),
        sa.Column("options_json", JsonType, nullable=False),
        sa.Column("metrics_json", JsonType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_utc", UtcDateTime(), nullable=False),
        sa.Column("completed_utc", UtcDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED')", name=op.f("ck_vector_run_status")),
        sa.ForeignKeyConstraint(
            ["embedding_space_id"],
            [_ref("vector.embedding_space.embedding_space_id")],
            name=op.f("fk_vector_run_embedding_space_id"),
        ),
        sa.ForeignKeyConstraint(["job_id"], [_ref("vector.job.job_id")], name=op.f("fk_vector_run_job_id")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_vector_run")),
    )
    _create_table(
        "lake",
        "run_artifact",
        sa.Column("artifact_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("artifact_type", sa.String(length=50), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("byte_count", sa.BigInteger(), nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], [_ref("vector.run.run_id")], name=op.f("fk_lake_run_artifact_run_id")),
        sa.PrimaryKeyConstraint("artifact_id", name=op.f("pk_lake_run_artifact")),
        sa.UniqueConstraint("run_id", "artifact_type", name=op.f("uq_lake_run_artifact_run_id_artifact_type")),
    )
    _create_table(
        "vector",
        "chunk",
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=512), nullable=False),
        sa.Column("source_type", sa.String(length=50), nullable=False),
        sa.Column("source_ref_json", JsonType, nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("byte_count", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("policy_json", JsonType, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], [_ref("vector.run.run_id")], name=op.f("fk_vector_chunk_run_id")),
        sa.ForeignKeyConstraint(
            ["source_id"],
            [_ref("vector.source_registry.source_id")],
            name=op.f("fk_vector_chunk_source_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_vector_chunk")),
    )
    _create_table(
        "vector",
        "retrieval",
        sa.Column("retrieval_id", sa.String(length=36), nullable=False),
        sa.Column("embedding_space_id", sa.Integer(), nullable=False),
        sa.Column("query_text", sa.Text(), nullable=False),
        sa.Column("query_embedding", VectorType(), nullable=True),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("filters_json", JsonType, nullable=False),
        sa.Column("policy_json", JsonType, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["embedding_space_id"],
            [_ref("vector.embedding_space.embedding_space_id")],
            name=op.f("fk_vector_retrieval_embedding_space_id"),
        ),
        sa.ForeignKeyConstraint(["run_id"], [_ref("vector.run.run_id")], name=op.f("fk_vector_retrieval_run_id")),
        sa.PrimaryKeyConstraint("retrieval_id", name=op.f("pk_vector_retrieval")),
    )
    _create_table(
        "llm",
        "evidence_bundle",
        sa.Column("bundle_id", sa.String(length=36), nullable=False),
        sa.Column("bundle_type", sa.String(length=50), nullable=False),
        sa.Column("query_text", sa.Text(), nullable=True),
        sa.Column("retrieval_id", sa.String(length=36), nullable=True),
        sa.Column("policy_json", JsonType, nullable=False),
        sa.Column("stats_json", JsonType, nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["retrieval_id"],
            [_ref("vector.retrieval.retrieval_id")],
            name=op.f("fk_llm_evidence_bundle_retrieval_id"),
        ),
        sa.PrimaryKeyConstraint("bundle_id", name=op.f("pk_llm_evidence_bundle")),
    )
    _create_table(
        "vector",
        "embedding",
        sa.Column(
            "embedding_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("embedding_space_id", sa.Integer(), nullable=False),
        sa.Column("input_content_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("vector", VectorType(), nullable=False),
        sa.Column("vector_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            [_ref("vector.chunk.chunk_id")],
            name=op.f("fk_vector_embedding_chunk_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["embedding_space_id"],
            [_ref("vector.embedding_space.embedding_space_id")],
            name=op.f("fk_vector_embedding_embedding_space_id"),
        ),
        sa.ForeignKeyConstraint(["run_id"], [_ref("vector.run.run_id")], name=op.f("fk_vector_embedding_run_id")),
        sa.PrimaryKeyConstraint("embedding_id", name=op.f("pk_vector_embedding")),
        sa.UniqueConstraint(
            "chunk_id",
            "embedding_space_id",
            "input_content_sha256",
            name=op.f("uq_vector_embedding_chunk_id_embedding_space_id_input_content_sha256"),
        ),
    )
    _create_table(
        "vector",
        "retrieval_hit",
        sa.Column("retrieval_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("metadata_json", JsonType, nullable=False),
        sa.ForeignKeyConstraint(
            ["retrieval_id"],
            [_ref("vector.retrieval.retrieval_id")],
            name=op.f("fk_vector_retrieval_hit_retrieval_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("retrieval_id", "rank", name=op.f("pk_vector_retrieval_hit")),
    )
    _create_table(
        "llm",
        "evidence_item",
        sa.Column("item_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bundle_id", sa.String(length=36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("content_text", sa.Text(), nullable=False),
        sa.Column("content_ref_json", JsonType, nullable=False),
        sa.Column("metadata_json", JsonType, nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"],
            [_ref("llm.evidence_bundle.bundle_id")],
            name=op.f("fk_llm_evidence_item_bundle_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_llm_evidence_item")),
        sa.UniqueConstraint("bundle_id", "sequence", name=op.f("uq_llm_evidence_item_bundle_id_sequence")),
    )
    _create_index(op.f("ix_ingest_ingest_records_fetched_at_utc"), "ingest", "ingest_records", ["fetched_at_utc"])
    _create_index(
        op.f("ix_ingest_ingest_records_source_system_resource_id"),
        "ingest",
        "ingest_records",
        ["source_system", "resource_id"],
    )
    _create_index(op.f("ix_vector_job_status_lease_expires_utc"), "vector", "job", ["status", "lease_expires_utc"])
    _create_index(
        op.f("ix_vector_job_status_priority_available_utc"),
        "vector",
        "job",
        ["status", "priority", "available_utc"],
    )
    _create_index(op.f("ix_vector_source_registry_source_type"), "vector", "source_registry", ["source_type"])
    _create_index(op.f("ix_vector_source_registry_status"), "vector", "source_registry", ["status"])
    _create_index(op.f("ix_vector_run_job_id"), "vector", "run", ["job_id"])
    _create_index(op.f("ix_vector_run_started_utc"), "vector", "run", ["started_utc"])
    _create_index(op.f("ix_vector_chunk_source_id_chunk_index"), "vector", "chunk", ["source_id", "chunk_index"])
    _create_index(op.f("ix_vector_retrieval_created_utc"), "vector", "retrieval", ["created_utc"])
    _create_index(
        op.f("ix_vector_embedding_embedding_space_id_embedding_id"),
        "vector",
        "embedding",
        ["embedding_space_id", "embedding_id"],
    )


_TABLES_NEWEST_FIRST = (
    ("llm", "evidence_item"),
    ("vector", "retrieval_hit"),
    ("vector", "embedding"),
    ("llm", "evidence_bundle"),
    ("vector", "retrieval"),
    ("vector", "chunk"),
    ("lake", "run_artifact"),
    ("vector", "run"),
    ("vector", "source_registry"),
    ("vector", "job"),
    ("vector", "embedding_space"),
    ("ingest", "ingest_records"),
)


def downgrade() -> None:
    for schema, table in _TABLES_NEWEST_FIRST:
        name, schema_or_none = table_name_for(_uses_schemas(), schema, table)
        op.drop_table(name, schema=schema_or_none)
