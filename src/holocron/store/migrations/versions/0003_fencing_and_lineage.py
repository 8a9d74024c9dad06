"""Fencing tokens for job claims, leases for runs, and the store's identity.

* ``vector.job.claim_token``: a fresh token per claim; every owner-only write (heartbeat, succeed, fail,
  release) matches on it, so two processes sharing a ``--worker-id`` cannot act on each other's claims.
* ``vector.run.host`` / ``pid`` / ``lease_expires_utc``: a running run renews its lease; a run whose lease
  ran out (its process died) is closed as FAILED by whoever looks next.
* ``vector.store_info``: key/value facts about this database; ``store_id`` is a random id generated here,
  once per database, which the embedded ANN index files carry to prove they belong to it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from holocron.store.schema import table_name_for
from holocron.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _name(schema: str, table: str) -> tuple[str, str | None]:
    return table_name_for(op.get_bind().dialect.name == "postgresql", schema, table)


def upgrade() -> None:
    job, job_schema = _name("vector", "job")
    op.add_column(job, sa.Column("claim_token", sa.String(36), nullable=True), schema=job_schema)
    run, run_schema = _name("vector", "run")
    op.add_column(run, sa.Column("host", sa.String(200), nullable=True), schema=run_schema)
    op.add_column(run, sa.Column("pid", sa.Integer(), nullable=True), schema=run_schema)
    op.add_column(run, sa.Column("lease_expires_utc", UtcDateTime(), nullable=True), schema=run_schema)
    op.create_index(
        "ix_vector_run_status_lease_expires_utc",
        run,
        ["status", "lease_expires_utc"],
        schema=run_schema,
    )
    info, info_schema = _name("vector", "store_info")
    store_info = op.create_table(
        info,
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_vector_store_info"),
        schema=info_schema,
    )
    op.bulk_insert(store_info, [{"key": "store_id", "value": str(uuid.uuid4())}])


def downgrade() -> None:
    info, info_schema = _name("vector", "store_info")
    op.drop_table(info, schema=info_schema)
    run, run_schema = _name("vector", "run")
    op.drop_index("ix_vector_run_status_lease_expires_utc", table_name=run, schema=run_schema)
    for column in ("lease_expires_utc", "pid", "host"):
        op.drop_column(run, column, schema=run_schema)
    job, job_schema = _name("vector", "job")
    op.drop_column(job, "claim_token", schema=job_schema)
