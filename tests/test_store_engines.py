"""The schema behaves the same on SQLite and on PostgreSQL + pgvector: migrations, vectors, constraints, time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, delete, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from holocron.store.database import Database
from holocron.store.migrate import current_revision, downgrade, head_revision
from holocron.store.schema import SCHEMAS, SEM_SCHEMA, table_name_for
from holocron.store.types import utcnow

EXPECTED_TABLES = {
    ("ingest", "ingest_records"),
    ("vector", "embedding_space"),
    ("vector", "source_registry"),
    ("vector", "chunk"),
    ("vector", "embedding"),
    ("vector", "job"),
    ("vector", "run"),
    ("vector", "retrieval"),
    ("vector", "retrieval_hit"),
    ("llm", "evidence_bundle"),
    ("llm", "evidence_item"),
    ("lake", "run_artifact"),
}


# --- helpers ---------------------------------------------------------------------------------------------------


def product_tables(db: Database) -> set[tuple[str | None, str]]:
    """(schema, table) of every product table the engine reports; alembic's own table left out."""
    inspector = inspect(db.engine)
    if db.t.uses_schemas:
        return {
            (schema, name) for schema in (*SCHEMAS, SEM_SCHEMA) for name in inspector.get_table_names(schema=schema)
        }
    return {(None, name) for name in inspector.get_table_names() if name != "alembic_version"}


def expected_tables(db: Database) -> set[tuple[str | None, str]]:
    return {
        (schema_or_none, name)
        for name, schema_or_none in (table_name_for(db.t.uses_schemas, s, t) for s, t in EXPECTED_TABLES)
    }


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def add_space(db: Database, name: str = "space", dimensions: int = 4) -> int:
    t = db.t.embedding_space
    with db.write() as tx:
        return int(
            tx.execute(
                insert(t)
                .values(
                    name=name,
                    provider="local",
                    model_name="test-model",
                    model_tag=name,
                    model_digest="sha256:0",
                    dimensions=dimensions,
                    normalize_flag=True,
                    distance_metric="cosine",
                    preprocess_policy_json={"lowercase": False},
                    created_utc=utcnow(),
                )
                .returning(t.c.embedding_space_id)
            ).scalar_one()
        )


def add_source_and_chunk(db: Database, source_id: str = "src-1", chunk_id: str = "chunk-1") -> str:
    now = utcnow()
    with db.write() as tx:
        tx.execute(
            insert(db.t.source_registry).values(
                source_id=source_id,
                source_type="html",
                source_system="test",
                source_ref_json={"path": "page.html"},
                tags_json=[],
                status="pending",
                chunk_count=0,
                chunks_dropped=0,
                created_utc=now,
                updated_utc=now,
            )
        )
        tx.execute(insert(db.t.chunk).values(chunk_row(chunk_id, source_id)))
    return chunk_id


def chunk_row(chunk_id: str, source_id: str) -> dict[str, Any]:
    return {
        "chunk_id": chunk_id,
        "source_id": source_id,
        "source_type": "html",
        "source_ref_json": {"path": "page.html"},
        "chunk_index": 0,
        "start_offset": 0,
        "end_offset": 5,
        "content": "hello",
        "content_sha256": "c" * 64,
        "byte_count": 5,
        "policy_version": "v1",
        "policy_json": {},
        "created_utc": utcnow(),
    }


def embedding_row(chunk_id: str, space_id: int, vector: Any, content_sha: str = "c" * 64) -> dict[str, Any]:
    return {
        "chunk_id": chunk_id,
        "embedding_space_id": space_id,
        "input_content_sha256": content_sha,
        "vector": vector,
        "vector_sha256": "v" * 64,
        "created_utc": utcnow(),
    }


# --- migrations ------------------------------------------------------------------------------------------------


