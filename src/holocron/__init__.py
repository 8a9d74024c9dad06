"""Holocron: raw pages to lineage-tracked embeddings and bounded LLM evidence.

The public surface is what this module exports; everything else is an internal module. The CLI and the HTTP
API use only these names, so a library user has the same power as they do::

    from holocron import Holocron, load_settings

    with Holocron(load_settings(home=".holocron")) as holo:
        holo.ingest([Path("pages/")])
        holo.index()
        for hit in holo.search("When is Penny's birthday?", 5).hits:
            print(hit.score, hit.title, hit.text[:80])

Names are imported on first use (PEP 562), so ``import holocron`` costs nothing until one is touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from holocron._version import __version__

if TYPE_CHECKING:
    from holocron.chunking import ChunkPolicy
    from holocron.config import Settings, load_settings
    from holocron.evidence import BoundingPolicy, EvidenceBundle, EvidenceItem
    from holocron.identity import ModelIdentity, PreprocessPolicy, Purpose
    from holocron.retrieval import Hit, RetrievalConfig, SearchFilters, SearchResult
    from holocron.service import Holocron, IndexReport, IngestReport
    from holocron.store.database import Database
    from holocron.store.spaces import EmbeddingSpace

_EXPORTS: dict[str, str] = {
    "BoundingPolicy": "holocron.evidence",
    "ChunkPolicy": "holocron.chunking",
    "Database": "holocron.store.database",
    "EmbeddingSpace": "holocron.store.spaces",
    "EvidenceBundle": "holocron.evidence",
    "EvidenceItem": "holocron.evidence",
    "Hit": "holocron.retrieval",
    "Holocron": "holocron.service",
    "IndexReport": "holocron.service",
    "IngestReport": "holocron.service",
    "ModelIdentity": "holocron.identity",
    "PreprocessPolicy": "holocron.identity",
    "Purpose": "holocron.identity",
    "RetrievalConfig": "holocron.retrieval",
    "SearchFilters": "holocron.retrieval",
    "SearchResult": "holocron.retrieval",
    "Settings": "holocron.config",
    "load_settings": "holocron.config",
}

__all__ = [
    "BoundingPolicy",
    "ChunkPolicy",
    "Database",
    "EmbeddingSpace",
    "EvidenceBundle",
    "EvidenceItem",
    "Hit",
    "Holocron",
    "IndexReport",
    "IngestReport",
    "ModelIdentity",
    "PreprocessPolicy",
    "Purpose",
    "RetrievalConfig",
    "SearchFilters",
    "SearchResult",
    "Settings",
    "__version__",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'holocron' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
