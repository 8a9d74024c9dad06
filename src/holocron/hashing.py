"""Content hashes and deterministic identifiers: the only place these formulas live."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hash of the UTF-8 encoding; the version stamp of any stored text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def source_id_for(source_system: str, resource_id: str) -> str:
    """A source is named by where it came from, not by its content, so edits keep its id."""
    return f"{source_system}:{resource_id}"


def chunk_id_for(source_id: str, start: int, end: int, policy_version: str, content_sha256: str) -> str:
    """Deterministic chunk id: same source, window, policy and text give the same id; any change, a new one."""
    key = f"{source_id}\x1f{start}\x1f{end}\x1f{policy_version}\x1f{content_sha256}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def evidence_id_for(chunk_id: str, content_sha256: str) -> str:
    """Stable across reruns and independent of rank: an LLM citation stays valid."""
    return "ev_" + hashlib.sha256(f"{chunk_id}\x1f{content_sha256}".encode()).hexdigest()[:16]


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_version(path: Path) -> tuple[str, int, int, int]:
    """A file's resolved path, size, modification time and inode: what changes when it is written again."""
    resolved = path.resolve()
    seen = resolved.stat()
    return str(resolved), seen.st_size, seen.st_mtime_ns, seen.st_ino


def file_sha256(path: Path, remember_in: Path | None = None) -> str:
    """Hex sha256 of a file (a model's weights: its identity), hashed once per version of the file.

    A version is the file's resolved path, size, modification time and inode, as ``make`` and git's index trust a
    file they have seen: a file written again is hashed again. Remembered for the process, and with
    ``remember_in`` in that folder too, so that a new process does not hash 90 MB of weights before it answers
    (a tenth of a cold search). A folder that cannot be written only costs the next process the hashing.
    """
    key = file_version(path)
    digest = _FILE_DIGESTS.get(key)
    if digest is not None:
        return digest
    note = remember_in / "digests" / sha256_text("\x1f".join(map(str, key)))[:32] if remember_in else None
    if note is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            remembered = note.read_text().strip()
            if _HEX_DIGEST.fullmatch(remembered):
                _FILE_DIGESTS[key] = remembered
                return remembered
    with Path(key[0]).open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    _FILE_DIGESTS[key] = digest
    if note is not None:
        partial = note.with_name(f".{note.name}.{os.getpid()}.partial")
        try:
            note.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(digest)
            partial.replace(note)  # whole or absent: a reader never sees half a digest
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return digest
