"""The saved ANN index proves it belongs to this database and this state before it is used; files are written
and read under a lock shared by processes; the consumed change log is pruned; an unusable index folder is a
clear error."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from filelock import FileLock
from sqlalchemy import select

from holocron.retrieval.space_index import NO_FILE, SpaceIndex
from holocron.retrieval.vector_index import IndexFolderError
from holocron.store.database import Database
from holocron.store.embeddings import log_pruned_through
from holocron.store.info import get_info, store_id
from holocron.store.spaces import EmbeddingSpace
from servers import misbehaving_server
from test_ann_index import DIMS, HNSW, _exact_ids, _space, _write, unit


def _open(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    return db


def _copy_database(db: Database, to: Path) -> None:
    """A consistent copy of a live SQLite database (the backup API: WAL included)."""
    assert db.sqlite_path is not None
    source, target = sqlite3.connect(db.sqlite_path), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _restore(copy: Path, over: Path) -> None:
    """Put an older copy in place of the database (its WAL and shared-memory files gone with it)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{over}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, over)


def _index(db: Database, space: EmbeddingSpace) -> SpaceIndex:
    return SpaceIndex(db, space.embedding_space_id, DIMS, config=HNSW)


def _table(db: Database, space: EmbeddingSpace) -> dict[int, np.ndarray]:
    e = db.t.embedding
    with db.read() as tx:
        rows = tx.execute(
            select(e.c.embedding_id, e.c.vector).where(e.c.embedding_space_id == space.embedding_space_id)
        ).all()
    return {int(r.embedding_id): r.vector for r in rows}


def _assert_serves_the_table(index: SpaceIndex, db: Database, space: EmbeddingSpace, seed: int) -> None:
    """Every stored vector is found as its own nearest neighbour, and top-10s match exact search."""
    table = _table(db, space)
    assert len(index) == len(table)
    for key, vector in table.items():
        assert index.search(vector, 1)[0][0] == key
    for query in unit(np.random.default_rng(seed), 5):
        assert [i for i, _ in index.search(query, 10)] == _exact_ids(db, space, query, 10)


def _save_files(index: SpaceIndex, to: Path) -> None:
    assert index.index_path is not None and index.sidecar_path is not None
    to.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(index.index_path, to / index.index_path.name)
    shutil.copyfile(index.sidecar_path, to / index.sidecar_path.name)


def _put_files(index: SpaceIndex, source: Path) -> None:
    assert index.index_path is not None and index.sidecar_path is not None
    shutil.copyfile(source / index.index_path.name, index.index_path)
    shutil.copyfile(source / index.sidecar_path.name, index.sidecar_path)


def _sidecar(index: SpaceIndex) -> dict[str, Any]:
    assert index.sidecar_path is not None
    data: dict[str, Any] = json.loads(index.sidecar_path.read_text())
    return data


# -- 1. the file proves it belongs here ----------------------------------------------------------------------


def test_an_older_database_beside_a_newer_index_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "holocron.db"
    db = _open(path)
    space = _space(db)
    rng = np.random.default_rng(21)
    _write(db, space, "a", 30, rng)
    _copy_database(db, tmp_path / "state-a.db")  # the backup taken at state A
    _write(db, space, "b", 10, rng)
    newer = _index(db, space)
    report = newer.sync()
    assert report.saved and report.seq == 40 and _sidecar(newer)["seq"] == 40
    _save_files(newer, tmp_path / "index-b")
    db.dispose()

    # The database restored from the backup; index/ still holds state B.
    _restore(tmp_path / "state-a.db", path)
    db = _open(path)
    restored = _index(db, space)
    report = restored.sync()
    assert report.rebuilt and not report.loaded_file and report.size == 30
    assert "restored from an older copy" in report.reason
    _assert_serves_the_table(restored, db, space, 1)
    db.dispose()

    # Restored again, and then written to until its log passes the file's sequence: same ids, other vectors.
    _restore(tmp_path / "state-a.db", path)
    db = _open(path)
    _write(db, space, "c", 15, rng)
    assert max(_log_rows(db)) == 45
    diverged = _index(db, space)
    _put_files(diverged, tmp_path / "index-b")
    report = diverged.sync()
    assert report.rebuilt and not report.loaded_file and report.size == 45
    assert "sampled vectors in the graph differ from the table's" in report.reason
    _assert_serves_the_table(diverged, db, space, 2)
    db.dispose()


