"""``holocron``: the command line, a thin shell over :class:`holocron.service.Holocron`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from holocron.cli import (
    crawl_cmds,
    db_cmds,
    index_cmds,
    jobs_cmds,
    lake_cmds,
    llm_cmds,
    providers_cmds,
    search_cmds,
    serve_cmds,
    spaces_cmds,
)
from holocron.cli.common import HolocronTyper, UserError, err_console, one_of, print_error, spoken, state
from holocron.vocabulary import DEVICES

LOG_FORMATS = ("text", "json")


class HolocronGroup(TyperGroup):
    """The root command: every failure is one ``error:`` line on stderr, under CliRunner as from a shell.

    Exit codes: 0 success, 1 a failure (a :class:`UserError`, or an unexpected exception: its traceback with
    ``--verbose``), 2 a usage error (an unknown option, an invalid choice), 130 interrupted.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:
            typer.echo(exc.format_message())
            sys.exit(0)
        except UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            print_error(exc.format_message() + hint)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            print_error(exc.format_message())
            sys.exit(exc.exit_code)
        except UserError as exc:
            print_error(str(exc))
            sys.exit(1)
        except (KeyboardInterrupt, typer.Abort):
            err_console.print("[yellow]interrupted[/yellow]")
            sys.exit(130)
        except Exception as exc:
            if "--verbose" in argv or "-v" in argv:
                raise
            logging.getLogger("holocron").debug("unhandled", exc_info=True)
            print_error(f"{type(exc).__name__}: {exc}  (run with --verbose for the traceback)")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = HolocronTyper(
    name="holocron",
    cls=HolocronGroup,
    help="Raw pages to lineage-tracked embeddings, search and LLM evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def version() -> str:
    """The package's version: ``holocron.__version__``."""
    from holocron import __version__

    return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"holocron {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="HOLOCRON_DATABASE_URL",
            metavar="URL",
            help="SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@host/db (default: SQLite in --home).",
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="HOLOCRON_HOME",
            metavar="DIR",
            help="Folder for the SQLite file, indexes and lake (default: ./.holocron).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            envvar="HOLOCRON_DEVICE",
            parser=one_of(DEVICES),
            metavar="DEVICE",
            help=f"Where the in-process embedding and chat models run: {spoken(DEVICES)} "
            "(default: auto, a GPU when torch sees one).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and full tracebacks.")] = False,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            envvar="HOLOCRON_LOG_FORMAT",
            parser=one_of(LOG_FORMATS),
            metavar="FORMAT",
            help=f"Log lines on stderr: {spoken(LOG_FORMATS)} (default: text).",
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit.", show_default=False
        ),
    ] = False,
) -> None:
    cli = state(ctx)
    cli.verbose = verbose
    cli.overrides.update({"database_url": database_url, "home": home, "log_format": log_format, "device": device})


index_cmds.register(app)
search_cmds.register(app)
serve_cmds.register(app)
jobs_cmds.register(app)
llm_cmds.register(app)
lake_cmds.register(app)
crawl_cmds.register(app)
providers_cmds.register(app, spaces_cmds.app)
app.add_typer(spaces_cmds.app, name="spaces")
app.add_typer(db_cmds.app, name="db")
app.add_typer(db_cmds.sources_app, name="sources")


def main() -> None:
    app()
