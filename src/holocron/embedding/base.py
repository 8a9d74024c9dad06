"""The provider contract: every embedding backend looks like this to the rest of the system."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
