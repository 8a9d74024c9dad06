"""``holocron spaces``: the embedding spaces and what is in them."""

from __future__ import annotations

from typing import Annotated

import typer

from holocron.cli.common import UserError, open_holocron, print_json, print_table
from holocron.store.spaces import get_space, list_spaces

app = typer.Typer(help="Embedding spaces: one per model, tag, digest and dimensions.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every space with its embedding count."""
    with open_holocron(ctx) as holo, holo.db.read() as tx:
        spaces = list_spaces(tx)
    if as_json:
        print_json(
            [{**space.__dict__, "preprocess": space.preprocess.to_json(), "embeddings": n} for space, n in spaces]
        )
        return
    print_table(
        "embedding spaces",
        ["id", "name", "provider", "model", "dims", "metric", "max tokens", "embeddings"],
        [
            (
                s.embedding_space_id,
                s.name,
                s.provider,
                f"{s.model_name}:{s.model_tag}",
                s.dimensions,
                s.distance_metric,
                s.max_input_tokens,
                n,
            )
            for s, n in spaces
        ],
    )


@app.command()
def show(
    ctx: typer.Context,
    space: Annotated[str, typer.Argument(help="Space id or name.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One space in full."""
    with open_holocron(ctx) as holo, holo.db.read() as tx:
        found = get_space(tx, space)
    if found is None:
        raise UserError(f"no embedding space {space!r}")
    data = {**found.__dict__, "preprocess": found.preprocess.to_json()}
    if as_json:
        print_json(data)
        return
    print_table(found.name, ["field", "value"], data.items())
