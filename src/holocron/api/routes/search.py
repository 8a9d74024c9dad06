"""Search and evidence, with the CLI's options; both are timed into the search latency histogram."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException

from holocron.api.deps import State
from holocron.api.models import EvidenceRequest, SearchRequest, SearchResponse, page_url
from holocron.evidence import BoundingPolicy
from holocron.retrieval.search import Hit

router = APIRouter(prefix="/api", tags=["search"])


def source_url(hit: Hit) -> str:
    """The page's own address, else this API's link to the source."""
    return page_url(hit) or f"/api/sources/{quote(hit.source_id, safe='/:')}"


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
    return SearchResponse.from_result(result, source_url)


@router.post("/evidence", summary="Search, then bound the hits into a stored evidence bundle.")
def evidence(body: EvidenceRequest, state: State) -> dict[str, Any]:
    settings = state.holocron.settings
    try:
        policy = BoundingPolicy.from_settings(
            settings,
            max_items=body.max_items,
            max_total_bytes=body.max_total_bytes,
            max_item_bytes=body.max_item_bytes,
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
