"""Sources and embedding spaces: what is stored, and how much of it each space covers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from holocron.api.deps import PageParams, State
from holocron.api.models import Page, SpaceOut
from holocron.observability.overview import space_coverage
from holocron.store.sources import list_sources

router = APIRouter(prefix="/api", tags=["catalog"])

SourceStatus = Literal["pending", "indexed", "error"]


def _source_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in row.items() if key not in ("source_ref_json", "tags_json")}
    out["source_ref"] = row.get("source_ref_json") or {}
    out["tags"] = row.get("tags_json") or []
    return out


@router.get("/sources", response_model=Page[dict[str, Any]], summary="Registered sources, by id.")
def sources(
    state: State,
    page: PageParams,
    status: Annotated[SourceStatus | None, Query(description="Only this status.")] = None,
) -> Page[dict[str, Any]]:
    with state.holocron.db.read() as tx:
        reg = tx.t.source_registry
        count = select(func.count()).select_from(reg)
        if status:
            count = count.where(reg.c.status == status)
        total = int(tx.execute(count).scalar_one())
        rows = list_sources(tx, status=status, limit=page.limit, offset=page.offset)
    return Page[dict[str, Any]].of([_source_json(r) for r in rows], total, page.limit, page.offset)


@router.get("/sources/{source_id:path}", summary="One source.", responses={404: {"description": "No such source."}})
def source(source_id: str, state: State) -> dict[str, Any]:
    with state.holocron.db.read() as tx:
        reg = tx.t.source_registry
        row = tx.execute(select(reg).where(reg.c.source_id == source_id)).first()
    if row is None:
        raise HTTPException(status_code=404, detail=f"no source {source_id!r}")
    return _source_json(dict(row._mapping))


@router.get("/spaces", response_model=Page[SpaceOut], summary="Embedding spaces with their coverage.")
def spaces(state: State, page: PageParams) -> Page[SpaceOut]:
    with state.holocron.db.read() as tx:
        every = [SpaceOut(**s) for s in space_coverage(tx)]
    return Page[SpaceOut].of(every[page.offset : page.offset + page.limit], len(every), page.limit, page.offset)
