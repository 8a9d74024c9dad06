"""The LLM interrogation runtime: its queue, runs, artifacts, run-evidence links, and classified pages.

* ``llm.job``: a queue table with the queue columns of ``vector.job`` (one queue implementation serves
  both), keyed by ``interrogation_key``; ``subject_key`` names what the job asks about (an interrogation
  of one source, or of one query), so that the current answer about a subject can be found and refreshed.
* ``llm.run``: one attempt of a job: the worker, the model (name, tag, digest), options, metrics, error.
* ``llm.artifact``: request, response, evidence, prompt, parsed output, raw answer, and the error
  artifacts of a failed attempt; the content is in ``content_json`` and mirrored to the lake file named by
  ``content_ref``, with its sha256.
* ``llm.run_evidence``: the bundles a run was given; ``llm.evidence_item.chunk_id`` carries each item's
  chunk, so an answer is traced back to the chunks it rests on (and found stale when they are replaced).
* ``sem.source_page``: a page's primary type, written by ``page_classification``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from holocron.store.schema import LLM_ARTIFACT_TYPES, LLM_RUN_STATUSES, SEM_SCHEMA, column_ref, table_name_for
from holocron.store.types import JsonType, UtcDateTime
from holocron.vocabulary import JOB_STATUSES

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _uses_schemas() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _name(schema: str, table: str) -> tuple[str, str | None]:
    return table_name_for(_uses_schemas(), schema, table)


def _ref(dotted: str) -> str:
    schema, table, column = dotted.split(".")
    return column_ref(_uses_schemas(), schema, table, column)


def _create_table(schema: str, table: str, *items: Any) -> None:
    name, schema_or_none = _name(schema, table)
    op.create_table(name, *items, schema=schema_or_none)


def _create_index(index_name: str, schema: str, table: str, columns: list[str]) -> None:
    name, schema_or_none = _name(schema, table)
    op.create_index(index_name, name, columns, unique=False, schema=schema_or_none)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def upgrade() -> None:
    if _uses_schemas():
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SEM_SCHEMA}")
    item, item_schema = _name("llm", "evidence_item")
    op.add_column(item, sa.Column("chunk_id", sa.String(length=64), nullable=True), schema=item_schema)
    _create_index(op.f("ix_llm_evidence_item_chunk_id"), "llm", "evidence_item", ["chunk_id"])

    _create_table(
        "llm",
        "job",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("interrogation_key", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("input_json", JsonType, nullable=False),
        sa.Column("evidence_ref_json", JsonType, nullable=True),
        sa.Column("subject_key", sa.String(length=1000), nullable=False),
        sa.Column("dedupe_key", sa.String(length=1000), nullable=True),
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
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.CheckConstraint(f"status IN ({_in(JOB_STATUSES)})", name=op.f("ck_llm_job_status")),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_llm_job")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_llm_job_dedupe_key")),
    )
    _create_index(
        op.f("ix_llm_job_status_priority_available_utc"), "llm", "job", ["status", "priority", "available_utc"]
    )
    _create_index(op.f("ix_llm_job_status_lease_expires_utc"), "llm", "job", ["status", "lease_expires_utc"])
    _create_index(op.f("ix_llm_job_subject_key"), "llm", "job", ["subject_key"])

    _create_table(
        "llm",
        "run",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("interrogation_key", sa.String(length=100), nullable=False),
        sa.Column("interrogation_version", sa.String(length=50), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=True),
        sa.Column("endpoint_url", sa.Text(), nullable=True),
        sa.Column("model_name", sa.String(length=300), nullable=True),
        sa.Column("model_tag", sa.String(length=100), nullable=True),
        sa.Column("model_digest", sa.String(length=100), nullable=True),
        sa.Column("options_json", JsonType, nullable=False),
        sa.Column("metrics_json", JsonType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=200), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_utc", UtcDateTime(), nullable=False),
        sa.Column("completed_utc", UtcDateTime(), nullable=True),
        sa.CheckConstraint(f"status IN ({_in(LLM_RUN_STATUSES)})", name=op.f("ck_llm_run_status")),
        sa.ForeignKeyConstraint(["job_id"], [_ref("llm.job.job_id")], name=op.f("fk_llm_run_job_id")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_llm_run")),
    )
    _create_index(op.f("ix_llm_run_job_id"), "llm", "run", ["job_id"])
    _create_index(op.f("ix_llm_run_started_utc"), "llm", "run", ["started_utc"])
    _create_index(op.f("ix_llm_run_status"), "llm", "run", ["status"])

    _create_table(
        "llm",
        "artifact",
        sa.Column("artifact_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("artifact_type", sa.String(length=50), nullable=False),
        sa.Column("content_json", JsonType, nullable=True),
        sa.Column("content_ref", sa.Text(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("byte_count", sa.BigInteger(), nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.CheckConstraint(f"artifact_type IN ({_in(LLM_ARTIFACT_TYPES)})", name=op.f("ck_llm_artifact_artifact_type")),
        sa.ForeignKeyConstraint(["run_id"], [_ref("llm.run.run_id")], name=op.f("fk_llm_artifact_run_id")),
        sa.PrimaryKeyConstraint("artifact_id", name=op.f("pk_llm_artifact")),
        sa.UniqueConstraint("run_id", "artifact_type", name=op.f("uq_llm_artifact_run_id_artifact_type")),
    )

    _create_table(
        "llm",
        "run_evidence",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("bundle_id", sa.String(length=36), nullable=False),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], [_ref("llm.run.run_id")], name=op.f("fk_llm_run_evidence_run_id")),
        sa.ForeignKeyConstraint(
            ["bundle_id"], [_ref("llm.evidence_bundle.bundle_id")], name=op.f("fk_llm_run_evidence_bundle_id")
        ),
        sa.PrimaryKeyConstraint("run_id", "bundle_id", name=op.f("pk_llm_run_evidence")),
    )

    _create_table(
        SEM_SCHEMA,
        "source_page",
        sa.Column("page_id", sa.String(length=512), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("primary_type", sa.String(length=100), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("interrogation_version", sa.String(length=50), nullable=False),
        sa.Column("classified_utc", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"],
            [_ref("vector.source_registry.source_id")],
            name=op.f("fk_sem_source_page_page_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["run_id"], [_ref("llm.run.run_id")], name=op.f("fk_sem_source_page_run_id")),
        sa.PrimaryKeyConstraint("page_id", name=op.f("pk_sem_source_page")),
    )
    _create_index(op.f("ix_sem_source_page_primary_type"), SEM_SCHEMA, "source_page", ["primary_type"])


def downgrade() -> None:
    for schema, table in (
        (SEM_SCHEMA, "source_page"),
        ("llm", "run_evidence"),
        ("llm", "artifact"),
        ("llm", "run"),
        ("llm", "job"),
    ):
        name, schema_or_none = _name(schema, table)
        op.drop_table(name, schema=schema_or_none)
    item, item_schema = _name("llm", "evidence_item")
    op.drop_index(op.f("ix_llm_evidence_item_chunk_id"), table_name=item, schema=item_schema)
    with op.batch_alter_table(item, schema=item_schema) as batch:
        batch.drop_column("chunk_id")
    if _uses_schemas():
        op.execute(f"DROP SCHEMA IF EXISTS {SEM_SCHEMA}")
