"""Sources and embedding spaces: what is stored, and how much of it each space covers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from holocron.api.deps import PageParams, State
from holocron.api.models import Page, SpaceOut

router = APIRouter(prefix="/api", tags=["catalog"])

SourceStatus = Literal["pending", "indexed", "error"]


@router.get("/sources", response_model=Page[dict[str, Any]], summary="Registered sources, by id.")
def sources(
    state: State,
    page: PageParams,
    status: Annotated[SourceStatus | None, Query(description="Only this status.")] = None,
) -> Page[dict[str, Any]]:
    listing = state.holocron.sources(status=status, limit=page.limit, offset=page.offset)
    return Page[dict[str, Any]].of(listing.items, listing.total, page.limit, page.offset)


@router.get("/sources/{source_id:path}", summary="One source.", responses={404: {"description": "No such source."}})
def source(source_id: str, state: State) -> dict[str, Any]:
    found = state.holocron.source(source_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no source {source_id!r}")
    return found


@router.get("/spaces", response_model=Page[SpaceOut], summary="Embedding spaces with their coverage.")
def spaces(state: State, page: PageParams) -> Page[SpaceOut]:
    every = [SpaceOut(**s) for s in state.holocron.space_coverage()]
    return Page[SpaceOut].of(every[page.offset : page.offset + page.limit], len(every), page.limit, page.offset)
