"""Content hashes and deterministic identifiers: the only place these formulas live."""

from __future__ import annotations

import hashlib


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
