"""Vector indexes: exact and HNSW agree, filters hold inside the index, the index file is repaired after a
crash between the table write and the index write, and the vectors are kept once and read in pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from holocron.embedding.base import ModelIdentity
from holocron.hashing import chunk_id_for, sha256_text
from holocron.retrieval.space_index import IndexConfig, SpaceIndex
from holocron.retrieval.vector_index import ExactVectorIndex, HnswParams, HnswVectorIndex
from holocron.store.chunks import ChunkRow, replace_chunks
from holocron.store.database import Database
from holocron.store.embeddings import EmbeddingWrite, insert_embeddings, read_current_vectors, read_vectors
from holocron.store.sources import RawRecord, register_records
from holocron.store.spaces import EmbeddingSpace, get_or_create_space
from holocron.store.types import utcnow
from holocron.vectors import l2_normalize, top_k

DIMS = 32


def unit(rng: np.random.Generator, n: int, dims: int = DIMS) -> np.ndarray:
    return l2_normalize(rng.standard_normal((n, dims)).astype(np.float32))


def brute(matrix: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return [int(ids[i]) for i in top_k(matrix @ query, k)]


# -- the in-memory indexes -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 60),
    removed=st.sets(st.integers(0, 59), max_size=30),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_exact_index_matches_brute_force_after_adds_and_removes(n: int, removed: set[int], k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit(rng, n)
    index = ExactVectorIndex(DIMS)
    index.add(np.arange(n), vectors)
    index.add(np.arange(n // 2), vectors[: n // 2])  # re-adding replaces, never duplicates
    index.remove(sorted(removed))
    keep = np.array([i for i in range(n) if i not in removed], dtype=np.int64)
    assert len(index) == len(keep)
    query = unit(rng, 1)[0]
    got = [i for i, _ in index.search(query, k)]
    assert got == brute(vectors[keep], keep, query, k) if len(keep) else got == []
    allowed = set(keep[::2].tolist())
    got_allowed = [i for i, _ in index.search(query, k, allowed)]
    subset = np.array(sorted(allowed), dtype=np.int64)
    assert got_allowed == (brute(vectors[subset], subset, query, k) if len(subset) else [])


def test_hnsw_recall_and_filters_against_exact() -> None:
    rng = np.random.default_rng(7)
    centers = unit(rng, 40)
    vectors = l2_normalize(centers[rng.integers(0, 40, 3000)] + 0.3 * unit(rng, 3000))
    ids = np.arange(10, 3010, dtype=np.int64)
    ann = HnswVectorIndex(DIMS, HnswParams(16, 128, 128), exact_subset_max=50, exact_subset_fraction=0.0)
    ann.add(ids, vectors)
    exact = ExactVectorIndex(DIMS)
    exact.add(ids, vectors)
    queries = unit(rng, 50)
    recall = np.mean(
        [len({i for i, _ in ann.search(q, 10)} & {i for i, _ in exact.search(q, 10)}) / 10 for q in queries]
    )
    assert recall >= 0.95
    scores = dict(exact.search(queries[0], 3000))
    for key, score in ann.search(queries[0], 10):
        assert score == pytest.approx(scores[key], abs=1e-4)
    # Filtered: a small allowed set goes exact; a large one through the graph; k hits either way.
    for allowed in (set(ids[:30].tolist()), set(ids[::3].tolist()), {int(ids[5])}):
        got = ann.search(queries[1], 10, allowed)
        assert len(got) == min(10, len(allowed)) and all(i in allowed for i, _ in got)
    ann.remove(ids[:100])
    assert len(ann) == 2900 and all(i >= 110 for i, _ in ann.search(queries[2], 50))


# -- the index of a space, against the table -------------------------------------------------------


def _space(db: Database) -> EmbeddingSpace:
    identity = ModelIdentity("test", "random", "1", "sha256:" + "1" * 64, DIMS, None, True)
    return get_or_create_space(db, identity)[0]


def _write(db: Database, space: EmbeddingSpace, source: str, n: int, rng: np.random.Generator) -> None:
    """A source with n chunks and their embeddings, as the indexer would write them."""
    text = f"source {source}"
    register_records(
        db,
        [RawRecord("t", source, f"t:{source}", "text", "text/plain", text, sha256_text(text), utcnow())],
    )
    rows = []
    for i in range(n):
        content = f"{source} chunk {i}"
        digest = sha256_text(content)
        rows.append(
            ChunkRow(
                chunk_id_for(f"t:{source}", i, i + 1, "p", digest),
                f"t:{source}",
                "text",
                {},
                i,
                i,
                i + 1,
                content,
                digest,
                "p",
                {},
            )
        )
    with db.write() as tx:
        replace_chunks(tx, {f"t:{source}": rows}, None)
        insert_embeddings(
            tx,
            space.embedding_space_id,
            [EmbeddingWrite(r.chunk_id, r.content_sha256) for r in rows],
            unit(rng, n),
            None,
        )


def _drop(db: Database, source: str) -> None:
    with db.write() as tx:
        tx.execute(db.t.chunk.delete().where(db.t.chunk.c.source_id == f"t:{source}"))


def _exact_ids(db: Database, space: EmbeddingSpace, query: np.ndarray, k: int) -> list[int]:
    e = db.t.embedding
    with db.read() as tx:
        rows = tx.execute(
            select(e.c.embedding_id, e.c.vector).where(e.c.embedding_space_id == space.embedding_space_id)
        ).all()
    ids = np.array([r.embedding_id for r in rows], dtype=np.int64)
    return brute(np.vstack([r.vector for r in rows]), ids, query, k)


HNSW = IndexConfig(exact_threshold=0, hnsw=HnswParams(16, 64, 128), save_every=1_000_000, max_tombstone_fraction=1.0)


def test_index_file_is_repaired_after_a_crash(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(3)
    space = _space(db)
    for name in ("a", "b", "c"):
        _write(db, space, name, 40, rng)
    first = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    report = first.sync()
    assert report.rebuilt and report.saved and report.kind == "hnsw" and report.size == 120
    assert first.index_path is not None and first.index_path.is_file()
    saved_seq = json.loads(first.sidecar_path.read_text())["seq"]  # type: ignore[union-attr]

    # The "crash": the table changes (new source, a replaced source) and no index write follows.
    _write(db, space, "d", 25, rng)
    _drop(db, "a")
    _write(db, space, "a", 10, rng)  # new rows may reuse the ids of the deleted ones
    del first

    second = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    repair = second.sync()
    assert repair.loaded_file and not repair.rebuilt and repair.replayed > 0 and repair.size == 115
    assert repair.seq > saved_seq
    assert second.sync().replayed == 0  # caught up: nothing more to do
    for query in unit(rng, 10):
        assert [i for i, _ in second.search(query, 10)] == _exact_ids(db, space, query, 10)
    db.dispose()


def test_lost_log_or_damaged_file_triggers_a_rebuild(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(5)
    space = _space(db)
    _write(db, space, "a", 30, rng)
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    index.sync()
    # A change whose log rows are lost: the size check notices and the index is rebuilt from the table.
    _write(db, space, "b", 7, rng)
    log = db.t.embedding_log
    assert log is not None
    with db.write() as tx:
        tx.execute(log.delete())
    fresh = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    report = fresh.sync()
    assert report.rebuilt and report.size == 37
    # A damaged file is rebuilt too.
    assert fresh.index_path is not None
    fresh.index_path.write_bytes(b"not an index")
    again = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    assert again.sync().rebuilt and len(again) == 37
    # Rebuilds read the table and write nothing to the log: it is still empty, and a rebuilt index with no log
    # behind it catches up on later changes by replay, as usual.
    with db.read() as tx:
        assert tx.execute(select(func.count()).select_from(log)).scalar_one() == 0
    _write(db, space, "c", 5, rng)
    with db.read() as tx:
        assert tx.execute(select(func.count()).select_from(log)).scalar_one() == 5
    later = again.sync()
    assert not later.rebuilt and later.replayed == 5 and len(again) == 42
    for query in unit(rng, 5):
        assert [i for i, _ in again.search(query, 10)] == _exact_ids(db, space, query, 10)
    db.dispose()


def test_graph_newer_than_its_sidecar_is_rebuilt(tmp_path: Path) -> None:
    """A crash between the graph's rename and the sidecar's leaves a new graph under the old sidecar: the sidecar's
    checksum no longer matches, so the pair is not trusted and the index is rebuilt, with the reason."""
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(9)
    space = _space(db)
    _write(db, space, "a", 20, rng)
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    index.sync()
    assert index.sidecar_path is not None
    old_sidecar = index.sidecar_path.read_text()
    _write(db, space, "b", 20, rng)
    index.sync()
    assert index.save()
    index.sidecar_path.write_text(old_sidecar)  # the file is new, its sidecar still the old one
    reopened = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    report = reopened.sync()
    assert report.rebuilt and not report.loaded_file and report.size == 40
    assert "is not the graph its sidecar was saved with" in report.reason
    query = unit(rng, 1)[0]
    assert [i for i, _ in reopened.search(query, 10)] == _exact_ids(db, space, query, 10)
    # The rebuild saved a matching pair: the next process loads it.
    again = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    assert again.sync().loaded_file and not again.sync().rebuilt
    db.dispose()


def test_live_index_follows_changes_and_switches_kind(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(11)
    space = _space(db)
    _write(db, space, "a", 20, rng)
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=IndexConfig(exact_threshold=50))
    assert index.sync().kind == "exact" and index.index_path is not None and not index.index_path.exists()
    _write(db, space, "b", 40, rng)  # crosses the threshold: becomes HNSW, saved beside the database
    report = index.sync()
    assert report.kind == "hnsw" and report.rebuilt and index.index_path.exists()
    _drop(db, "b")
    _drop(db, "a")
    assert index.sync().kind == "exact" and len(index) == 0 and not index.index_path.exists()
    assert index.search(unit(rng, 1)[0], 5) == []
    db.dispose()


def test_many_removals_trigger_a_compacting_rebuild(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(13)
    space = _space(db)
    for name in ("a", "b"):
        _write(db, space, name, 30, rng)
    config = IndexConfig(exact_threshold=0, hnsw=HnswParams(16, 64, 64), max_tombstone_fraction=0.2)
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=config)
    index.sync()
    _drop(db, "a")
    report = index.sync()
    assert report.rebuilt and "removed" in report.reason and report.size == 30
    db.dispose()


# -- one copy of the vectors, read in pages ----------------------------------------------------------------


def _arrays_in(obj: object, depth: int = 2) -> list[np.ndarray]:
    """The numpy arrays an object holds, in its attributes and theirs (``depth`` levels down)."""
    found: list[np.ndarray] = []
    for value in vars(obj).values():
        if isinstance(value, np.ndarray):
            found.append(value)
        elif depth > 0 and hasattr(value, "__dict__") and type(value).__module__.startswith("holocron"):
            found.extend(_arrays_in(value, depth - 1))
    return found


def test_hnsw_index_keeps_its_vectors_only_in_the_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    vectors = unit(rng, 2000)
    ids = np.arange(5, 2005, dtype=np.int64)
    ann = HnswVectorIndex(DIMS, HnswParams(16, 64, 64), exact_subset_max=300)
    ann.add(ids, vectors)
    assert not [a for a in _arrays_in(ann) if a.dtype == np.float32 and a.size >= vectors.size // 2]
    assert np.array_equal(ann.graph_vectors(ids[:50]), vectors[:50])
    # Exact search over an allowed subset reads the graph's vectors when no other source is given.
    exact = ExactVectorIndex(DIMS)
    exact.add(ids, vectors)
    allowed = set(ids[::9].tolist())
    query = unit(rng, 1)[0]
    assert [i for i, _ in ann.search(query, 10, allowed)] == [i for i, _ in exact.search(query, 10, allowed)]
    ann.remove(ids[:10])
    with pytest.raises(KeyError):
        ann.graph_vectors(ids[:1])
    # Saved and loaded: still no copy beside the graph.
    path = tmp_path / "g.hnsw"
    loaded = HnswVectorIndex.load(path, DIMS, ann.params, ann.save(path))
    assert len(loaded) == 1990 and loaded.tombstones == 10 and int(ids[0]) not in loaded
    assert not [a for a in _arrays_in(loaded) if a.dtype == np.float32 and a.size >= vectors.size // 2]

    # A space's HNSW index reads an allowed subset's vectors from the table instead.
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    space = _space(db)
    _write(db, space, "a", 200, rng)
    config = IndexConfig(exact_threshold=0, hnsw=HnswParams(16, 64, 64), filter_exact_max=150)
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=config)
    index.sync()
    assert index.kind == "hnsw"
    assert not [a for a in _arrays_in(index, 3) if a.dtype == np.float32 and a.size >= 100 * DIMS]
    e = db.t.embedding
    with db.read() as tx:
        table = {r.embedding_id: r.vector for r in tx.execute(select(e.c.embedding_id, e.c.vector))}
    subset = sorted(table)[::3]
    matrix = np.vstack([table[i] for i in subset])
    for query in unit(rng, 5):
        assert [i for i, _ in index.search(query, 10, set(subset))] == brute(
            matrix, np.asarray(subset, dtype=np.int64), query, 10
        )
    db.dispose()


def test_exact_index_adopts_the_rebuilt_matrix() -> None:
    rng = np.random.default_rng(19)
    matrix = unit(rng, 50)
    ids = np.arange(100, 150, dtype=np.int64)
    index = ExactVectorIndex.from_arrays(ids, matrix)
    assert np.shares_memory(index.matrix, matrix) and len(index) == 50
    query = unit(rng, 1)[0]
    assert [i for i, _ in index.search(query, 5)] == brute(matrix, ids, query, 5)
    index.add([7], unit(rng, 1))  # grows past the adopted buffer like any other
    index.remove([100])
    assert len(index) == 50 and 7 in index and 100 not in index
    with pytest.raises(ValueError, match="distinct"):
        ExactVectorIndex.from_arrays([1, 1], unit(rng, 2))


def test_vectors_are_read_in_pages_into_one_preallocated_matrix(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'holocron.db'}")
    db.upgrade()
    rng = np.random.default_rng(23)
    space = _space(db)
    _write(db, space, "a", 23, rng)
    _write(db, space, "b", 20, rng)
    with db.write() as tx:  # b's chunks get new text: their embeddings are no longer current
        tx.execute(db.t.chunk.update().where(db.t.chunk.c.source_id == "t:b").values(content_sha256=sha256_text("new")))
    e = db.t.embedding
    with db.read() as tx:
        rows = tx.execute(select(e.c.embedding_id, e.c.vector).order_by(e.c.embedding_id)).all()
    want_ids = np.array([r.embedding_id for r in rows[:23]], dtype=np.int64)
    want = np.vstack([r.vector for r in rows[:23]])

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    with db.read() as tx:
        ids, matrix = read_current_vectors(tx, space.embedding_space_id, DIMS, page_rows=5)
    event.remove(db.engine, "before_cursor_execute", record)
    assert np.array_equal(ids, want_ids) and np.array_equal(matrix, want)
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous and matrix.base is not None
    assert len([s for s in statements if "LIMIT" in s]) == 5  # 23 rows: pages of 5, 5, 5, 5, 3
    with db.read() as tx:
        some_ids, some = read_vectors(tx, space.embedding_space_id, DIMS, [int(want_ids[3]), 10_000, 0])
    assert some_ids.tolist() == [int(want_ids[3])] and np.array_equal(some[0], want[3])
    # A rebuild reads the same rows, the same way.
    statements.clear()
    index = SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)
    event.listen(db.engine, "before_cursor_execute", record)
    assert index.rebuild().size == 23
    event.remove(db.engine, "before_cursor_execute", record)
    assert len([s for s in statements if "LIMIT" in s and "vector_embedding.vector" in s]) == 1
    db.dispose()
