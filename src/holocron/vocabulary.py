"""The names the system speaks in (job types and states, source types, providers, modes), with no imports.

Each tuple is defined here once and imported by the module that gives it meaning (``store.schema`` for job
states, ``extract`` for source types, ...). The command line reads them from here to build its help, so
that ``holocron --help`` does not load the database layer, the extractors or the model to list a choice.
"""

from __future__ import annotations

from typing import Literal, get_args

JOB_TYPES = ("CHUNK_SOURCE", "EMBED_CHUNKS", "REEMBED_SPACE", "RETRIEVE_TEST", "DRIFT_TEST")
JOB_STATUSES = ("NEW", "RUNNING", "SUCCEEDED", "FAILED", "DEADLETTER", "CANCELLED")
VISIBLE_STATUSES = ("pending", "chunked", "indexed", "stale", "error")
"""A source's status as shown: ``chunked``: chunked, but not every chunk has a vector in the space;
``stale``: in error, still serving its last good chunks (``--keep-last-good``)."""
EXCHANGE_TYPES = ("http", "mediawiki", "openalex", "llm", "file")
EXCHANGE_FORMATS = ("jsonl", "parquet")
SOURCE_TYPES = ("html", "mediawiki", "openalex", "text", "markdown")
"""The extractors, one per source type (``holocron.extract``)."""
ProviderName = Literal["local", "ollama", "openai"]
DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
"""Where the in-process models run; ``auto`` takes a GPU when torch sees one (``holocron.accelerator``)."""
SEARCH_MODES = ("vector", "keyword", "hybrid")
FUSIONS = ("rrf", "convex")
AGGREGATIONS = ("max", "sum2")
"""How chunk hits become a document ranking: the best chunk's score, or the sum of the two best chunks'."""
FILES_SOURCE_SYSTEM = "files"
"""The source system of pages ingested from local files (``holocron ingest PATH``)."""
