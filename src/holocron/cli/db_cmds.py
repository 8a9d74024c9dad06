"""``holocron db`` (schema migrations) and ``holocron sources`` (what was ingested and how it went)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from holocron.cli.common import HolocronTyper, console, one_of, print_json, print_table, print_warning, state
from holocron.cli.options import SOURCE_STATUS_LIST, JsonOption, LimitOption, OffsetOption
from holocron.vocabulary import VISIBLE_STATUSES

app = HolocronTyper(help="Database schema: migrations and their state.", no_args_is_help=True)
sources_app = HolocronTyper(help="Ingested sources and their indexing state.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Apply every pending migration."""
    from holocron.cli.common import UserError
    from holocron.store.database import Database
    from holocron.store.revision import SchemaTooNewError

    db = Database(state(ctx).settings().resolved_database_url)
    try:
        db.upgrade()
    except SchemaTooNewError as exc:  # one line naming both revisions, as every other command prints it
        raise UserError(str(exc)) from None
    data = _schema_state(db)
    if as_json:
        print_json(data)
        return
    console.print(f"schema at revision [bold]{data['current']}[/bold]")


def _schema_state(db: Any) -> dict[str, Any]:
    from holocron.store.migrate import current_revision, head_revision

    current, head = current_revision(db), head_revision(db)
    return {
        "database": db.url.render_as_string(hide_password=True),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }


@app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Current and newest schema revision."""
    from holocron.store.database import Database

    data = _schema_state(Database(state(ctx).settings().resolved_database_url))
    if as_json:
        print_json(data)
        return
    print_table("schema", ["field", "value"], data.items(), wrap=("value",))


@sources_app.command("list")
def list_sources_cmd(
    ctx: typer.Context,
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status",
            parser=one_of(VISIBLE_STATUSES),
            metavar="STATUS",
            help=f"Only this status: {SOURCE_STATUS_LIST}.",
        ),
    ] = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Sources with their status, chunk counts and errors, by id."""
    from holocron.cli.common import open_holocron

    with open_holocron(ctx) as holo:
        rows = holo.sources(status=status_filter, limit=limit, offset=offset).items
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
        wrap=("title", "error"),
    )


@sources_app.command("delete")
def delete_sources_cmd(
    ctx: typer.Context,
    source_ids: Annotated[
        list[str], typer.Argument(help="Source ids, as `holocron sources list` shows them.", metavar="SOURCE_ID")
    ],
    as_json: JsonOption = False,
) -> None:
    """Delete sources and everything stored of them: raw records, chunks, vectors, full-text and index entries.

    One transaction for all of them. Exits 1 when an id is not registered (the others are still deleted).
    """
    from holocron.cli.common import open_holocron

    with open_holocron(ctx) as holo:
        result = holo.delete_sources(source_ids)
    if as_json:
        print_json(result.to_json())
    else:
        for source_id in result.missing:
            print_warning(f"{source_id}: no such source")
        console.print(f"deleted {len(result.deleted)} sources ({result.chunks_removed} chunks)")
    if result.missing:
        raise typer.Exit(1)
