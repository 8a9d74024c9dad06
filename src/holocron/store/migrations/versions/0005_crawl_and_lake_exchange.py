"""The crawl and the lake exchange.

* ``ingest.work_items``: the crawl's queue, with the inventory's columns (``attempt``, ``claimed_by``,
  ``claimed_at``, ``lease_expires_at``; states ``pending|claimed|completed|failed``) and the columns the one
  queue implementation adds everywhere (availability, fencing token, times, input and result); unique on the
  five identity columns.
* ``ingest.ingest_records``: the rest of the audit trail (request headers, request and response times,
  duration, error, work item).
* ``ingest.crawl_run``: one crawl invocation, for lineage (``ingest_records.run_id``, ``work_items.crawl_run_id``).
* ``ingest.crawl_control``: pause, resume and drain, as every machine's crawlers read them.
* ``lake.raw_exchange_record``: snapshots exchanged between installations, by natural key and content hash.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from holocron.store.migrations import ops
from holocron.store.schema import WORK_ITEM_STATUSES
from holocron.store.types import JsonType, UtcDateTime
from holocron.vocabulary import EXCHANGE_TYPES

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _audit_columns() -> tuple[sa.Column[Any], ...]:
    return (
        sa.Column("request_headers", JsonType, nullable=True),
        sa.Column("requested_at_utc", UtcDateTime(), nullable=True),
        sa.Column("responded_at_utc", UtcDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("work_item_id", sa.BigInteger(), nullable=True),
    )


def upgrade() -> None:
    records, records_schema = ops.name("ingest", "ingest_records")
    for column in _audit_columns():
        op.add_column(records, column, schema=records_schema)

    ops.create_table(
        "ingest",
        "work_items",
        sa.Column(
            "work_item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source_system", sa.String(length=200), nullable=False),
        sa.Column("source_name", sa.String(length=200), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=False),
        sa.Column("resource_id", sa.String(length=512), nullable=False),
        sa.Column("variant", sa.String(length=100), nullable=False),
        sa.Column("request_uri", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=1000), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("crawl_run_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("input_json", JsonType, nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("available_utc", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result_json", JsonType, nullable=True),
        sa.Column("created_utc", UtcDateTime(), nullable=False),
        sa.Column("updated_utc", UtcDateTime(), nullable=False),
        sa.Column("completed_utc", UtcDateTime(), nullable=True),
        sa.Column("claim_token", sa.String(length=36), nullable=True),
        sa.CheckConstraint(f"status IN ({ops.sql_in(WORK_ITEM_STATUSES)})", name=op.f("ck_ingest_work_items_status")),
        sa.PrimaryKeyConstraint("work_item_id", name=op.f("pk_ingest_work_items")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_ingest_work_items_dedupe_key")),
        sa.UniqueConstraint(
            "source_system",
            "source_name",
            "resource_type",
            "resource_id",
            "variant",
            name="uq_ingest_work_items_identity",
        ),
    )
    ops.create_index(
        op.f("ix_ingest_work_items_status_priority_available_utc"),
        "ingest",
        "work_items",
        ["status", "priority", "available_utc"],
    )
    ops.create_index(
        op.f("ix_ingest_work_items_status_lease_expires_at"), "ingest", "work_items", ["status", "lease_expires_at"]
    )

    ops.create_table(
        "ingest",
        "crawl_run",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("config_json", JsonType, nullable=False),
        sa.Column("stats_json", JsonType, nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("host", sa.String(length=200), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_utc", UtcDateTime(), nullable=False),
        sa.Column("completed_utc", UtcDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('RUNNING', 'SUCCEEDED', 'FAILED')", name=op.f("ck_ingest_crawl_run_status")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ingest_crawl_run")),
    )
    ops.create_index(op.f("ix_ingest_crawl_run_started_utc"), "ingest", "crawl_run", ["started_utc"])

    ops.create_table(
        "ingest",
        "crawl_control",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.Column("updated_utc", UtcDateTime(), nullable=False),
        sa.CheckConstraint("state IN ('running', 'paused', 'draining')", name=op.f("ck_ingest_crawl_control_state")),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_ingest_crawl_control")),
    )

    ops.create_table(
        "lake",
        "raw_exchange_record",
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("exchange_type", sa.String(length=20), nullable=False),
        sa.Column("natural_key", sa.String(length=1000), nullable=False),
        sa.Column("payload_json", JsonType, nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("source_entity", sa.String(length=200), nullable=True),
        sa.Column("observed_at_utc", UtcDateTime(), nullable=False),
        sa.Column("created_at_utc", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            f"exchange_type IN ({ops.sql_in(EXCHANGE_TYPES)})", name=op.f("ck_lake_raw_exchange_record_exchange_type")
        ),
        sa.PrimaryKeyConstraint("exchange_id", name=op.f("pk_lake_raw_exchange_record")),
        sa.UniqueConstraint(
            "exchange_type",
            "natural_key",
            "content_sha256",
            name="uq_lake_raw_exchange_record_version",
        ),
    )
    ops.create_index(
        op.f("ix_lake_raw_exchange_record_exchange_type_natural_key"),
        "lake",
        "raw_exchange_record",
        ["exchange_type", "natural_key"],
    )


def downgrade() -> None:
    for schema, table in (
        ("lake", "raw_exchange_record"),
        ("ingest", "crawl_control"),
        ("ingest", "crawl_run"),
        ("ingest", "work_items"),
    ):
        ops.drop_table(schema, table)
    records, records_schema = ops.name("ingest", "ingest_records")
    with op.batch_alter_table(records, schema=records_schema) as batch:
        for column in reversed(_audit_columns()):
            batch.drop_column(column.name)
