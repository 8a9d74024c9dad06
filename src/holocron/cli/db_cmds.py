"""``holocron db`` (schema migrations) and ``holocron sources`` (what was ingested and how it went)."""

from __future__ import annotations

from typing import Annotated

import typer

from holocron.cli.common import console, print_json, print_table, state

app = typer.Typer(help="Database schema.", no_args_is_help=True)
sources_app = typer.Typer(help="Ingested sources and their indexing state.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Apply every pending migration."""
    from holocron.store.database import Database
    from holocron.store.migrate import current_revision

    db = Database(state(ctx).settings().resolved_database_url)
    db.upgrade()
    console.print(f"schema at revision [bold]{current_revision(db)}[/bold]")


@app.command()
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Current and newest schema revision."""
    from holocron.store.database import Database
    from holocron.store.migrate import current_revision, head_revision

    db = Database(state(ctx).settings().resolved_database_url)
    current, head = current_revision(db), head_revision(db)
    data = {
        "database": db.url.render_as_string(hide_password=True),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        print_json(data)
        return
    print_table("schema", ["field", "value"], data.items())


@sources_app.command("list")
def list_sources_cmd(
    ctx: typer.Context,
    status_filter: Annotated[str | None, typer.Option("--status", help="pending, indexed or error.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Sources with their status, chunk counts and errors."""
    from holocron.cli.common import open_holocron
    from holocron.store.sources import list_sources

    with open_holocron(ctx) as holo, holo.db.read() as tx:
        rows = list_sources(tx, status=status_filter, limit=limit, offset=offset)
    if as_json:
        print_json(rows)
        return
    print_table(
        "sources",
        ["source", "type", "status", "chunks", "dropped", "title", "error"],
        [
            (
                r["source_id"],
                r["source_type"],
                r["status"],
                r["chunk_count"],
                r["chunks_dropped"],
                r["title"],
                r["error"],
            )
            for r in rows
        ],
    )
