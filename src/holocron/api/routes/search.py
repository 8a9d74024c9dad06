"""Search and evidence, with the CLI's options; both are timed into the search latency histogram.

Requests run side by side: nothing here serialises them. A provider whose model cannot take two batches at once
(the in-process one) holds its own lock around the model call alone, so keyword ranking, vector search and the
query log of other requests go on meanwhile.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException

from holocron.api.deps import State
from holocron.api.models import EvidenceRequest, SearchRequest, SearchResponse, page_url
from holocron.evidence import BoundingPolicy
from holocron.retrieval.search import Hit

router = APIRouter(prefix="/api", tags=["search"])

UNKNOWN_RUN: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid body, or a run_id that names no run."}}


def source_url(hit: Hit) -> str:
    """The page's own address, else this API's link to the source."""
    return page_url(hit) or f"/api/sources/{quote(hit.source_id, safe='/:')}"


def _known_run(state: State, run_id: str | None) -> None:
    """The query log refers to its run: one that does not exist is the caller's mistake, said before searching."""
    if run_id is not None and state.holocron.run(run_id) is None:
        raise HTTPException(status_code=422, detail=f"run_id: no run {run_id!r}")


@router.post("/search", response_model=SearchResponse, summary="The k best chunks for a query.", responses=UNKNOWN_RUN)
def search(body: SearchRequest, state: State) -> SearchResponse:
    _known_run(state, body.run_id)
    try:
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
    return SearchResponse.from_result(result, source_url, state.paths)


@router.post("/evidence", summary="Search, then bound the hits into a stored evidence bundle.", responses=UNKNOWN_RUN)
def evidence(body: EvidenceRequest, state: State) -> dict[str, Any]:
    settings = state.holocron.settings
    _known_run(state, body.run_id)
    try:
        policy = BoundingPolicy.from_settings(
            settings,
            max_items=body.max_items,
            max_total_bytes=body.max_total_bytes,
            max_item_bytes=body.max_item_bytes,
        )
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
    out: dict[str, Any] = state.paths.public(bundle.to_json())
    return out