def test_upgrade_reaches_head_and_a_second_upgrade_does_nothing(db: Database) -> None:
    assert current_revision(db) == head_revision(db)
    with statements(db.engine) as seen:
        db.upgrade()
    changes = [
        s for s in seen if s.lstrip().split(" ", 1)[0].upper() in {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE"}
    ]
    assert changes == []
    assert current_revision(db) == head_revision(db)


def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    at_head = product_tables(db)
    downgrade(db, "base")
    assert current_revision(db) is None
    assert product_tables(db) == set()

    db.upgrade()
    assert current_revision(db) == head_revision(db)
    assert product_tables(db) == at_head
    add_source_and_chunk(db)  # the schema is usable, not just present


def test_expected_tables_exist(db: Database) -> None:
    """Later migrations may add tables (full-text search, say); these are the core ones."""
    assert expected_tables(db) <= product_tables(db)
    if db.t.uses_schemas:
        assert {table.schema for table in db.t.metadata.tables.values()} == {*SCHEMAS, SEM_SCHEMA}
        assert inspect(db.engine).get_table_names(schema="public") == ["alembic_version"]


@pytest.mark.postgres
def test_postgres_vector_columns_have_no_fixed_dimension(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        db.upgrade()
        with db.read() as tx:
            types = tx.execute(
                text(
                    "SELECT attrelid::regclass::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid IN ('vector.embedding'::regclass, 'vector.retrieval'::regclass) "
                    "AND attname IN ('vector', 'query_embedding')"
                )
            ).all()
        assert sorted(types) == [("vector.embedding", "vector"), ("vector.retrieval", "vector")]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_postgres_registers_pgvector_on_connections_opened_before_the_extension(
    new_pg_database: Callable[..., AbstractContextManager[str]],
) -> None:
    """The first migration creates the extension; a pooled connection from before it still gets the adapters."""
    with new_pg_database(with_vector=False) as url:
        db = Database(url)
        try:
            with db.read() as tx:
                before = tx.conn.connection.dbapi_connection
            db.upgrade()
            probe = np.array([0.5, -1.25, 3.0], dtype=np.float32)
            with db.read() as tx:
                assert tx.conn.connection.dbapi_connection is before
                loaded = tx.execute(text("SELECT CAST(:v AS vector)"), {"v": probe}).scalar_one()
            assert loaded.to_numpy().tobytes() == probe.tobytes()
        finally:
            db.dispose()


# --- vectors ---------------------------------------------------------------------------------------------------


def test_vector_round_trips_exactly(db: Database) -> None:
    space_id = add_space(db, dimensions=384)
    chunk_id = add_source_and_chunk(db)
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(384).astype(np.float32)
    # Values a decimal round trip would bend: extremes, subnormals, a float32 that is not a short decimal.
    vector[:6] = [np.float32(1 / 3), 3.4028235e38, -1.1754944e-38, 1e-45, -0.0, 16777217.0]
    with db.write() as tx:
        tx.execute(insert(db.t.embedding), [embedding_row(chunk_id, space_id, vector)])
    with db.read() as tx:
        loaded = tx.execute(select(db.t.embedding.c.vector)).scalar_one()
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == np.float32
    assert loaded.shape == (384,)
    assert loaded.tobytes() == vector.tobytes()


def test_vectors_of_any_dimension_and_python_lists(db: Database) -> None:
    """The column has no fixed dimension: the space row carries it. Lists come back as float32 arrays."""
    space_a, space_b = add_space(db, "a", dimensions=1), add_space(db, "b", dimensions=2000)
    chunk_id = add_source_and_chunk(db)
    wide = np.linspace(-1, 1, 2000, dtype=np.float32)
    with db.write() as tx:
        tx.execute(
            insert(db.t.embedding),
            [embedding_row(chunk_id, space_a, [0.25]), embedding_row(chunk_id, space_b, wide)],
        )
    e = db.t.embedding
    with db.read() as tx:
        rows = dict(tx.execute(select(e.c.embedding_space_id, e.c.vector)).tuples().all())
    assert rows[space_a].dtype == np.float32
    assert rows[space_a].tolist() == [0.25]
    assert rows[space_b].tobytes() == wide.tobytes()


def test_nullable_vector_column_keeps_null(db: Database) -> None:
    space_id = add_space(db)
    r = db.t.retrieval
    base = {"embedding_space_id": space_id, "query_text": "q", "top_k": 3, "mode": "dense"}
    query = np.array([1, 0, 0, 0], dtype=np.float32)
    with db.write() as tx:
        for rid, vec in (("r-null", None), ("r-vec", query)):
            tx.execute(
                insert(r).values(
                    **base,
                    retrieval_id=rid,
                    query_embedding=vec,
                    filters_json={},
                    policy_json={},
                    created_utc=utcnow(),
                )
            )
    with db.read() as tx:
        got = dict(tx.execute(select(r.c.retrieval_id, r.c.query_embedding)).tuples().all())
    assert got["r-null"] is None
    assert got["r-vec"].tobytes() == query.tobytes()


@pytest.mark.postgres
def test_postgres_distance_operators_give_floats(pg_url: str) -> None:
    """``vector <=> :query`` is typed as a float distance, not read back as a vector."""
    db = Database(pg_url)
    try:
        db.upgrade()
        space_id = add_space(db, dimensions=2)
        chunk_id = add_source_and_chunk(db)
        with db.write() as tx:
            tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id, [1.0, 0.0])))
        e = db.t.embedding
        query = np.array([0.0, 2.0], dtype=np.float32)
        with db.read() as tx:
            cosine, l2 = tx.execute(select(e.c.vector.op("<=>")(query), e.c.vector.op("<->")(query))).one()
        assert isinstance(cosine, float)
        assert (cosine, l2) == (1.0, pytest.approx(5**0.5))
    finally:
        db.dispose()


