"""A chunk's contextual header.

``vector.chunk.context`` holds the text a structure-aware policy puts before the chunk's content when it is
embedded (its heading path, "Title › Section › Subsection"); null when the content is embedded alone, as every
window-policy chunk is. The content stays the exact slice of the source text that the offsets name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from holocron.store.migrations import ops

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    chunk, chunk_schema = ops.name("vector", "chunk")
    op.add_column(chunk, sa.Column("context", sa.Text(), nullable=True), schema=chunk_schema)


def downgrade() -> None:
    chunk, chunk_schema = ops.name("vector", "chunk")
    with op.batch_alter_table(chunk, schema=chunk_schema) as batch:
        batch.drop_column("context")
