"""What makes two vectors comparable: the model's identity and how text becomes its input.

These are plain values, below both the providers (which report them) and the store (which keys embedding
spaces on them), so that neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Purpose(StrEnum):
    """Some models embed documents and queries differently (task prefixes)."""

    DOCUMENT = "document"
    QUERY = "query"


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

    @property
    def unit_vectors(self) -> bool:
        return stores_unit_vectors(normalized=self.normalized, distance_metric=self.distance_metric)


def stores_unit_vectors(*, normalized: bool, distance_metric: str) -> bool:
    """The one normalise rule: a space's vectors, documents and queries alike, are kept at unit length when
    its model says they are normalised or when it compares by cosine (then inner product is cosine)."""
    return normalized or distance_metric == "cosine"


def split_model_ref(ref: str, *, default_tag: str = "latest") -> tuple[str, str]:
    """``model[:tag]`` as Ollama reads it: the tag follows the last colon after the last slash (a registry host
    may carry a port), and defaults to ``latest``. ``nomic-embed-text`` -> (``nomic-embed-text``, ``latest``)."""
    text = ref.strip()
    if not text:
        raise ValueError("empty model name")
    slash, colon = text.rfind("/"), text.rfind(":")
    if colon > slash:
        name, tag = text[:colon], text[colon + 1 :]
        if not name:
            raise ValueError(f"model name missing in {ref!r}")
        return name, tag or default_tag
    return text, default_tag
