"""One vector index per embedding space, kept in step with the embedding table.

The table is the truth; the index is a cache of it that can always be recomputed. Every embedding insert or
delete appends a row to ``vector_embedding_log`` by trigger, in the same transaction as the change itself.
The index remembers the last log sequence it reflects (in memory, and in the JSON sidecar of its file), so
catching up is: replay the log rows after that sequence, then compare the index's size with the table's.

Below ``exact_threshold`` vectors the index is a numpy matrix (exact, no file); at or above it, hnswlib HNSW,
saved beside the SQLite file as ``index/space-<id>.hnsw`` with ``index/space-<id>.json``. Removed vectors stay
in the graph as tombstones until they pass ``max_tombstone_fraction`` of it; then the index is rebuilt.

A saved file is used only once it proves it belongs to this database and this state; anything that fails is
logged as a warning naming the reason and the index is rebuilt from the table:

* the sidecar names the database (``store_id`` from ``vector_store_info``), the space, the dimensions and the
  graph parameters, and carries the sha256 and size of the graph file saved with it (a graph paired with
  another save's sidecar, e.g. by a crash between the two renames, does not match);
* its sequence is not beyond the database's newest log sequence (a database restored from an older copy
  beside a newer ``index/``), and not before the point the log was pruned to (the rows to replay are gone);
* after replaying the log, the graph's live labels are exactly the table's current embedding ids, and a sample
  of vectors (ids spread over the table, plus the most recently logged ones the replay did not rewrite) read
  from the graph equals the table's.

Files are written and read under ``index/space-<id>.lock`` (``filelock``, an OS lock the kernel releases when
its process dies): the API server, ``holocron search`` and workers may each save the graph, and the lock keeps
every reader from seeing one save's graph with another's sidecar. A save writes both files to temporary names,
fsyncs them, renames the graph then the sidecar, and then, still under the lock, prunes the log rows the saved
file holds (``seq`` up to the saved one), recording the mark in ``vector_store_info`` as
``log_pruned:<space id>``. A process whose index in memory is older than the mark notices at its next catch-up
(the log no longer reaches back to its sequence) and reloads the file, or rebuilds.

The graph holds the only in-memory copy of the vectors: an exact search over a small allowed subset reads the
subset's vectors from the table, and a rebuild reads the table in pages into one preallocated matrix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy.exc import SQLAlchemyError

from holocron.retrieval.vector_index import (
    ExactVectorIndex,
    HnswParams,
    HnswVectorIndex,
    Ids,
    IndexFolderError,
    Ranked,
)
from holocron.store.database import Database, Tx
from holocron.store.embeddings import (
    changed_embedding_ids,
    count_current_embeddings,
    current_embedding_ids,
    log_pruned_through,
    log_state,
    newest_log_seq,
    prune_embedding_log,
    read_current_vectors,
    read_vectors,
    recently_logged_ids,
)
from holocron.store.info import store_id
from holocron.store.types import utcnow
from holocron.vectors import Matrix

__all__ = ["IndexConfig", "IndexFolderError", "SpaceIndex", "SyncReport"]

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 2
LIBRARY = "hnswlib"
NO_FILE = "no index file"
LOCK_TIMEOUT_S = 300.0  # longer than any save or load holds the lock; a holder that dies releases it at once
SAMPLE_SPREAD = 32  # vectors checked on load: ids spread evenly over the table ...
SAMPLE_RECENT = 32  # ... plus the most recently logged ones
VECTOR_TOLERANCE = 1e-6
ADD_BATCH = 50_000
_HASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class IndexConfig:
    """The index's knobs (see ``docs/retrieval.md`` for how each default was measured)."""

    exact_threshold: int = 20_000
    hnsw: HnswParams = field(default_factory=HnswParams)
    save_every: int = 1_000  # replayed changes after which the file is rewritten
    filter_exact_max: int = 5_000  # the vectors are read from the table: ~6 us each (docs/retrieval.md)
    filter_exact_fraction: float = 0.0
    max_tombstone_fraction: float = 0.2  # deleted-but-still-in-the-graph share that triggers a rebuild


