"""Sources and embedding spaces: what is stored, and how much of it each space covers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from holocron.api.deps import PageParams, State
from holocron.api.models import Page, SourceOut, SpaceOut

router = APIRouter(prefix="/api", tags=["catalog"])

SourceStatus = Literal["pending", "chunked", "indexed", "stale", "error"]


@router.get("/sources", response_model=Page[SourceOut], summary="Registered sources, by id.")
def sources(
    state: State,
    page: PageParams,
    status: Annotated[SourceStatus | None, Query(description="Only this status.")] = None,
) -> Page[SourceOut]:
    listing = state.holocron.sources(status=status, limit=page.limit, offset=page.offset)
    items = [SourceOut.from_row(row, state.paths) for row in listing.items]
    return Page[SourceOut].of(items, listing.total, page.limit, page.offset)


@router.get(
    "/sources/{source_id:path}",
    response_model=SourceOut,
    summary="One source.",
    responses={404: {"description": "No such source."}},
)
def source(source_id: str, state: State) -> SourceOut:
    found = state.holocron.source(source_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no source {source_id!r}")
    return SourceOut.from_row(found, state.paths)


@router.delete(
    "/sources/{source_id:path}",
    summary="Delete one source with everything stored of it (raw record, chunks, vectors, index entries).",
    responses={404: {"description": "No such source."}},
)
def delete_source(source_id: str, state: State) -> dict[str, Any]:
    result = state.holocron.delete_sources([source_id])
    if source_id not in result.deleted:
        raise HTTPException(status_code=404, detail=f"no source {source_id!r}")
    out: dict[str, Any] = result.to_json()
    return out


@router.get("/spaces", response_model=Page[SpaceOut], summary="Embedding spaces with their coverage.")
def spaces(state: State, page: PageParams) -> Page[SpaceOut]:
    every = [SpaceOut(**s) for s in state.holocron.space_coverage()]
    return Page[SpaceOut].of(every[page.offset : page.offset + page.limit], len(every), page.limit, page.offset)
