"""``holocron``: the command line, a thin shell over :class:`holocron.service.Holocron`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from holocron.cli import db_cmds, index_cmds, jobs_cmds, providers_cmds, search_cmds, serve_cmds, spaces_cmds
from holocron.cli.common import UserError, err_console, state

app = typer.Typer(
    name="holocron",
    help="Raw pages to lineage-tracked embeddings, search and LLM evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="HOLOCRON_DATABASE_URL", help="SQLAlchemy URL.")
    ] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Folder for the SQLite file and lake.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and full tracebacks.")] = False,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json.")] = None,
) -> None:
    cli = state(ctx)
    cli.verbose = verbose
    cli.overrides.update({"database_url": database_url, "home": home, "log_format": log_format})
    settings = cli.settings()
    from holocron.observability.logs import configure_logging

    configure_logging(settings.log_format, "DEBUG" if verbose else settings.log_level)


index_cmds.register(app)
search_cmds.register(app)
serve_cmds.register(app)
jobs_cmds.register(app)
providers_cmds.register(app, spaces_cmds.app)
app.add_typer(spaces_cmds.app, name="spaces")
app.add_typer(db_cmds.app, name="db")
app.add_typer(db_cmds.sources_app, name="sources")


def main() -> None:
    verbose = "--verbose" in sys.argv or "-v" in sys.argv
    try:
        app()
    except UserError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except Exception as exc:
        if verbose:
            raise
        logging.getLogger("holocron").debug("unhandled", exc_info=True)
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}  (run with --verbose for the traceback)")
        sys.exit(1)
