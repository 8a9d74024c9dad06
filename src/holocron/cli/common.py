"""What every command shares: the consoles, the opened library, JSON output, errors and option parsers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text
from typer._click import Context as ClickContext
from typer._click import HelpFormatter
from typer.core import TyperArgument, TyperCommand
from typer.models import CommandFunctionType

if TYPE_CHECKING:
    from holocron.config import Settings
    from holocron.service import Holocron

PIPE_WIDTH = 100_000
"""Columns of a console whose output is not a terminal: wide enough that Rich never wraps a line."""


class OutputConsole(Console):
    """A Rich console that wraps nothing when its output is not a terminal.

    Rich falls back to 80 columns when it cannot ask a terminal, so in logs and CI every table wraps its ids
    over several lines. Here a pipe or a file gets lines as long as their content (``COLUMNS`` still wins).
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not os.environ.get("COLUMNS") and not _isatty(self.file):
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


console = OutputConsole()
err_console = OutputConsole(stderr=True)


class HolocronCommand(TyperCommand):
    """A command whose help names arguments by their metavar alone, without Typer's ``<list[Path]>`` labels."""

    def format_options(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                name = param.display_name_raw + ("..." if param.nargs != 1 else "")
                arguments.append((name, record[1]))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


class HolocronTyper(typer.Typer):
    """A Typer app whose commands are :class:`HolocronCommand` unless told otherwise."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or HolocronCommand, **kwargs)


@dataclass
class CliState:
    """The root options, read into settings only when a command first needs them: help and the listing of
    commands never load the settings layer (pydantic-settings), nor anything below it."""

    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False
    logging_configured: bool = False

    def settings(self, **more: Any) -> Settings:
        from pydantic import ValidationError

        from holocron.config import load_settings

        try:
            settings = load_settings(**{**self.overrides, **more})
        except ValidationError as exc:
            raise UserError(settings_problem(exc)) from None
        if not self.logging_configured:
            from holocron.observability.logs import configure_logging

            configure_logging(settings.log_format, "DEBUG" if self.verbose else settings.log_level)
            self.logging_configured = True
        return settings


def settings_problem(exc: Any) -> str:
    """A settings ValidationError as one line naming each variable, e.g. ``HOLOCRON_SEARCH_MODE: ...``."""
    problems = []
    for error in exc.errors():
        field_name = ".".join(str(part) for part in error.get("loc", ()))
        where = f"HOLOCRON_{field_name.upper()} (or {field_name} in holocron.toml)" if field_name else "settings"
        problems.append(f"{where}: {error.get('msg', 'invalid')}, not {error.get('input')!r}")
    return "invalid settings: " + "; ".join(problems)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def open_holocron(ctx: typer.Context, **overrides: Any) -> Holocron:
    from holocron.service import Holocron
    from holocron.store.revision import SchemaTooNewError

    try:
        return Holocron(state(ctx).settings(**overrides))
    except SchemaTooNewError as exc:  # an expected refusal: one line naming both revisions, no traceback
        raise UserError(str(exc)) from None


# --- output ----------------------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot encode, encoded as the API encodes it (ISO 8601 times)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=json_default, ensure_ascii=False))


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    wrap: Collection[str] = (),
) -> None:
    """A table; only the ``wrap`` columns (free text) may wrap on a narrow terminal, ids and statuses never do.

    Cells are plain text, never Rich markup (a ``Text`` cell keeps its styles: a snippet's marked words).
    Piped, the table is as wide as its content (see OutputConsole).
    """
    table = Table(title=Text(title) if title else None, show_lines=False, header_style="bold")
    for column in columns:
        if column in wrap:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text("" if cell is None else str(cell)) for cell in row))
    console.print(table)


def one_line(message: str) -> str:
    """A message as one line: the lines of a multi-line one joined with '; '."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def print_error(message: str) -> None:
    err_console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)))


def print_warning(message: str) -> None:
    err_console.print(Text.assemble(("warning:", "yellow"), " ", one_line(message)))


class UserError(Exception):
    """An expected failure: printed as one red line, exit code 1, traceback only with --verbose."""


# --- option values ---------------------------------------------------------------------------------------------


def spoken(choices: Sequence[str]) -> str:
    """``a, b or c``: for help texts."""
    items = list(choices)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def one_of(choices: Sequence[str], *, several: bool = False, case_sensitive: bool = False) -> Callable[[Any], str]:
    """A Typer ``parser`` that accepts one of ``choices`` (or, with ``several``, a comma-separated list of them).

    It returns the canonical spelling (``new`` becomes ``NEW``); anything else is a usage error that names
    the valid choices, e.g. ``Invalid value for '--status': 'bogus' is not one of pending, indexed, error``.
    """
    canonical = {(c if case_sensitive else c.casefold()): c for c in choices}

    def parse(value: Any) -> str:
        parts = [p.strip() for p in str(value).split(",")] if several else [str(value).strip()]
        out: list[str] = []
        for part in parts:
            if several and not part:
                continue
            found = canonical.get(part if case_sensitive else part.casefold())
            if found is None:
                raise typer.BadParameter(f"{part!r} is not one of {', '.join(choices)}")
            out.append(found)
        if not out:
            raise typer.BadParameter(f"give one of {', '.join(choices)}")
        return ",".join(out)

    return parse


def split_choices(values: Sequence[str] | None) -> list[str]:
    """The values of a repeatable ``one_of(..., several=True)`` option, comma lists flattened, in order."""
    out: list[str] = []
    for value in values or ():
        out.extend(part for part in value.split(",") if part and part not in out)
    return out


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    """A Typer ``parser`` for an integer in ``[low, high]``, with a readable error (and no ``<=`` in help)."""

    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a whole number") from None
        if low is not None and high is not None and not low <= number <= high:
            raise typer.BadParameter(f"{number} is not between {low} and {high}")
        if low is not None and number < low:
            raise typer.BadParameter(f"{number} is less than {low}")
        if high is not None and number > high:
            raise typer.BadParameter(f"{number} is more than {high}")
        return number

    return parse


def positive_number(value: Any) -> float:
    """A Typer ``parser`` for a number of seconds (or any quantity) above zero."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not number > 0:
        raise typer.BadParameter(f"{value} is not above zero")
    return number
