"""``holocron lake ...``: exchange raw pages and LLM records with another installation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from holocron.cli.common import (
    HolocronTyper,
    UserError,
    console,
    one_of,
    open_holocron,
    print_json,
    print_warning,
    split_choices,
    spoken,
)
from holocron.cli.options import JsonOption
from holocron.vocabulary import EXCHANGE_FORMATS as FORMATS
from holocron.vocabulary import EXCHANGE_TYPES

app = HolocronTyper(
    help="The lake exchange: export what this installation has, import what another exported.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="lake")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The file to write (replaced atomically).")],
    fmt: Annotated[
        str,
        typer.Option("--format", parser=one_of(FORMATS), metavar="FORMAT", help=f"The file format: {spoken(FORMATS)}."),
    ] = "jsonl",
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            parser=one_of(EXCHANGE_TYPES, several=True),
            metavar="TYPE",
            help=f"Only records of this type ({spoken(EXCHANGE_TYPES)}); repeatable (default: all).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write every raw page, LLM artifact and LLM run as exchange records, one a line (JSONL) or in Parquet.

    Each exported snapshot is also recorded in lake.raw_exchange_record, once per content hash.
    """
    from holocron.lake.exchange import ExchangeError

    chosen = split_choices(types) or None
    with open_holocron(ctx) as holo:
        try:
            report = holo.lake_export(path, fmt=fmt, types=chosen)
        except (ExchangeError, OSError) as exc:
            raise UserError(str(exc)) from exc
    if as_json:
        print_json(report.as_json())
        return
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.by_type.items())) or "nothing"
    console.print(
        f"exported {report.exported} records ({kinds}) to {report.path} in {report.seconds:.2f}s; "
        f"{report.recorded} new to the lake, {report.already_recorded} already there"
    )


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A file written by `lake export` (JSONL or Parquet).")],
    as_json: JsonOption = False,
) -> None:
    """Load exchange records: a version already here is a no-op, a new content hash a new version.

    Raw pages get their raw record back (index them as usual); a bad line is reported with its number and
    the rest is imported.
    """
    from holocron.lake.exchange import ExchangeError

    with open_holocron(ctx) as holo:
        try:
            report = holo.lake_import(path)
        except (ExchangeError, OSError) as exc:
            raise UserError(str(exc)) from exc
    if as_json:
        print_json(report.as_json())
        return
    console.print(
        f"imported {report.imported} of {report.read} records from {report.path} in {report.seconds:.2f}s: "
        f"{report.new} new, {report.new_versions} new versions, {report.unchanged} unchanged; "
        f"{report.ingest_records_created} raw records created"
    )
    for rejection in report.rejections:
        print_warning(f"line {rejection.line}: {rejection.reason}")
    if report.rejected > len(report.rejections):
        print_warning(f"... and {report.rejected - len(report.rejections)} more rejected lines")
