"""``holocron spaces``: the embedding spaces and what is in them."""

from __future__ import annotations

from typing import Annotated

import typer

from holocron.cli.common import HolocronTyper, UserError, open_holocron, print_json, print_table
from holocron.cli.options import JsonOption

app = HolocronTyper(
    help="Embedding spaces: one per model, tag, digest and size. Vectors of two spaces never mix.",
    no_args_is_help=True,
)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every space, with its embeddings and coverage."""
    with open_holocron(ctx) as holo:
        spaces = holo.spaces()
        coverage = {row["embedding_space_id"]: row for row in holo.space_coverage()}
    if as_json:
        print_json(
            [
                {
                    **space.__dict__,
                    "preprocess": space.preprocess.to_json(),
                    "embeddings": n,
                    **{
                        key: coverage.get(space.embedding_space_id, {}).get(key)
                        for key in ("chunks_embedded", "chunks_total", "coverage")
                    },
                }
                for space, n in spaces
            ]
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
    space: Annotated[str, typer.Argument(metavar="SPACE", help="The space's id or name.")],
    as_json: JsonOption = False,
) -> None:
    """One space in full."""
    with open_holocron(ctx) as holo:
        found = holo.find_space(space)
    if found is None:
        raise UserError(f"no embedding space {space!r}")
    data = {**found.__dict__, "preprocess": found.preprocess.to_json()}
    if as_json:
        print_json(data)
        return
    print_table(found.name, ["field", "value"], data.items(), wrap=("value",))