def _store_id(db: Database) -> str:
    with db.read() as tx:
        return store_id(tx)


def test_a_file_from_another_database_is_rebuilt(tmp_path: Path) -> None:
    one, other = _open(tmp_path / "one" / "holocron.db"), _open(tmp_path / "other" / "holocron.db")
    assert _store_id(one) != _store_id(other)
    for db in (one, other):  # the same writes: the same ids, sequences and even vectors
        space = _space(db)
        _write(db, space, "a", 30, np.random.default_rng(4))
        _index(db, space).sync()
    space = _space(one)
    index = _index(one, space)
    _put_files(index, tmp_path / "other" / "index")
    report = index.sync()
    assert report.rebuilt and "belongs to another database" in report.reason
    assert _sidecar(index)["store_id"] == _store_id(one)
    _assert_serves_the_table(index, one, space, 3)
    one.dispose()
    other.dispose()


def test_same_labels_and_count_but_other_vectors_are_rebuilt(tmp_path: Path) -> None:
    """Two copies of one database (the same store_id) written alike but with other vectors: only the content
    check can tell their files apart."""
    (tmp_path / "two").mkdir()
    one = _open(tmp_path / "one" / "holocron.db")
    _copy_database(one, tmp_path / "two" / "holocron.db")
    two = _open(tmp_path / "two" / "holocron.db")
    assert _store_id(one) == _store_id(two)
    for db, seed in ((one, 1), (two, 2)):
        space = _space(db)
        _write(db, space, "a", 40, np.random.default_rng(seed))
        _index(db, space).sync()
    space = _space(one)
    index = _index(one, space)
    mine, theirs = _sidecar(index), json.loads((tmp_path / "two" / "index" / "space-1.json").read_text())
    same = ("store_id", "seq", "count")
    assert {k: mine.get(k) for k in same} == {k: theirs.get(k) for k in same}
    _put_files(index, tmp_path / "two" / "index")
    report = index.sync()
    assert report.rebuilt and not report.loaded_file
    assert "sampled vectors in the graph differ from the table's" in report.reason
    _assert_serves_the_table(index, one, space, 4)
    one.dispose()
    two.dispose()


def test_a_graph_swapped_under_its_sidecar_is_rebuilt(tmp_path: Path) -> None:
    db = _open(tmp_path / "holocron.db")
    space = _space(db)
    rng = np.random.default_rng(8)
    _write(db, space, "a", 30, rng)
    first = _index(db, space)
    first.sync()
    _save_files(first, tmp_path / "x")
    _write(db, space, "b", 10, rng)
    first.sync()
    assert first.save()
    assert first.index_path is not None
    shutil.copyfile(tmp_path / "x" / first.index_path.name, first.index_path)  # another save's graph
    reopened = _index(db, space)
    report = reopened.sync()
    assert report.rebuilt and "is not the graph its sidecar was saved with" in report.reason
    _assert_serves_the_table(reopened, db, space, 5)
    # The sidecar's checksum is the graph file's.
    digest = hashlib.sha256(first.index_path.read_bytes()).hexdigest()
    assert _sidecar(reopened)["graph_sha256"] == digest
    assert _sidecar(reopened)["graph_bytes"] == first.index_path.stat().st_size
    db.dispose()


def test_a_sound_file_is_loaded_without_a_rebuild(tmp_path: Path) -> None:
    db = _open(tmp_path / "holocron.db")
    space = _space(db)
    rng = np.random.default_rng(10)
    _write(db, space, "a", 50, rng)
    _index(db, space).sync()
    _write(db, space, "b", 5, rng)  # the file is behind by a few changes: replayed, then verified
    index = _index(db, space)
    report = index.sync()
    assert report.loaded_file and not report.rebuilt and report.replayed == 5 and report.reason == ""
    _assert_serves_the_table(index, db, space, 6)
    db.dispose()


# -- 2. one lock for saving and loading, across processes -----------------------------------------------------


