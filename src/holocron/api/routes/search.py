"""Search and evidence, with the CLI's options; both are timed into the search latency histogram."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException

from holocron.api.deps import State
from holocron.api.models import EvidenceRequest, HitOut, SearchRequest, SearchResponse
from holocron.evidence import BoundingPolicy
from holocron.retrieval.search import Hit

router = APIRouter(prefix="/api", tags=["search"])


def source_url(hit: Hit) -> str:
    for key in ("url", "uri", "request_uri"):
        value = hit.source_ref.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return f"/api/sources/{quote(hit.source_id, safe='/:')}"


@router.post("/search", response_model=SearchResponse, summary="The k best chunks for a query.")
def search(body: SearchRequest, state: State) -> SearchResponse:
    try:
        with state.model_lock:
            result = state.holocron.search(
                body.query,
                body.k,
                run_id=body.run_id,
                mode=body.mode,
                filters=body.filters.to_filters(),
                max_per_source=body.max_per_source,
                log=body.log,
            )
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return SearchResponse(
        retrieval_id=result.retrieval_id,
        query=result.query,
        space=result.space.name,
        mode=result.mode,
        latency_ms=round(result.latency_ms, 3),
        hits=[
            HitOut(
                rank=h.rank,
                score=h.score,
                chunk_id=h.chunk_id,
                source_id=h.source_id,
                source_type=h.source_type,
                source_system=h.source_system,
                title=h.title,
                text=h.text,
                start_offset=h.start_offset,
                end_offset=h.end_offset,
                source_ref=h.source_ref,
                source_url=source_url(h),
                vector_score=h.vector_score,
                keyword_score=h.keyword_score,
            )
            for h in result.hits
        ],
    )


@router.post("/evidence", summary="Search, then bound the hits into a stored evidence bundle.")
def evidence(body: EvidenceRequest, state: State) -> dict[str, Any]:
    settings = state.holocron.settings
    try:
        policy = BoundingPolicy(
            max_items=body.max_items or settings.evidence_max_items,
            max_total_bytes=body.max_total_bytes or settings.evidence_max_total_bytes,
            max_item_bytes=body.max_item_bytes or settings.evidence_max_item_bytes,
        )
        with state.model_lock:
            bundle = state.holocron.evidence(
                body.question,
                k=body.k,
                run_id=body.run_id,
                mode=body.mode,
                filters=body.filters.to_filters(),
                max_per_source=body.max_per_source,
                policy=policy,
                save=body.save,
            )
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    out: dict[str, Any] = bundle.to_json()
    return out
