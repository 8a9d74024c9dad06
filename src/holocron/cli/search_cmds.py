"""``holocron search``: questions against the current embedding space."""

from __future__ import annotations

from typing import Annotated

import typer

from holocron.cli.common import console, open_holocron, print_json, print_table


def register(app: typer.Typer) -> None:
    app.command()(search)


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=1000, help="How many hits.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Hits as JSON.")] = False,
) -> None:
    """Search the current embedding space; the query and its hits are logged."""
    with open_holocron(ctx) as holo:
        result = holo.search(query, k)
    if as_json:
        print_json(
            {
                "retrieval_id": result.retrieval_id,
                "space": result.space.name,
                "latency_ms": round(result.latency_ms, 2),
                "hits": [
                    {
                        "rank": h.rank,
                        "score": round(h.score, 6),
                        "chunk_id": h.chunk_id,
                        "source_id": h.source_id,
                        "title": h.title,
                        "start": h.start_offset,
                        "end": h.end_offset,
                        "text": h.text,
                    }
                    for h in result.hits
                ],
            }
        )
        return
    if not result.hits:
        console.print("no hits (is anything indexed? run `holocron index`)")
        return
    print_table(
        f"{query!r} in {result.space.name} ({result.latency_ms:.0f} ms)",
        ["rank", "score", "title", "snippet"],
        [(h.rank, f"{h.score:.3f}", h.title or h.source_id, h.snippet(160)) for h in result.hits],
    )
