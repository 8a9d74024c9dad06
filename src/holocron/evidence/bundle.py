"""Search hits to a bounded evidence bundle: what the LLM reads and cites.

Evidence ids come from the chunk id and its text hash (``hashing.evidence_id_for``), never from the rank, so
the same passage keeps its id across questions and reruns. Each item carries the source reference and the
character offsets of exactly the text included, so a citation can be checked against the source.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from holocron.evidence.policy import MIN_ITEM_BYTES, BoundingPolicy, cut_utf8, utf8_len
from holocron.hashing import evidence_id_for
from holocron.retrieval.search import Hit

BUNDLE_TYPE = "retrieval"


@dataclass(frozen=True)
class EvidenceItem:
    sequence: int
    evidence_id: str
    chunk_id: str
    source_id: str
    source_type: str
    source_system: str
    title: str | None
    source_ref: dict[str, Any]
    start_offset: int  # character offsets into the source's extracted text, of the included text only
    end_offset: int
    text: str
    rank: int
    score: float
    original_bytes: int
    truncated: bool

    @property
    def bytes(self) -> int:
        return utf8_len(self.text)

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence_id": self.evidence_id,
            "source": {
                "source_id": self.source_id,
                "title": self.title,
                "source_type": self.source_type,
                "source_system": self.source_system,
                "ref": self.source_ref,
            },
            "chunk_id": self.chunk_id,
            "offsets": {"start": self.start_offset, "end": self.end_offset},
            "truncated": self.truncated,
            "text": self.text,
        }


@dataclass(frozen=True)
class CutRecord:
    """What the policy removed: a whole item (``dropped``) or its tail (``truncated``)."""

    evidence_id: str
    rank: int
    action: str  # "dropped" or "truncated"
    reason: str  # "max_items", "max_total_bytes" or "max_item_bytes"
    original_bytes: int
    kept_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "evidence_id": self.evidence_id,
            "rank": self.rank,
            "action": self.action,
            "reason": self.reason,
            "original_bytes": self.original_bytes,
            "kept_bytes": self.kept_bytes,
        }


@dataclass(frozen=True)
class EvidenceBundle:
    bundle_id: str
    query: str | None
    retrieval_id: str | None
    policy: BoundingPolicy
    items: list[EvidenceItem]
    cut: list[CutRecord] = field(default_factory=list)
    bundle_type: str = BUNDLE_TYPE

    @property
    def total_bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    def stats(self) -> dict[str, Any]:
        return {
            "items": len(self.items),
            "total_bytes": self.total_bytes,
            "hits_considered": len(self.items) + sum(1 for c in self.cut if c.action == "dropped"),
            "dropped": sum(1 for c in self.cut if c.action == "dropped"),
            "truncated": sum(1 for c in self.cut if c.action == "truncated"),
            "cut": [c.to_json() for c in self.cut],
        }

    def to_rows(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The bundle as ``llm.evidence_bundle`` and ``llm.evidence_item`` column values."""
        bundle = {
            "bundle_id": self.bundle_id,
            "bundle_type": self.bundle_type,
            "query_text": self.query,
            "retrieval_id": self.retrieval_id or None,
            "policy_json": self.policy.to_json(),
            "stats_json": self.stats(),
        }
        items = [
            {
                "bundle_id": self.bundle_id,
                "sequence": item.sequence,
                "evidence_id": item.evidence_id,
                "content_type": "text/plain",
                "content_text": item.text,
                "chunk_id": item.chunk_id,
                "content_ref_json": {
                    "chunk_id": item.chunk_id,
                    "source_id": item.source_id,
                    "source_ref": item.source_ref,
                    "start_offset": item.start_offset,
                    "end_offset": item.end_offset,
                },
                "metadata_json": {
                    "title": item.title,
                    "source_type": item.source_type,
                    "source_system": item.source_system,
                    "rank": item.rank,
                    "score": item.score,
                    "original_bytes": item.original_bytes,
                    "truncated": item.truncated,
                },
            }
            for item in self.items
        ]
        return bundle, items

    def to_json(self) -> dict[str, Any]:
        """The document the LLM is given: question, policy, items in order, and what was cut."""
        return {
            "bundle_id": self.bundle_id,
            "bundle_type": self.bundle_type,
            "query": self.query,
            "retrieval_id": self.retrieval_id,
            "policy": self.policy.to_json(),
            "items": [item.to_json() for item in self.items],
            "stats": self.stats(),
        }


