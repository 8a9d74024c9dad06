"""BEIR-format data sets: ``corpus.jsonl``, ``queries.jsonl`` and a ``qrels`` TSV, and their ingestion.

A BEIR document becomes one plain-text source whose first line is the title: the text extractor keeps that
line as the source's title and as the first line of the first chunk, so both the dense and the keyword index
see the title next to the abstract it names (titles carry many of the claim's key terms).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from holocron.hashing import sha256_text
from holocron.store.sources import RawRecord
from holocron.store.types import utcnow

BEIR_SOURCE_SYSTEM = "beir"


@dataclass(frozen=True)
class BeirDocument:
    doc_id: str
    title: str
    text: str

    def payload(self) -> str:
        """Title line, blank line, text: the shape the plain-text extractor reads a title from."""
        title = " ".join(self.title.split())
        body = self.text.strip()
        return f"{title}\n\n{body}" if title else body


def read_corpus(path: Path) -> Iterator[BeirDocument]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                yield BeirDocument(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""))


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {doc id: graded relevance}; a header line (``query-id``) is skipped, zero grades kept."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue
            qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = int(parts[2])
    return qrels


def source_resource_id(doc_id: str) -> str:
    return doc_id


def doc_id_of_source(source_id: str) -> str:
    """Inverse of the source id formula for BEIR sources (``beir:<doc id>``)."""
    return source_id.split(":", 1)[1] if ":" in source_id else source_id


def corpus_records(documents: Iterator[BeirDocument], *, tag: str) -> Iterator[RawRecord]:
    now = utcnow()
    for doc in documents:
        payload = doc.payload()
        if not payload.strip():
            continue
        yield RawRecord(
            source_system=BEIR_SOURCE_SYSTEM,
            resource_id=source_resource_id(doc.doc_id),
            request_uri=f"beir:{tag}/{doc.doc_id}",
            source_type="text",
            content_type="text/plain",
            payload=payload,
            content_sha256=sha256_text(payload),
            fetched_at_utc=now,
            tags=(tag,),
        )
