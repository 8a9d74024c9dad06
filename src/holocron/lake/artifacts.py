"""Writing run artifacts: the file first (atomically), then its row, so a row never points at nothing."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holocron.hashing import sha256_bytes
from holocron.store.database import Database, insert_ignoring_conflicts
from holocron.store.types import utcnow


@dataclass(frozen=True)
class Artifact:
    run_id: str
    artifact_type: str
    path: Path
    content_sha256: str
    byte_count: int


def artifact_path(
    lake_dir: Path, run_id: str, artifact_type: str, extension: str, *, runs: str = "vector_runs"
) -> Path:
    """``lake/<runs>/{run_id}/artifacts/{type}.{ext}``: ``vector_runs`` or ``llm_runs``."""
    return lake_dir / runs / run_id / "artifacts" / f"{artifact_type}.{extension}"


def encode_artifact(content: Any) -> bytes:
    """Bytes as given, text as UTF-8, anything else as indented, key-sorted JSON."""
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content, indent=2, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")


def write_file(path: Path, data: bytes) -> str:
    """Write ``data`` atomically (a temporary file, fsynced, renamed over ``path``); returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=f".{path.stem}.") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    Path(handle.name).replace(path)
    return sha256_bytes(data)


def write_artifact(
    db: Database, lake_dir: Path, run_id: str, artifact_type: str, content: Any, *, extension: str = "json"
) -> Artifact:
    """Write ``content`` (bytes, text, or a JSON-able value) and record it against the run."""
    data = encode_artifact(content)
    path = artifact_path(lake_dir, run_id, artifact_type, extension)
    digest = write_file(path, data)
    with db.write() as tx:
        tx.execute(
            insert_ignoring_conflicts(tx, tx.t.run_artifact, ["run_id", "artifact_type"]).values(
                run_id=run_id,
                artifact_type=artifact_type,
                uri=path.resolve().as_uri(),
                content_sha256=digest,
                byte_count=len(data),
                created_utc=utcnow(),
            )
        )
    return Artifact(run_id, artifact_type, path, digest, len(data))
