"""Extraction speed on adversarial payloads, in seconds per MB, next to plain prose of the same size.

Run by hand (takes a few minutes):

    .venv/bin/python bench/adversarial.py                 # every pattern, 1 MB each, best of 2
    .venv/bin/python bench/adversarial.py --size 250000   # a quicker, smaller run
    .venv/bin/python bench/adversarial.py --only html     # one extractor

Each pattern is a mark that naive parsers rescan from (an unclosed link, emphasis, tag or template repeated,
deep nesting, one huge line, ...) repeated to ``--size`` characters, and run through each extractor: Markdown,
plain text, MediaWiki (the pattern as a revision's wikitext in an API response) and HTML (the pattern as a
page body). The first row is prose: real SciFact abstracts from tests/data/, repeated to the same size.
Times are CPU seconds (time.process_time), best of ``--runs``. Target: at most 2 s per MB everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import suppress
from pathlib import Path

# Run as a script, this folder would come first on sys.path, where a sibling module may shadow the stdlib.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

# The payload builders are the linearity test's own (tests/adversarial_inputs.py), so both measure the same inputs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from adversarial_inputs import WRAP, Payload, mediawiki_page, numbered, repeat  # noqa: E402
from holocron.extract import ExtractionError, extract  # noqa: E402

TARGET_S_PER_MB = 2.0
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "scifact" / "corpus.jsonl"
EXTRACTORS = ("markdown", "text", "mediawiki", "html")

PATTERNS: dict[str, Payload] = {
    # Markdown inline marks, opened and never closed
    "*x ": repeat("*x "),
    "_x ": repeat("_x "),
    "**x": repeat("**x"),
    "~~x": repeat("~~x"),
    "`x": repeat("`x"),
    "[x](": repeat("[x]("),
    "[x][": repeat("[x]["),
    "![x](": repeat("![x]("),
    "[": repeat("["),
    "[x:x:x...": repeat("[" + "x:" * 20),
    '<a x="': repeat('<a x="'),
    # wikitext
    "[[x": repeat("[[x"),
    "[[x|": repeat("[[x|"),
    "[http://x ": repeat("[http://x "),
    "[http://x [[y": repeat("[http://x [[y"),
    "{{x": repeat("{{x"),
    "{{x|": repeat("{{x|"),
    "'''x": repeat("'''x"),
    "<ref>": repeat("<ref>"),
    "<gallery>": repeat("<gallery>"),
    "[[File:x|": repeat("[[File:x|"),
    "{|\\n|x||y\\n": repeat("{|\n|x||y\n"),
    # HTML
    "<b> unclosed": repeat("<b>"),
    "<b x=N> distinct": numbered("<b x={}>x "),
    "<div> unclosed": repeat("<div>"),
    "<div>x unclosed": repeat("<div>x "),
    "<table><tr><td>x": repeat("<table><tr><td>x "),
    "<table class=infobox>": repeat("<table class=infobox><tr><th>a<td>x "),
    "<ul><li>x": repeat("<ul><li>x "),
    "<h2><span>x": repeat("<h2><span>x"),
    "<pre>x": repeat("<pre>x "),
    "<li>x": repeat("<li>x"),
    "<!--x": repeat("<!--x"),
    # structure
    "> > > one line": repeat("> "),
    "- - - one line": repeat("- "),
    "> x 100 deep": repeat("> " * 100 + "x\n"),
    "- x 100 deep": repeat("- " * 100 + "x\n"),
    "x\\n (1-char lines)": repeat("x\n"),
    "- x\\n (tiny items)": repeat("- x\n"),
    "long line, no spaces": repeat("x"),
}


def prose(size: int) -> str:
    """Real abstracts, title and text as paragraphs, repeated to ``size`` characters."""
    paragraphs: list[str] = []
    with CORPUS.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            paragraphs.extend([record["title"], record["text"]])
    text = "\n\n".join(paragraphs)
    return (text * (size // len(text) + 1))[:size]


def _html_prose(text: str) -> str:
    body = "".join(f"<p>{paragraph}</p>\n" for paragraph in text.split("\n\n"))
    return f"<html><head><title>Abstracts</title></head><body><article>{body}</article></body></html>"


def seconds_per_mb(kind: str, payload: str, chars: int, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        with suppress(ExtractionError):  # a payload of marks only may have no text: the time is what counts
            extract(kind, payload)
        best = min(best, time.process_time() - start)
    return best / (chars / 1_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="characters per payload (default 1 MB)")
    parser.add_argument("--runs", type=int, default=2, help="best of this many runs (default 2)")
    parser.add_argument("--only", choices=EXTRACTORS, action="append", help="only these extractors")
    args = parser.parse_args()
    kinds = tuple(args.only or EXTRACTORS)
    print(
        f"extraction, CPU seconds per MB (best of {args.runs}, {args.size:,} characters per payload); "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; * = over {TARGET_S_PER_MB:g} s/MB"
    )
    width = max(len(name) for name in PATTERNS) + 2
    header = f"{'pattern':<{width}}" + "".join(f"{kind:>12}" for kind in kinds)
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, dict[str, float]]] = []
    text = prose(args.size)
    prose_payloads = {"markdown": text, "text": text, "mediawiki": mediawiki_page(text), "html": _html_prose(text)}
    rows.append(("prose (SciFact)", {k: seconds_per_mb(k, prose_payloads[k], len(text), args.runs) for k in kinds}))
    _print_row(*rows[-1], width, kinds)
    for name, build in PATTERNS.items():
        raw = build(args.size)
        rows.append((name, {k: seconds_per_mb(k, WRAP[k](raw), len(raw), args.runs) for k in kinds}))
        _print_row(*rows[-1], width, kinds)
    print("-" * len(header))
    worst = {kind: max(row[kind] for _, row in rows[1:]) for kind in kinds}
    print(f"{'worst pattern':<{width}}" + "".join(_cell(worst[kind]) for kind in kinds))
    over = sum(1 for _, row in rows for kind in kinds if row[kind] > TARGET_S_PER_MB)
    print(f"{over} of {len(rows) * len(kinds)} cells over {TARGET_S_PER_MB:g} s/MB")


def _cell(value: float) -> str:
    return f"{value:>11.2f}{'*' if value > TARGET_S_PER_MB else ' '}"


def _print_row(name: str, row: dict[str, float], width: int, kinds: tuple[str, ...]) -> None:
    print(f"{name:<{width}}" + "".join(_cell(row[kind]) for kind in kinds), flush=True)


if __name__ == "__main__":
    main()
