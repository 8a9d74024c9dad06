"""The provider contract: every embedding backend looks like this to the rest of the system."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from holocron.vectors import Matrix


class Purpose(StrEnum):
    """Some models embed documents and queries differently (task prefixes)."""

    DOCUMENT = "document"
    QUERY = "query"


class EmbeddingError(RuntimeError):
    """A batch could not be embedded; nothing from it may be stored."""


@dataclass(frozen=True)
class PreprocessPolicy:
    """How text is turned into model input; stored with the space so index and query always match."""

    document_prefix: str = ""
    query_prefix: str = ""

    def apply(self, texts: Sequence[str], purpose: Purpose) -> list[str]:
        prefix = self.document_prefix if purpose is Purpose.DOCUMENT else self.query_prefix
        return [prefix + text for text in texts] if prefix else list(texts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PreprocessPolicy:
        data = data or {}
        return cls(
            document_prefix=str(data.get("document_prefix", "")),
            query_prefix=str(data.get("query_prefix", "")),
        )


@dataclass(frozen=True)
class ModelIdentity:
    """Everything that makes two vectors comparable; a change in any field is a new embedding space."""

    provider: str
    model_name: str
    model_tag: str
    model_digest: str
    dimensions: int
    max_input_tokens: int | None
    normalized: bool
    distance_metric: str = "cosine"
    endpoint_url: str | None = None
    preprocess: PreprocessPolicy = field(default_factory=PreprocessPolicy)


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
