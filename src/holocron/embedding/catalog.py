"""Known embedding models: the task prefixes they were trained with, their dimensions and input windows.

The prefixes matter most: a model trained with ``search_document:`` / ``search_query:`` (nomic-embed-text) or
``passage:`` / ``query:`` (e5) retrieves noticeably worse without them, and documents and queries embedded with
different prefixes do not belong together. The prefixes chosen here go into the space's preprocess policy.

Lookup is by model name as any provider spells it: ``nomic-embed-text``, ``nomic-embed-text:v1.5``,
``nomic-ai/nomic-embed-text-v1.5``, ``intfloat/e5-base-v2`` and ``BAAI/bge-small-en-v1.5`` all resolve.
Servers that report dimensions and windows themselves (Ollama's ``/api/show``) take precedence over this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from holocron.embedding.base import PreprocessPolicy
from holocron.identity import split_model_ref

# The retrieval instruction used by the BGE English models, mxbai and arctic-embed for queries only.
_BGE_QUERY = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class KnownModel:
    """What the model's authors publish about it."""

    family: str
    pattern: str  # a regular expression over the normalised name (lower case, no namespace, no tag)
    dimensions: int | None
    max_input_tokens: int | None
    document_prefix: str = ""
    query_prefix: str = ""
    normalized: bool | None = None

    @property
    def preprocess(self) -> PreprocessPolicy:
        return PreprocessPolicy(document_prefix=self.document_prefix, query_prefix=self.query_prefix)


CATALOG: tuple[KnownModel, ...] = (
    KnownModel("nomic-embed-text", r"nomic-embed-text(-v1(\.5)?)?", 768, 8192, "search_document: ", "search_query: "),
    KnownModel("nomic-embed-text-v2", r"nomic-embed-text-v2(-moe)?", 768, 512, "search_document: ", "search_query: "),
    KnownModel("e5", r"(multilingual-)?e5-small(-v2)?", 384, 512, "passage: ", "query: "),
    KnownModel("e5", r"(multilingual-)?e5-base(-v2)?", 768, 512, "passage: ", "query: "),
    KnownModel("e5", r"(multilingual-)?e5-large(-v2)?", 1024, 512, "passage: ", "query: "),
    KnownModel("bge", r"bge-small-en(-v1\.5)?", 384, 512, "", _BGE_QUERY, True),
    KnownModel("bge", r"bge-base-en(-v1\.5)?", 768, 512, "", _BGE_QUERY, True),
    KnownModel("bge", r"bge-large(-en)?(-v1\.5)?", 1024, 512, "", _BGE_QUERY, True),
    KnownModel("bge-m3", r"bge-m3", 1024, 8192, normalized=True),
    KnownModel("mxbai-embed-large", r"mxbai-embed-large(-v1)?", 1024, 512, "", _BGE_QUERY),
    KnownModel("snowflake-arctic-embed", r"snowflake-arctic-embed(-l|:?335m)?(-v1\.5)?", 1024, 512, "", _BGE_QUERY),
    KnownModel("snowflake-arctic-embed", r"snowflake-arctic-embed(-m|:?110m)(-v1\.5)?", 768, 512, "", _BGE_QUERY),
    KnownModel("snowflake-arctic-embed", r"snowflake-arctic-embed(-s|:?33m)", 384, 512, "", _BGE_QUERY),
    KnownModel("all-minilm", r"all-minilm(-l6-v2|:22m)?", 384, 256, normalized=True),
    KnownModel("all-minilm", r"all-minilm(-l12-v2|:33m)", 384, 256, normalized=True),
    KnownModel("all-mpnet", r"all-mpnet-base-v2", 768, 384, normalized=True),
    KnownModel("paraphrase-multilingual", r"paraphrase-multilingual(-minilm-l12-v2)?", 384, 128),
    KnownModel("granite-embedding", r"granite-embedding(-30m|-278m)?.*", None, 512),
    KnownModel("openai", r"text-embedding-3-small", 1536, 8191, normalized=True),
    KnownModel("openai", r"text-embedding-3-large", 3072, 8191, normalized=True),
    KnownModel("openai", r"text-embedding-ada-002", 1536, 8191, normalized=True),
)

_COMPILED = [(re.compile(model.pattern), model) for model in CATALOG]


parse_model_ref = split_model_ref  # the one parser of ``model[:tag]``, under the name this layer used


def normalise_name(name: str) -> str:
    """``BAAI/bge-small-en-v1.5`` -> ``bge-small-en-v1.5``; ``nomic-embed-text:latest`` -> ``nomic-embed-text``."""
    base = name.strip().lower().rsplit("/", 1)[-1]
    head, _, tag = base.partition(":")
    # Ollama puts the size in the tag for some families (snowflake-arctic-embed:335m); keep such tags.
    return f"{head}:{tag}" if tag and re.fullmatch(r"\d+[mb]", tag) else head


def lookup(name: str) -> KnownModel | None:
    """The catalog entry for a model name, or None for a model nobody told us about."""
    normalised = normalise_name(name)
    for pattern, model in _COMPILED:
        if pattern.fullmatch(normalised):
            return model
    return None


def preprocess_for(
    name: str, *, document_prefix: str | None = None, query_prefix: str | None = None
) -> PreprocessPolicy:
    """The prefixes to use: explicit settings first, then the catalog, else none."""
    known = lookup(name)
    return PreprocessPolicy(
        document_prefix=document_prefix if document_prefix is not None else (known.document_prefix if known else ""),
        query_prefix=query_prefix if query_prefix is not None else (known.query_prefix if known else ""),
    )
