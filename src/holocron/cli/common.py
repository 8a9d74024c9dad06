"""What every command shares: the console, the opened library, JSON output and errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from holocron.config import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def settings(self, **more: Any) -> Settings:
        return load_settings(**{**self.overrides, **more})


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def open_holocron(ctx: typer.Context, **overrides: Any) -> Any:
    from holocron.service import Holocron

    return Holocron(state(ctx).settings(**overrides))


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str, ensure_ascii=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


class UserError(Exception):
    """An expected failure: printed as one red line, exit code 1, traceback only with --verbose."""
