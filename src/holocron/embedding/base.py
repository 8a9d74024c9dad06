"""The provider contract: every embedding backend looks like this to the rest of the system."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from holocron.chunking import ChunkPolicy, Tokenizer
from holocron.identity import ModelIdentity, PreprocessPolicy, Purpose
from holocron.vectors import Matrix

__all__ = [
    "EmbeddingError",
    "EmbeddingProvider",
    "ModelIdentity",
    "PreprocessPolicy",
    "ProviderStats",
    "Purpose",
]


def tokenizer_of(provider: object) -> Tokenizer | None:
    """The provider's own tokenizer when it has one at hand (a local model), else None (a remote server)."""
    method = getattr(provider, "tokenizer", None)
    found = method() if callable(method) else None
    return found if isinstance(found, Tokenizer) else None


def loaded_device(provider: object) -> str | None:
    """Where an in-process provider's model runs, once it has loaded one (asking never loads it); None for a
    remote server or a model not loaded."""
    method = getattr(provider, "loaded_device", None)
    found = method() if callable(method) else None
    return found if isinstance(found, str) else None


def tokenizer_for_policy(provider: object, policy: ChunkPolicy) -> Tokenizer | None:
    """The tokenizer a policy counts with, checked against the one it names; None for a window policy."""
    if policy.algorithm != "structure-v1":
        return None
    tokenizer = tokenizer_of(provider)
    if tokenizer is None:
        raise EmbeddingError(
            f"chunk policy {policy.version} counts tokens with {policy.tokenizer}, and this provider has no "
            "tokenizer at hand: chunk with the local model, or set HOLOCRON_CHUNK_POLICY=window"
        )
    if tokenizer.name != policy.tokenizer:
        raise EmbeddingError(
            f"chunk policy {policy.version} counts tokens with {policy.tokenizer}, not this model's {tokenizer.name}"
        )
    return tokenizer


class EmbeddingError(RuntimeError):
    """A batch could not be embedded; nothing from it may be stored."""


@dataclass
class ProviderStats:
    """Counters for benchmarks and for proving that a rerun calls the model zero times."""

    calls: int = 0
    texts: int = 0
    seconds: float = 0.0


@runtime_checkable
class EmbeddingProvider(Protocol):
    stats: ProviderStats

    def identity(self) -> ModelIdentity:
        """The model as it is now (probing it if needed)."""
        ...

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        """One row per input, in input order, as float32."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts used to batch by token budget; an estimate is acceptable."""
        ...

    def close(self) -> None: ...
