"""Help and the listing of commands load only the command line itself, so that they answer at once.

Run in a fresh interpreter each, since this test process has imported everything already. Nothing is timed:
what is checked is which modules were imported (``bench/cli_start.py`` prints the seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What a help screen must not wait for: the settings layer, the database layer, numerics, parsers, the model.
HEAVY = (
    "pydantic_settings",
    "sqlalchemy",
    "numpy",
    "torch",
    "sentence_transformers",
    "trafilatura",
    "selectolax",
    "mwparserfromhell",
    "hnswlib",
    "httpx",
    "holocron.service",
    "holocron.store",
)

PROBE = """
import json, sys
from holocron.cli.app import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = json.loads(sys.stdin.read())
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def loaded_by(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], input=json.dumps(HEAVY), capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("search", "--help"), ("crawl", "--help"), ("jobs", "--help"), ("spaces", "--help"), ("--version",)],
)
def test_help_loads_nothing_heavy(argv: tuple[str, ...]) -> None:
    assert loaded_by(*argv) == []


def test_a_command_still_loads_what_it_needs(tmp_path: object) -> None:
    loaded = loaded_by("--home", str(tmp_path), "sources", "list", "--json")
    assert "sqlalchemy" in loaded and "pydantic_settings" in loaded
