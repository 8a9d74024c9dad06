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

``--growth`` also times every payload at a quarter of ``--size`` and prints t(n) / t(n/4) beside each
figure: about 4 for linear work, 16 for quadratic. This covers the work in C code (regular expressions,
lxml) that tests/test_extract_linear.py, which counts executed Python lines, cannot see.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
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
    parser.add_argument("--growth", action="store_true", help="also print t(n) / t(n/4) for every cell")
    args = parser.parse_args()
    kinds = tuple(args.only or EXTRACTORS)
    if args.growth:
        print("each cell: s/MB at the full size, then x t(n)/t(n/4) (about 4 for linear work, 16 for quadratic)")
    print(
        f"extraction, CPU seconds per MB (best of {args.runs}, {args.size:,} characters per payload); "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; * = over {TARGET_S_PER_MB:g} s/MB"
    )
    width = max(len(name) for name in PATTERNS) + 2
    header = f"{'pattern':<{width}}" + "".join(f"{kind:>{17 if args.growth else 12}}" for kind in kinds)
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, dict[str, float]]] = []
    growth: dict[str, dict[str, float]] = {}
    builds: dict[str, Callable[[int], dict[str, tuple[str, int]]]] = {"prose (SciFact)": _prose_payloads}
    builds.update({name: _pattern_payloads(build) for name, build in PATTERNS.items()})
    for name, payloads in builds.items():
        rows.append((name, _measure(payloads(args.size), kinds, args.runs)))
        if args.growth:
            quarter = _measure(payloads(args.size // 4), kinds, args.runs)
            # s/MB at n over s/MB at n/4 is t(n) / t(n/4) divided by 4.
            growth[name] = {kind: 4 * rows[-1][1][kind] / max(quarter[kind], 1e-9) for kind in kinds}
        _print_row(*rows[-1], width, kinds, growth.get(name))
    print("-" * len(header))
    worst = {kind: max(row[kind] for _, row in rows[1:]) for kind in kinds}
    print(f"{'worst pattern':<{width}}" + "".join(_cell(worst[kind]) for kind in kinds))
    over = sum(1 for _, row in rows for kind in kinds if row[kind] > TARGET_S_PER_MB)
    print(f"{over} of {len(rows) * len(kinds)} cells over {TARGET_S_PER_MB:g} s/MB")


def _prose_payloads(size: int) -> dict[str, tuple[str, int]]:
    text = prose(size)
    return {
        "markdown": (text, len(text)),
        "text": (text, len(text)),
        "mediawiki": (mediawiki_page(text), len(text)),
        "html": (_html_prose(text), len(text)),
    }


def _pattern_payloads(build: Payload) -> Callable[[int], dict[str, tuple[str, int]]]:
    def payloads(size: int) -> dict[str, tuple[str, int]]:
        raw = build(size)
        return {kind: (WRAP[kind](raw), len(raw)) for kind in EXTRACTORS}

    return payloads


def _measure(payloads: dict[str, tuple[str, int]], kinds: tuple[str, ...], runs: int) -> dict[str, float]:
    return {kind: seconds_per_mb(kind, payloads[kind][0], payloads[kind][1], runs) for kind in kinds}


def _cell(value: float, growth: float | None = None) -> str:
    shown = f"{value:.2f}" if growth is None else f"{value:.2f} x{growth:.1f}"
    return f"{shown:>{11 if growth is None else 16}}{'*' if value > TARGET_S_PER_MB else ' '}"


def _print_row(
    name: str, row: dict[str, float], width: int, kinds: tuple[str, ...], growth: dict[str, float] | None = None
) -> None:
    cells = "".join(_cell(row[kind], None if growth is None else growth[kind]) for kind in kinds)
    print(f"{name:<{width}}" + cells, flush=True)


if __name__ == "__main__":
    main()
