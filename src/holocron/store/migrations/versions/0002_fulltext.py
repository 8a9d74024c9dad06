"""Full-text search over chunk text, and the embedding change log that keeps ANN index files in step.

SQLite: a contentless FTS5 table ``vector_chunk_fts`` keyed by ``vector_chunk_fts_key`` (an INTEGER PRIMARY
KEY per chunk, which unlike the chunk table's implicit rowid survives VACUUM), kept in sync by triggers on
``vector_chunk``; and ``vector_embedding_log``, one row per embedding added or removed, written by triggers in
the same transaction as the embedding itself, so an index file that missed a change can always replay it.
PostgreSQL: a generated ``tsvector`` column on ``vector.chunk`` with a GIN index (pgvector's index lives in the
database, so no log is needed there).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The porter stemmer over unicode61: "running" finds "run", accents fold away.
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

_SQLITE_UP = [
    """CREATE TABLE vector_chunk_fts_key (
        fts_key INTEGER PRIMARY KEY AUTOINCREMENT,
        chunk_id VARCHAR(64) NOT NULL UNIQUE
    )""",
    f"CREATE VIRTUAL TABLE vector_chunk_fts USING fts5(content, content='', tokenize='{FTS_TOKENIZER}')",
    """CREATE TRIGGER vector_chunk_fts_ai AFTER INSERT ON vector_chunk BEGIN
        INSERT INTO vector_chunk_fts_key (chunk_id) VALUES (new.chunk_id);
        INSERT INTO vector_chunk_fts (rowid, content)
            SELECT fts_key, new.content FROM vector_chunk_fts_key WHERE chunk_id = new.chunk_id;
    END""",
    """CREATE TRIGGER vector_chunk_fts_ad AFTER DELETE ON vector_chunk BEGIN
        INSERT INTO vector_chunk_fts (vector_chunk_fts, rowid, content)
            SELECT 'delete', fts_key, old.content FROM vector_chunk_fts_key WHERE chunk_id = old.chunk_id;
        DELETE FROM vector_chunk_fts_key WHERE chunk_id = old.chunk_id;
    END""",
    """CREATE TRIGGER vector_chunk_fts_au AFTER UPDATE OF content ON vector_chunk BEGIN
        INSERT INTO vector_chunk_fts (vector_chunk_fts, rowid, content)
            SELECT 'delete', fts_key, old.content FROM vector_chunk_fts_key WHERE chunk_id = old.chunk_id;
        INSERT INTO vector_chunk_fts (rowid, content)
            SELECT fts_key, new.content FROM vector_chunk_fts_key WHERE chunk_id = new.chunk_id;
    END""",
    # Chunks that existed before this migration.
    "INSERT INTO vector_chunk_fts_key (chunk_id) SELECT chunk_id FROM vector_chunk ORDER BY chunk_id",
    """INSERT INTO vector_chunk_fts (rowid, content)
        SELECT k.fts_key, c.content FROM vector_chunk_fts_key k JOIN vector_chunk c ON c.chunk_id = k.chunk_id""",
    """CREATE TABLE vector_embedding_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        embedding_space_id INTEGER NOT NULL,
        embedding_id INTEGER NOT NULL,
        op CHAR(1) NOT NULL
    )""",
    "CREATE INDEX ix_vector_embedding_log_space_seq ON vector_embedding_log (embedding_space_id, seq)",
    """CREATE TRIGGER vector_embedding_log_ai AFTER INSERT ON vector_embedding BEGIN
        INSERT INTO vector_embedding_log (embedding_space_id, embedding_id, op)
            VALUES (new.embedding_space_id, new.embedding_id, 'A');
    END""",
    """CREATE TRIGGER vector_embedding_log_ad AFTER DELETE ON vector_embedding BEGIN
        INSERT INTO vector_embedding_log (embedding_space_id, embedding_id, op)
            VALUES (old.embedding_space_id, old.embedding_id, 'D');
    END""",
    """CREATE TRIGGER vector_embedding_log_au AFTER UPDATE ON vector_embedding BEGIN
        INSERT INTO vector_embedding_log (embedding_space_id, embedding_id, op)
            VALUES (old.embedding_space_id, old.embedding_id, 'D');
        INSERT INTO vector_embedding_log (embedding_space_id, embedding_id, op)
            VALUES (new.embedding_space_id, new.embedding_id, 'A');
    END""",
]

_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS vector_embedding_log_au",
    "DROP TRIGGER IF EXISTS vector_embedding_log_ad",
    "DROP TRIGGER IF EXISTS vector_embedding_log_ai",
    "DROP TABLE IF EXISTS vector_embedding_log",
    "DROP TRIGGER IF EXISTS vector_chunk_fts_au",
    "DROP TRIGGER IF EXISTS vector_chunk_fts_ad",
    "DROP TRIGGER IF EXISTS vector_chunk_fts_ai",
    "DROP TABLE IF EXISTS vector_chunk_fts",
    "DROP TABLE IF EXISTS vector_chunk_fts_key",
]

_POSTGRES_UP = [
    """ALTER TABLE vector.chunk ADD COLUMN content_tsv tsvector
        GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED""",
    "CREATE INDEX ix_vector_chunk_content_tsv ON vector.chunk USING gin (content_tsv)",
]

_POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS vector.ix_vector_chunk_content_tsv",
    "ALTER TABLE vector.chunk DROP COLUMN IF EXISTS content_tsv",
]


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for statement in _POSTGRES_UP if _is_postgres() else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _POSTGRES_DOWN if _is_postgres() else _SQLITE_DOWN:
        op.execute(statement)