def build_bundle(
    hits: Sequence[Hit],
    policy: BoundingPolicy,
    *,
    query: str | None = None,
    retrieval_id: str | None = None,
    bundle_id: str | None = None,
) -> EvidenceBundle:
    """Apply the policy to hits in rank order: item count, then bytes per item, then the total budget."""
    items: list[EvidenceItem] = []
    cut: list[CutRecord] = []
    used = 0
    seen: set[str] = set()
    for hit in hits:
        evidence_id = evidence_id_for(hit.chunk_id, hit.content_sha256)
        if evidence_id in seen:
            continue
        seen.add(evidence_id)
        original = utf8_len(hit.text)
        if len(items) >= policy.max_items:
            cut.append(CutRecord(evidence_id, hit.rank, "dropped", "max_items", original, 0))
            continue
        budget = min(policy.max_item_bytes, policy.max_total_bytes - used)
        reason = "max_item_bytes" if policy.max_item_bytes <= policy.max_total_bytes - used else "max_total_bytes"
        text = hit.text if original <= budget else cut_utf8(hit.text, budget)
        if original > budget and (budget < min(MIN_ITEM_BYTES, policy.max_item_bytes) or not text.strip()):
            cut.append(CutRecord(evidence_id, hit.rank, "dropped", reason, original, 0))
            continue
        truncated = len(text) < len(hit.text)
        if truncated:
            cut.append(CutRecord(evidence_id, hit.rank, "truncated", reason, original, utf8_len(text)))
        items.append(
            EvidenceItem(
                sequence=len(items) + 1,
                evidence_id=evidence_id,
                chunk_id=hit.chunk_id,
                source_id=hit.source_id,
                source_type=hit.source_type,
                source_system=hit.source_system,
                title=hit.title,
                source_ref=hit.source_ref,
                start_offset=hit.start_offset,
                end_offset=hit.start_offset + len(text),
                text=text,
                rank=hit.rank,
                score=hit.score,
                original_bytes=original,
                truncated=truncated,
            )
        )
        used += utf8_len(text)
    return EvidenceBundle(
        bundle_id=bundle_id or str(uuid.uuid4()),
        query=query,
        retrieval_id=retrieval_id,
        policy=policy,
        items=items,
        cut=cut,
    )


def chunk_hits(rows: Sequence[Mapping[str, Any]]) -> list[Hit]:
    """A source's own chunks (rows of ``vector.chunk`` with the source's title and system) as hits in
    reading order: the evidence of a question about one page, bounded like any other."""
    return [Hit.of_chunk(position, 0.0, row) for position, row in enumerate(rows, start=1)]


def rebound(bundle: EvidenceBundle, policy: BoundingPolicy, *, reason: str) -> EvidenceBundle:
    """The bundle bounded again by a tighter policy (a prompt over the model's context window): the same
    items in the same order, cut further; every new cut is recorded with ``reason``."""
    hits = [
        Hit(
            rank=item.rank,
            score=item.score,
            chunk_id=item.chunk_id,
            source_id=item.source_id,
            source_type=item.source_type,
            source_system=item.source_system,
            title=item.title,
            text=item.text,
            start_offset=item.start_offset,
            end_offset=item.end_offset,
            content_sha256="",
            source_ref=item.source_ref,
        )
        for item in bundle.items
    ]
    tighter = build_bundle(
        hits, policy, query=bundle.query, retrieval_id=bundle.retrieval_id, bundle_id=bundle.bundle_id
    )
    # The hits above carry no text hash: map their ids back to the items' own (stable) evidence ids.
    original = {evidence_id_for(item.chunk_id, ""): item for item in bundle.items}
    items = [
        replace(
            item,
            evidence_id=original[item.evidence_id].evidence_id,
            original_bytes=original[item.evidence_id].original_bytes,
            truncated=item.truncated or original[item.evidence_id].truncated,
        )
        for item in tighter.items
    ]
    cuts = [replace(cut, evidence_id=original[cut.evidence_id].evidence_id, reason=reason) for cut in tighter.cut]
    return replace(tighter, items=items, cut=[*bundle.cut, *cuts], bundle_type=bundle.bundle_type)


def render_text(bundle: EvidenceBundle) -> str:
    """The bundle as prompt text: one block per item, headed by the id the LLM cites."""
    blocks = []
    for item in bundle.items:
        title = item.title or item.source_id
        header = f"[{item.evidence_id}] {title} ({item.source_id}, chars {item.start_offset}-{item.end_offset})"
        blocks.append(header + ("  [truncated]" if item.truncated else "") + "\n" + item.text)
    return "\n\n".join(blocks)
