"""A model's weights are hashed once per version of the file: remembered in the process and in the model cache,
hashed again when the file is written again, and never trusted from a note that is not a digest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from holocron import hashing
from holocron.embedding.local import LocalProvider, bundled_model_path


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_FILE_DIGESTS", {})  # each test starts as a new process would


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def notes(folder: Path) -> list[Path]:
    return sorted((folder / "digests").iterdir())


def test_a_new_process_reads_the_digest_from_the_cache_instead_of_hashing(tmp_path: Path) -> None:
    weights, cache = tmp_path / "model.safetensors", tmp_path / "cache"
    weights.write_bytes(os.urandom(1 << 20))
    assert hashing.file_sha256(weights, cache) == sha256(weights)
    [note] = notes(cache)
    assert note.read_text() == sha256(weights)
    hashing._FILE_DIGESTS.clear()
    note.write_text("ab" * 32)  # what the next process finds there is what it answers: it did not hash
    assert hashing.file_sha256(weights, cache) == "ab" * 32


def test_a_file_written_again_is_hashed_again(tmp_path: Path) -> None:
    weights, cache = tmp_path / "model.safetensors", tmp_path / "cache"
    weights.write_bytes(b"first weights")
    first = hashing.file_sha256(weights, cache)
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    assert hashing.file_sha256(weights, cache) == sha256(weights) != first
    assert len(notes(cache)) == 2  # one note per version of the file


@pytest.mark.parametrize("note", ["", "sha256:" + "ab" * 32, "AB" * 32, "ab" * 31, "\xff"])
def test_a_note_that_is_not_a_digest_is_ignored_and_replaced(tmp_path: Path, note: str) -> None:
    weights, cache = tmp_path / "model.safetensors", tmp_path / "cache"
    weights.write_bytes(b"weights")
    hashing.file_sha256(weights, cache)
    [path] = notes(cache)
    path.write_text(note, encoding="latin-1")
    hashing._FILE_DIGESTS.clear()
    assert hashing.file_sha256(weights, cache) == sha256(weights)
    assert path.read_text() == sha256(weights)


def test_a_cache_that_cannot_be_written_only_costs_the_hashing(tmp_path: Path) -> None:
    weights, blocked = tmp_path / "model.safetensors", tmp_path / "blocked"
    weights.write_bytes(b"weights")
    blocked.write_text("a file where the cache folder would be")
    assert hashing.file_sha256(weights, blocked) == sha256(weights)
    assert hashing.file_sha256(weights) == sha256(weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "model.safetensors"]  # nothing half-written


def test_the_local_models_identity_is_its_weights_digest_remembered_in_the_model_cache(tmp_path: Path) -> None:
    identity = LocalProvider(cache_dir=tmp_path).identity()
    weights = bundled_model_path() / "model.safetensors"
    assert identity.model_digest == f"sha256:{sha256(weights)}"
    [note] = notes(tmp_path)
    assert note.read_text() == sha256(weights)
