"""One vector index per embedding space, kept in step with the embedding table.

The table is the truth; the index is a cache of it that can always be recomputed. Every embedding insert or
delete appends a row to ``vector_embedding_log`` by trigger, in the same transaction as the change itself.
The index remembers the last log sequence it reflects (in memory, and in the JSON sidecar of its file), so
catching up is: replay the log rows after that sequence, then compare the index's size with the table's.

* A crash between the table write and the index write leaves the file behind the log: the next start
  replays the missing rows. Replay is idempotent (every touched id is removed, then re-read from the table),
  so a sidecar that is older than its file (a crash between the two renames) is harmless too.
* Anything else that could leave the two apart (a lost log, a damaged file, a copied database) shows up
  as a size mismatch or an unreadable file and triggers a rebuild from the table.

Below ``exact_threshold`` vectors the index is a numpy matrix (exact, no file); at or above it, hnswlib HNSW,
saved beside the SQLite file as ``index/space-<id>.hnsw`` with ``index/space-<id>.json``. Removed vectors stay
in the graph as tombstones until they pass ``max_tombstone_fraction`` of it; then the index is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, and_, func, select

from holocron.retrieval.vector_index import (
    ExactVectorIndex,
    HnswParams,
    HnswVectorIndex,
    Ranked,
)
from holocron.store.database import Database, Tx
from holocron.store.types import utcnow
from holocron.vectors import Matrix

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
LIBRARY = "hnswlib"


def _embedding_log(tx: Tx) -> Table:
    if tx.t.embedding_log is None:
        raise RuntimeError("the embedded vector index runs on SQLite only (PostgreSQL uses pgvector)")
    return tx.t.embedding_log


@dataclass(frozen=True)
class IndexConfig:
    """The index's knobs (see ``docs/retrieval.md`` for how each default was measured)."""

    exact_threshold: int = 20_000
    hnsw: HnswParams = field(default_factory=HnswParams)
    save_every: int = 1_000  # replayed changes after which the file is rewritten
    filter_exact_max: int = 50_000
    filter_exact_fraction: float = 0.0
    max_tombstone_fraction: float = 0.2  # deleted-but-still-in-the-graph share that triggers a rebuild