def _worker(db_path: str, role: str, seed: int, rounds: int, out: str) -> None:
    """One process: a writer adds vectors, catches up and saves, every round; everyone opens a fresh index
    (loading the file) and checks the pair it finds under the lock."""
    db = Database(f"sqlite:///{db_path}")
    space = _space(db)
    rng = np.random.default_rng(seed)
    mine = _index(db, space)
    records: list[dict[str, Any]] = []
    for round_ in range(rounds):
        if role == "writer":
            _write(db, space, f"w{seed}-{round_}", 3, rng)
            mine.sync()
            mine.save()
        fresh = _index(db, space)
        report = fresh.sync()
        assert fresh.index_path is not None and fresh.sidecar_path is not None and fresh.lock_path is not None
        with FileLock(str(fresh.lock_path)):
            meta = json.loads(fresh.sidecar_path.read_text())
            graph = fresh.index_path.read_bytes()
        records.append(
            {
                "report": report.to_json(),
                "pair_ok": hashlib.sha256(graph).hexdigest() == meta["graph_sha256"]
                and len(graph) == meta["graph_bytes"],
            }
        )
    db.dispose()
    Path(out).write_text(json.dumps(records))


def test_processes_saving_and_loading_at_once_always_see_whole_pairs(tmp_path: Path) -> None:
    path = tmp_path / "holocron.db"
    db = _open(path)
    space = _space(db)
    _write(db, space, "seed", 60, np.random.default_rng(0))
    assert _index(db, space).sync().saved
    roles = ["writer", "writer", "writer", "loader"]
    spawn = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"worker-{n}.json" for n in range(len(roles))]
    workers = [
        spawn.Process(target=_worker, args=(str(path), role, n + 1, 12, str(out)))
        for n, (role, out) in enumerate(zip(roles, outs, strict=True))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
        assert worker.exitcode == 0
    records = [record for out in outs for record in json.loads(out.read_text())]
    assert len(records) == 12 * len(roles)
    assert all(record["pair_ok"] for record in records)
    # A fresh index may rebuild only when, twice running, another process pruned the log between its load and
    # its catch-up; never because of what it found in the files.
    for record in records:
        report = record["report"]
        assert report["loaded_file"] or report["reason"].startswith("the log was pruned"), report
    # Afterwards: one whole pair, at most one pruning mark behind the newest change, serving the table.
    final = _index(db, space)
    report = final.sync()
    assert report.loaded_file and not report.rebuilt
    assert len(final) == 60 + 3 * 12 * 3
    _assert_serves_the_table(final, db, space, 7)
    db.dispose()


# -- 4. the consumed log is pruned ----------------------------------------------------------------------------


def _log_rows(db: Database) -> list[int]:
    log = db.t.embedding_log
    assert log is not None
    with db.read() as tx:
        return [int(seq) for seq in tx.execute(select(log.c.seq).order_by(log.c.seq)).scalars()]


def test_the_log_is_pruned_after_a_save_and_a_reader_behind_it_reloads(tmp_path: Path) -> None:
    path = tmp_path / "holocron.db"
    saver_db, reader_db = _open(path), Database(f"sqlite:///{path}")  # two connections, as two processes
    space = _space(saver_db)
    rng = np.random.default_rng(12)
    _write(saver_db, space, "a", 40, rng)
    saver = _index(saver_db, space)
    report = saver.sync()
    assert report.saved and report.pruned == 40 and _log_rows(saver_db) == []
    with saver_db.read() as tx:
        assert log_pruned_through(tx, space.embedding_space_id) == 40
        assert get_info(tx, f"log_pruned:{space.embedding_space_id}") == "40"

    reader = _index(reader_db, space)
    assert reader.sync().loaded_file and len(reader) == 40

    _write(saver_db, space, "b", 10, rng)
    saver.sync()
    assert saver.save()
    _write(saver_db, space, "c", 5, rng)  # newer than the save: kept
    assert _log_rows(saver_db) == list(range(51, 56))

    # The reader is at seq 40; the rows 41..50 it would replay are gone: it notices and reloads the file.
    report = reader.sync()
    assert report.loaded_file and not report.rebuilt and report.replayed == 5 and report.seq == 55
    assert "the log was pruned through seq 50, past the index's seq 40" in report.reason
    _assert_serves_the_table(reader, reader_db, space, 8)

    # Behind the pruned log with no usable file to reload: rebuilt from the table.
    _write(saver_db, space, "d", 5, rng)
    saver.sync()
    assert saver.save()
    assert saver.index_path is not None
    saver.index_path.write_bytes(b"damaged")
    report = reader.sync()
    assert report.rebuilt and report.size == 60
    _assert_serves_the_table(reader, reader_db, space, 9)

    # A save behind the mark is refused: it would leave a file the log cannot bring up to date.
    with saver_db.write() as tx:
        tx.execute(
            tx.t.store_info.update()
            .where(tx.t.store_info.c.key == f"log_pruned:{space.embedding_space_id}")
            .values(value="1000")
        )
    assert not saver.save()
    saver_db.dispose()
    reader_db.dispose()


def test_a_restored_database_is_still_caught_after_pruning(tmp_path: Path) -> None:
    """Pruning keeps the log's high-water mark: a sidecar beyond it is still recognised as too new."""
    path = tmp_path / "holocron.db"
    db = _open(path)
    space = _space(db)
    rng = np.random.default_rng(14)
    _write(db, space, "a", 20, rng)
    index = _index(db, space)
    index.sync()  # saved at 20, log pruned through 20: empty
    _copy_database(db, tmp_path / "old.db")
    _write(db, space, "b", 10, rng)
    index.sync()
    assert index.save() and _log_rows(db) == []
    db.dispose()
    _restore(tmp_path / "old.db", path)
    db = _open(path)
    with db.read() as tx:
        assert log_pruned_through(tx, space.embedding_space_id) == 20
    report = _index(db, space).sync()
    assert report.rebuilt and "restored from an older copy" in report.reason and report.size == 20
    db.dispose()


# -- 5. an unusable index folder ------------------------------------------------------------------------------


def test_index_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    db = _open(tmp_path / "holocron.db")
    space = _space(db)
    _write(db, space, "a", 10, np.random.default_rng(1))
    (tmp_path / "index").write_text("not a folder")
    for config in (HNSW, None):  # HNSW needs the folder to save; the exact index to check for stale files
        index = SpaceIndex(db, space.embedding_space_id, DIMS, config=config)
        with pytest.raises(IndexFolderError) as caught:
            index.sync()
        assert str(tmp_path / "index") in str(caught.value) and "not a directory" in str(caught.value)
        assert caught.value.path == tmp_path / "index"
    db.dispose()


def test_unusable_lock_file_is_a_clear_error(tmp_path: Path) -> None:
    db = _open(tmp_path / "holocron.db")
    space = _space(db)
    _write(db, space, "a", 10, np.random.default_rng(1))
    index = _index(db, space)
    assert index.lock_path is not None
    index.lock_path.mkdir(parents=True)  # something that cannot be locked where the lock file goes
    with pytest.raises(IndexFolderError, match=r"cannot lock space-1\.lock") as caught:
        index.sync()
    assert str(tmp_path / "index") in str(caught.value)
    db.dispose()


def test_cli_reports_an_index_folder_in_the_way_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "tea.md").write_text("# Tea\n\nGreen tea is picked in spring.\n", encoding="utf-8")
    with misbehaving_server() as (url, _script):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "OLLAMA_", "OPENAI_"))}
        env.update(
            HOLOCRON_CONFIG=str(tmp_path / "absent.toml"),
            HOLOCRON_EMBED_PROVIDER="ollama",
            HOLOCRON_OLLAMA_BASE_URL=url,
            HOLOCRON_EMBED_MODEL="fake-embed",
            HOLOCRON_ANN_EXACT_THRESHOLD="1",  # an HNSW graph, saved beside the database
        )

        def holocron(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-c", "from holocron.cli.app import main; main()", "--home", str(home), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        for args in (("ingest", "--no-enqueue", str(pages)), ("index",)):
            done = holocron(*args)
            assert done.returncode == 0, done.stderr
        assert holocron("index", "rebuild").returncode == 0
        assert (home / "index" / "space-1.hnsw").is_file()
        shutil.rmtree(home / "index")
        (home / "index").write_text("in the way")
        result = holocron("index", "rebuild")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and str(home / "index") in lines[0] and "not a directory" in lines[0]


def test_no_file_is_not_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = _open(tmp_path / "holocron.db")
    space = _space(db)
    _write(db, space, "a", 10, np.random.default_rng(1))
    report = _index(db, space).sync()
    assert report.rebuilt and report.reason == NO_FILE
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    db.dispose()