@dataclass
class SyncReport:
    """What one catch-up did; ``reason`` says why the index was rebuilt or reloaded."""

    kind: str
    size: int
    seq: int
    replayed: int = 0
    rebuilt: bool = False
    reason: str = ""
    loaded_file: bool = False
    saved: bool = False
    pruned: int = 0  # log rows deleted after the save
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "seq": self.seq,
            "replayed": self.replayed,
            "rebuilt": self.rebuilt,
            "reason": self.reason,
            "loaded_file": self.loaded_file,
            "saved": self.saved,
            "pruned": self.pruned,
            "seconds": round(self.seconds, 4),
        }

    def as_metrics(self) -> dict[str, Any]:
        """A run's or a job's index upkeep as flat metrics: the index's kind and size, and what it cost."""
        return {
            "vector_index": self.kind,
            "vector_index_size": self.size,
            "vector_index_seconds": round(self.seconds, 4),
            "vector_index_rebuilt": self.rebuilt,
            "vector_index_saved": self.saved,
        }


class SpaceIndex:
    """The ANN (or exact) index of one space on SQLite; thread-safe, one per process and space."""

    def __init__(
        self,
        db: Database,
        embedding_space_id: int,
        dimensions: int,
        *,
        folder: Path | None = None,
        config: IndexConfig | None = None,
    ) -> None:
        self.db = db
        self.embedding_space_id = embedding_space_id
        self.dimensions = dimensions
        self.config = config or IndexConfig()
        if folder is None and db.sqlite_path is not None:
            folder = db.sqlite_path.parent / "index"
        self.folder = folder
        self._index: ExactVectorIndex | HnswVectorIndex | None = None
        self._seq = 0
        self._unsaved = 0
        self._pruned = 0  # log rows the last save pruned
        self._last_reason = ""
        self._lock = threading.RLock()

    # -- paths -------------------------------------------------------------------------------------

    def _path(self, suffix: str) -> Path | None:
        return self.folder / f"space-{self.embedding_space_id}.{suffix}" if self.folder else None

    @property
    def index_path(self) -> Path | None:
        return self._path("hnsw")

    @property
    def sidecar_path(self) -> Path | None:
        return self._path("json")

    @property
    def lock_path(self) -> Path | None:
        return self._path("lock")

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self._index, HnswVectorIndex) else "exact"

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else 0

    # -- search ------------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, allowed: Collection[int] | None = None) -> Ranked:
        """(embedding_id, cosine) best first, after catching up with the table."""
        with self._lock:
            self.sync()
            assert self._index is not None
            return self._index.search(query, k, allowed)

    # -- keeping in step ---------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Catch up with the table: load the file on first use, replay the log, verify, rebuild if needed."""
        with self._lock:
            return self._sync(time.perf_counter(), reload_left=1, note="")

    def _sync(self, started: float, *, reload_left: int, note: str) -> SyncReport:
        loaded = False
        problem: str | None = None
        if self._index is None:
            problem = self._load_file()
            if problem is not None:
                return self._rebuild_for(problem, started)
            loaded = True
        assert self._index is not None
        behind = False
        with self.db.read() as tx:
            newest, pruned = log_state(tx, self.embedding_space_id)  # one max() and one key read per search
            replayed = expected = 0
            if self._seq > newest:
                problem = (
                    f"the index reflects log seq {self._seq} but the database's log ends at {newest} "
                    "(a database restored from an older copy?)"
                )
            elif self._seq < pruned:
                behind = True
                problem = f"the log was pruned through seq {pruned}, past the index's seq {self._seq}"
            else:
                if newest == self._seq and not loaded:
                    return SyncReport(self.kind, len(self), self._seq, seconds=time.perf_counter() - started)
                saved_seq = self._seq
                touched = self._replay(tx, newest)
                replayed = len(touched)
                expected = count_current_embeddings(tx, self.embedding_space_id)
                if len(self) != expected:
                    problem = f"index holds {len(self)} vectors, the table {expected}"
                elif loaded:
                    problem = self._verify(tx, saved_seq, touched)
        if behind and reload_left > 0:
            # Another process saved a newer file and pruned the rows this one would replay: take its file.
            log.info("space %s: %s; reloading the saved index", self.embedding_space_id, problem)
            self._index = None
            return self._sync(started, reload_left=reload_left - 1, note=f"{problem}: reloaded the saved index")
        if problem is not None:
            return self._rebuild_for(problem, started)
        if self._wrong_kind(expected):
            return self.rebuild(reason=f"{expected} vectors: switching from {self.kind}")
        if isinstance(
            self._index, HnswVectorIndex
        ) and self._index.tombstones > self.config.max_tombstone_fraction * max(expected, 1):
            return self.rebuild(reason=f"{self._index.tombstones} removed vectors still in the graph")
        self._unsaved += replayed
        saved = False
        if isinstance(self._index, HnswVectorIndex) and self._unsaved >= self.config.save_every:
            saved = self._save()
        if note:
            self._last_reason = note
        return SyncReport(
            self.kind,
            len(self),
            self._seq,
            replayed=replayed,
            reason=note,
            loaded_file=loaded,
            saved=saved,
            pruned=self._pruned if saved else 0,
            seconds=time.perf_counter() - started,
        )

    def _rebuild_for(self, problem: str, started: float) -> SyncReport:
        if problem != NO_FILE:
            log.warning("space %s: %s; rebuilding the index from the table", self.embedding_space_id, problem)
        report = self.rebuild(reason=problem)
        report.seconds = time.perf_counter() - started
        return report

    def rebuild(self, *, reason: str = "requested") -> SyncReport:
        """Recompute the index from the table (one read transaction, so vectors and sequence agree)."""
        with self._lock:
            started = time.perf_counter()
            with self.db.read() as tx:
                seq = newest_log_seq(tx, self.embedding_space_id)
                ids, matrix = read_current_vectors(tx, self.embedding_space_id, self.dimensions)
            index = self._build(ids, matrix)
            del ids, matrix  # an HNSW graph now holds its own copy; the exact index adopted these arrays
            self._index, self._seq, self._unsaved = index, seq, 0
            saved = False
            if isinstance(index, HnswVectorIndex):
                saved = self._save()
            else:
                self._remove_files()
            self._last_reason = reason
            report = SyncReport(
                self.kind,
                len(self),
                seq,
                rebuilt=True,
                reason=reason,
                saved=saved,
                pruned=self._pruned if saved else 0,
                seconds=time.perf_counter() - started,
            )
            (log.info if report.kind == "hnsw" else log.debug)(
                "space %s index rebuilt: %s", self.embedding_space_id, report.to_json()
            )
            return report

    def save(self, *, only_if_changed: bool = False) -> bool:
        """Write the file now (normally done after every ``save_every`` replayed changes); with
        ``only_if_changed``, only when the graph holds changes its file does not."""
        with self._lock:
            if not isinstance(self._index, HnswVectorIndex) or (only_if_changed and not self._unsaved):
                return False
            return self._save()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "embedding_space_id": self.embedding_space_id,
                "kind": self.kind,
                "size": len(self),
                "seq": self._seq,
                "unsaved_changes": self._unsaved,
                "file": str(self.index_path) if self.index_path else None,
                "last_reason": self._last_reason,
            }

    # -- internals ---------------------------------------------------------------------------------

    def _build(self, ids: Ids, matrix: Matrix) -> ExactVectorIndex | HnswVectorIndex:
        if len(ids) < self.config.exact_threshold:
            return ExactVectorIndex.from_arrays(ids, matrix)
        index = self._new_hnsw()
        index.reserve(len(ids))
        for start in range(0, len(ids), ADD_BATCH):
            index.add(ids[start : start + ADD_BATCH], matrix[start : start + ADD_BATCH])
        return index

    def _new_hnsw(self) -> HnswVectorIndex:
        return HnswVectorIndex(
            self.dimensions,
            self.config.hnsw,
            exact_subset_max=self.config.filter_exact_max,
            exact_subset_fraction=self.config.filter_exact_fraction,
            vectors=self._table_vectors,
        )

    def _table_vectors(self, ids: Ids) -> tuple[Ids, Matrix]:
        """The vectors of live labels, for an exact search over an allowed subset: read from the table, which
        is their one other copy (the graph's ``get_items`` is several times slower)."""
        with self.db.read() as tx:
            return read_vectors(tx, self.embedding_space_id, self.dimensions, ids.tolist(), current_only=False)

    def _wrong_kind(self, size: int) -> bool:
        """Exact below the threshold, HNSW at or above it; halving the threshold on the way down avoids
        flapping between the two around the boundary."""
        if isinstance(self._index, HnswVectorIndex):
            return size < self.config.exact_threshold // 2
        return size >= self.config.exact_threshold

    def _replay(self, tx: Tx, newest: int) -> list[int]:
        """Apply log rows (self._seq, newest]: every touched id is dropped and re-read from the table. Returns
        the touched ids."""
        if newest <= self._seq:
            self._seq = newest
            return []
        touched = changed_embedding_ids(tx, self.embedding_space_id, self._seq, newest)
        assert self._index is not None
        if touched:
            self._index.remove(np.asarray(touched, dtype=np.int64))
            ids, matrix = read_vectors(tx, self.embedding_space_id, self.dimensions, touched)
            self._index.add(ids, matrix)
        self._seq = newest
        return touched

    def _verify(self, tx: Tx, saved_seq: int, touched: Sequence[int]) -> str | None:
        """A loaded (and replayed) graph against the table: the same ids, and a sample of the same vectors."""
        index = self._index
        assert isinstance(index, HnswVectorIndex)
        table_ids = current_embedding_ids(tx, self.embedding_space_id)
        graph_ids = index.ids
        if not np.array_equal(table_ids, graph_ids):
            missing = len(np.setdiff1d(table_ids, graph_ids))
            extra = len(np.setdiff1d(graph_ids, table_ids))
            return f"the graph's labels are not the table's ids ({missing} missing, {extra} not in the table)"
        fresh = set(touched)
        sample: set[int] = set()
        if len(table_ids):
            spread = np.unique(np.linspace(0, len(table_ids) - 1, min(SAMPLE_SPREAD, len(table_ids))).round())
            sample.update(int(table_ids[int(i)]) for i in spread)
        recent = recently_logged_ids(tx, self.embedding_space_id, saved_seq, 2 * SAMPLE_RECENT)
        sample.update([key for key in recent if key not in fresh][:SAMPLE_RECENT])
        sample.difference_update(fresh)  # just re-read from the table: nothing to learn from them
        ids, want = read_vectors(tx, self.embedding_space_id, self.dimensions, sorted(sample))
        if not len(ids):
            return None
        got = index.graph_vectors(ids)
        wrong = np.flatnonzero(np.abs(got - want).max(axis=1) > VECTOR_TOLERANCE)
        if len(wrong):
            return (
                f"{len(wrong)} of {len(ids)} sampled vectors in the graph differ from the table's "
                f"(e.g. embedding {int(ids[wrong[0]])})"
            )
        return None

    # -- the files ---------------------------------------------------------------------------------

    def _folder_usable(self) -> Path | None:
        """The folder when it exists as a directory; None when it does not exist; an error when something
        else is in its place."""
        folder = self.folder
        if folder is None or not folder.exists():
            return None
        if not folder.is_dir():
            raise IndexFolderError(folder, "exists but is not a directory (move it out of the way)")
        return folder

    def _writable_folder(self) -> Path:
        folder = self.folder
        assert folder is not None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise IndexFolderError(folder, "exists but is not a directory (move it out of the way)") from None
        except OSError as exc:
            raise IndexFolderError(folder, f"cannot be created ({exc.strerror or exc})") from exc
        if not folder.is_dir():
            raise IndexFolderError(folder, "exists but is not a directory (move it out of the way)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise IndexFolderError(folder, "is not writable by this process")
        return folder

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """The space's file lock, held across a save or a load (a fresh lock object each time: fork-safe)."""
        path, folder = self.lock_path, self.folder
        assert path is not None and folder is not None
        lock = FileLock(str(path), timeout=LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise IndexFolderError(
                folder, f"{path.name} is held by another process for more than {LOCK_TIMEOUT_S:.0f} s"
            ) from None
        except OSError as exc:
            raise IndexFolderError(folder, f"cannot lock {path.name} ({exc.strerror or exc})") from exc
        try:
            yield
        finally:
            lock.release()

    def _load_file(self) -> str | None:
        """Adopt the saved index when it passes the checks that need no replay; else the reason it does not."""
        folder = self._folder_usable()
        path, sidecar = self.index_path, self.sidecar_path
        if folder is None or path is None or sidecar is None or not (path.exists() or sidecar.exists()):
            return NO_FILE
        with self._file_lock():
            loaded = self._read_files(path, sidecar)
        if isinstance(loaded, str):
            return loaded
        self._index, self._seq, self._unsaved = loaded[0], loaded[1], 0
        return None

    def _read_files(self, path: Path, sidecar: Path) -> tuple[HnswVectorIndex, int] | str:
        if not sidecar.is_file():
            return f"{path.name} has no sidecar {sidecar.name}"
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"sidecar {sidecar.name} unreadable ({exc})"
        if not isinstance(meta, dict):
            return f"sidecar {sidecar.name} is not a JSON object"
        if meta.get("format") != SIDECAR_FORMAT or meta.get("library") != LIBRARY:
            return f"sidecar format {meta.get('format')!r} of {meta.get('library')!r}, expected {SIDECAR_FORMAT}"
        expected = {"embedding_space_id": self.embedding_space_id, "dimensions": self.dimensions}
        for key, value in expected.items():
            if meta.get(key) != value:
                return f"sidecar is for {key} {meta.get(key)!r}, not {value}"
        built = {"connectivity": self.config.hnsw.connectivity, "expansion_add": self.config.hnsw.expansion_add}
        if any((meta.get("params") or {}).get(key) != value for key, value in built.items()):
            return "the graph was built with other parameters"  # the search-time ef may change freely
        with self.db.read() as tx:
            ours = store_id(tx)
        if meta.get("store_id") != ours:
            return f"index file belongs to another database (store_id {meta.get('store_id')!r}, this one {ours!r})"
        if not path.is_file():
            return f"{path.name} is missing beside its sidecar"
        try:
            digest, size = _sha256(path)
        except OSError as exc:
            return f"{path.name} unreadable ({exc.strerror or exc})"
        if size != meta.get("graph_bytes") or digest != meta.get("graph_sha256"):
            return (
                f"{path.name} is not the graph its sidecar was saved with (sha256 {digest[:12]}, size {size}; the "
                f"sidecar says {str(meta.get('graph_sha256'))[:12]}, {meta.get('graph_bytes')})"
            )
        try:
            index = HnswVectorIndex.load(
                path,
                self.dimensions,
                self.config.hnsw,
                meta.get("index_state"),
                exact_subset_max=self.config.filter_exact_max,
                exact_subset_fraction=self.config.filter_exact_fraction,
                vectors=self._table_vectors,
            )
        except Exception as exc:  # a damaged file is rebuilt, whatever the library raised
            return f"{path.name} unreadable ({exc})"
        if len(index) != meta.get("count"):
            return f"{path.name} holds {len(index)} live vectors, its sidecar says {meta.get('count')}"
        return index, int(meta.get("seq", 0))

    def _save(self) -> bool:
        """Under the file lock: both files to temporary names, fsynced, renamed graph then sidecar; then prune
        the log rows the saved file holds. False (nothing written) when another process has already saved and
        pruned past this index's sequence: its file is newer than this one could be."""
        path, sidecar = self.index_path, self.sidecar_path
        index = self._index
        self._pruned = 0
        if path is None or sidecar is None or not isinstance(index, HnswVectorIndex):
            return False
        folder = self._writable_folder()
        tag = f"{os.getpid()}.{threading.get_ident()}"
        tmp_graph = path.with_name(f".{path.name}.{tag}.tmp")
        tmp_meta = sidecar.with_name(f".{sidecar.name}.{tag}.tmp")
        with self._file_lock():
            with self.db.read() as tx:
                ours = store_id(tx)
                pruned = log_pruned_through(tx, self.embedding_space_id)
            if pruned > self._seq:
                log.info(
                    "space %s: not saving the index at seq %s: a file at seq %s or later was saved already",
                    self.embedding_space_id,
                    self._seq,
                    pruned,
                )
                return False
            try:
                state = index.save(tmp_graph)
                digest, size = _sha256(tmp_graph, sync=True)
                meta = {
                    "format": SIDECAR_FORMAT,
                    "library": LIBRARY,
                    "store_id": ours,
                    "embedding_space_id": self.embedding_space_id,
                    "dimensions": self.dimensions,
                    "params": self.config.hnsw.to_json(),
                    "seq": self._seq,
                    "count": len(index),
                    "graph_sha256": digest,
                    "graph_bytes": size,
                    "index_state": state,
                    "saved_utc": utcnow().isoformat(),
                    "saved_by_pid": os.getpid(),
                }
                _write_synced(tmp_meta, json.dumps(meta, indent=2))
                tmp_graph.replace(path)
                tmp_meta.replace(sidecar)
                _fsync_folder(folder)
            except OSError as exc:
                where = exc.filename or path
                raise IndexFolderError(folder, f"cannot write {where} ({exc.strerror or exc})") from exc
            finally:
                for tmp in (tmp_graph, tmp_meta):
                    tmp.unlink(missing_ok=True)
            self._unsaved = 0
            self._pruned = self._prune()
        return True

    def _prune(self) -> int:
        """Delete the log rows the file just saved holds (called under the file lock)."""
        try:
            with self.db.write() as tx:
                return prune_embedding_log(tx, self.embedding_space_id, self._seq)
        except SQLAlchemyError as exc:  # the file is saved; the rows stay until the next save prunes them
            log.warning("space %s: could not prune the embedding log (%s)", self.embedding_space_id, exc)
            return 0

    def _remove_files(self) -> None:
        folder = self._folder_usable()
        path, sidecar = self.index_path, self.sidecar_path
        if folder is None or path is None or sidecar is None or not (path.exists() or sidecar.exists()):
            return
        with self._file_lock():
            for file in (sidecar, path):
                file.unlink(missing_ok=True)


def _sha256(path: Path, *, sync: bool = False) -> tuple[str, int]:
    """(hex sha256, size) of a file; with ``sync``, fsynced first."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        if sync:
            os.fsync(handle.fileno())
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the renames durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