@dataclass
class SyncReport:
    """What one catch-up did."""

    kind: str
    size: int
    seq: int
    replayed: int = 0
    rebuilt: bool = False
    reason: str = ""
    loaded_file: bool = False
    saved: bool = False
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
            "seconds": round(self.seconds, 4),
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
        self._lock = threading.RLock()

    # -- paths -------------------------------------------------------------------------------------

    @property
    def index_path(self) -> Path | None:
        return self.folder / f"space-{self.embedding_space_id}.hnsw" if self.folder else None

    @property
    def sidecar_path(self) -> Path | None:
        return self.folder / f"space-{self.embedding_space_id}.json" if self.folder else None

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
            started = time.perf_counter()
            loaded = False
            if self._index is None:
                loaded = self._load_file()
                if not loaded:
                    report = self.rebuild(reason="no usable index file")
                    return report
            with self.db.read() as tx:
                newest = self._log_max(tx)
                if newest == self._seq and not loaded:
                    return SyncReport(self.kind, len(self), self._seq, seconds=time.perf_counter() - started)
                replayed = self._replay(tx, newest)
                expected = self._table_count(tx)
            if len(self) != expected:
                reason = f"index holds {len(self)} vectors, the table {expected}"
                log.warning("space %s: %s; rebuilding", self.embedding_space_id, reason)
                return self.rebuild(reason=reason)
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
            return SyncReport(
                self.kind,
                len(self),
                self._seq,
                replayed=replayed,
                loaded_file=loaded,
                saved=saved,
                seconds=time.perf_counter() - started,
            )

    def rebuild(self, *, reason: str = "requested") -> SyncReport:
        """Recompute the index from the table (one read transaction, so vectors and sequence agree)."""
        with self._lock:
            started = time.perf_counter()
            with self.db.read() as tx:
                seq = self._log_max(tx)
                ids, matrix = self._load_vectors(tx)
            index = self._new_index(len(ids))
            for start in range(0, len(ids), 50_000):
                index.add(ids[start : start + 50_000], matrix[start : start + 50_000])
            self._index, self._seq, self._unsaved = index, seq, 0
            saved = False
            if isinstance(index, HnswVectorIndex):
                saved = self._save()
            else:
                self._remove_files()
            report = SyncReport(
                self.kind,
                len(self),
                seq,
                rebuilt=True,
                reason=reason,
                saved=saved,
                seconds=time.perf_counter() - started,
            )
            (log.info if report.kind == "hnsw" else log.debug)(
                "space %s index rebuilt: %s", self.embedding_space_id, report.to_json()
            )
            return report

    def save(self) -> bool:
        """Write the file now (normally done after every ``save_every`` replayed changes)."""
        with self._lock:
            return self._save() if isinstance(self._index, HnswVectorIndex) else False

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "embedding_space_id": self.embedding_space_id,
                "kind": self.kind,
                "size": len(self),
                "seq": self._seq,
                "unsaved_changes": self._unsaved,
                "file": str(self.index_path) if self.index_path else None,
            }

    # -- internals ---------------------------------------------------------------------------------

    def _new_index(self, size: int) -> ExactVectorIndex | HnswVectorIndex:
        if size < self.config.exact_threshold:
            return ExactVectorIndex(self.dimensions)
        return HnswVectorIndex(
            self.dimensions,
            self.config.hnsw,
            exact_subset_max=self.config.filter_exact_max,
            exact_subset_fraction=self.config.filter_exact_fraction,
        )

    def _wrong_kind(self, size: int) -> bool:
        """Exact below the threshold, HNSW at or above it; halving the threshold on the way down avoids
        flapping between the two around the boundary."""
        if isinstance(self._index, HnswVectorIndex):
            return size < self.config.exact_threshold // 2
        return size >= self.config.exact_threshold

    def _log_max(self, tx: Tx) -> int:
        log = _embedding_log(tx)
        value = tx.execute(
            select(func.max(log.c.seq)).where(log.c.embedding_space_id == self.embedding_space_id)
        ).scalar()
        return int(value or 0)

    def _current(self) -> Any:
        """Embeddings of this space whose chunk still has the text they were made from."""
        c, e = self.db.t.chunk, self.db.t.embedding
        return and_(
            e.c.embedding_space_id == self.embedding_space_id,
            c.c.chunk_id == e.c.chunk_id,
            c.c.content_sha256 == e.c.input_content_sha256,
        )

    def _table_count(self, tx: Tx) -> int:
        c, e = tx.t.chunk, tx.t.embedding
        return int(tx.execute(select(func.count()).select_from(e).join(c, self._current())).scalar_one())

    def _load_vectors(self, tx: Tx, ids: Sequence[int] | None = None) -> tuple[np.ndarray, Matrix]:
        c, e = tx.t.chunk, tx.t.embedding
        out_ids: list[int] = []
        blobs: list[np.ndarray] = []
        batches = [None] if ids is None else [ids[i : i + 10_000] for i in range(0, len(ids), 10_000)]
        for batch in batches:
            query = select(e.c.embedding_id, e.c.vector).select_from(e).join(c, self._current())
            if batch is not None:
                query = query.where(e.c.embedding_id.in_(list(batch)))
            for row in tx.execute(query.order_by(e.c.embedding_id)):
                out_ids.append(int(row.embedding_id))
                blobs.append(row.vector)
        matrix = (
            np.vstack(blobs).astype(np.float32, copy=False)
            if blobs
            else np.zeros((0, self.dimensions), dtype=np.float32)
        )
        return np.asarray(out_ids, dtype=np.int64), matrix

    def _replay(self, tx: Tx, newest: int) -> int:
        """Apply log rows (self._seq, newest]: every touched id is dropped and re-read from the table."""
        if newest <= self._seq:
            self._seq = newest
            return 0
        log = _embedding_log(tx)
        rows = tx.execute(
            select(log.c.embedding_id)
            .where(
                log.c.embedding_space_id == self.embedding_space_id,
                log.c.seq > self._seq,
                log.c.seq <= newest,
            )
            .distinct()
        ).scalars()
        touched = sorted({int(value) for value in rows})
        assert self._index is not None
        if touched:
            self._index.remove(np.asarray(touched, dtype=np.int64))
            ids, matrix = self._load_vectors(tx, touched)
            self._index.add(ids, matrix)
        self._seq = newest
        return len(touched)

    def _sidecar(self) -> dict[str, Any] | None:
        path = self.sidecar_path
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _load_file(self) -> bool:
        """Adopt the saved index when its sidecar matches this space and these settings."""
        meta, path = self._sidecar(), self.index_path
        if meta is None or path is None or not path.is_file():
            return False
        expected = {
            "format": SIDECAR_FORMAT,
            "library": LIBRARY,
            "embedding_space_id": self.embedding_space_id,
            "dimensions": self.dimensions,
            "params": self.config.hnsw.to_json(),
        }
        if any(meta.get(key) != value for key, value in expected.items() if key != "params"):
            return False
        built = {"connectivity": self.config.hnsw.connectivity, "expansion_add": self.config.hnsw.expansion_add}
        if any((meta.get("params") or {}).get(key) != value for key, value in built.items()):
            return False  # a graph built differently; the search-time ef may change freely
        try:
            index = HnswVectorIndex.load(
                path,
                self.dimensions,
                self.config.hnsw,
                meta.get("index_state"),
                exact_subset_max=self.config.filter_exact_max,
                exact_subset_fraction=self.config.filter_exact_fraction,
            )
        except Exception as exc:  # a damaged file is rebuilt, whatever the library raised
            log.warning("space %s: index file %s unreadable (%s)", self.embedding_space_id, path, exc)
            return False
        self._index, self._seq, self._unsaved = index, int(meta.get("seq", 0)), 0
        return True

    def _save(self) -> bool:
        """Write the file, then the sidecar, each by atomic rename: the sidecar never claims more."""
        path, sidecar = self.index_path, self.sidecar_path
        if path is None or sidecar is None or not isinstance(self._index, HnswVectorIndex):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        state = self._index.save(tmp)
        tmp.replace(path)
        meta = {
            "format": SIDECAR_FORMAT,
            "library": LIBRARY,
            "embedding_space_id": self.embedding_space_id,
            "dimensions": self.dimensions,
            "params": self.config.hnsw.to_json(),
            "seq": self._seq,
            "count": len(self._index),
            "index_state": state,
            "saved_utc": utcnow().isoformat(),
        }
        tmp_meta = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp_meta.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        tmp_meta.replace(sidecar)
        self._unsaved = 0
        return True

    def _remove_files(self) -> None:
        for path in (self.sidecar_path, self.index_path):
            if path is not None and path.exists():
                path.unlink()