# --- constraints -----------------------------------------------------------------------------------------------


def test_duplicate_chunk_space_content_is_rejected(db: Database) -> None:
    space_id = add_space(db)
    chunk_id = add_source_and_chunk(db)
    vector = np.ones(4, dtype=np.float32)
    with db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id, vector)))
    with pytest.raises(IntegrityError), db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id, vector * 2)))
    # The same chunk and space with another text version is a different row.
    with db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id, vector, "d" * 64)))
    with db.read() as tx:
        assert tx.execute(select(func.count()).select_from(db.t.embedding)).scalar_one() == 2


def test_foreign_keys_are_enforced(db: Database) -> None:
    space_id = add_space(db)
    with pytest.raises(IntegrityError), db.write() as tx:
        tx.execute(insert(db.t.chunk).values(chunk_row("orphan", "no-such-source")))
    with pytest.raises(IntegrityError), db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row("no-such-chunk", space_id, np.ones(4))))
    chunk_id = add_source_and_chunk(db)
    with pytest.raises(IntegrityError), db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id + 1000, np.ones(4))))


def test_deleting_a_source_cascades_to_chunks_and_embeddings(db: Database) -> None:
    space_id = add_space(db)
    chunk_id = add_source_and_chunk(db)
    with db.write() as tx:
        tx.execute(insert(db.t.embedding).values(embedding_row(chunk_id, space_id, np.ones(4))))
        tx.execute(delete(db.t.source_registry))
    with db.read() as tx:
        for table in (db.t.chunk, db.t.embedding):
            assert tx.execute(select(func.count()).select_from(table)).scalar_one() == 0


# --- time ------------------------------------------------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    written = datetime(2026, 3, 1, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    space_id = add_space(db)
    t = db.t.embedding_space
    with db.write() as tx:
        tx.execute(t.update().where(t.c.embedding_space_id == space_id).values(created_utc=written))
    with db.read() as tx:
        loaded = tx.execute(select(t.c.created_utc)).scalar_one()
    assert loaded.tzinfo is not None
    assert loaded.utcoffset() == timedelta(0)
    assert loaded == written
    assert loaded == datetime(2026, 3, 1, 18, 0, 15, 123456, tzinfo=UTC)


def test_naive_timestamps_are_refused(db: Database) -> None:
    space_id = add_space(db)
    t = db.t.embedding_space
    with pytest.raises(StatementError, match="naive datetime"), db.write() as tx:
        tx.execute(t.update().where(t.c.embedding_space_id == space_id).values(created_utc=datetime(2026, 1, 1)))
