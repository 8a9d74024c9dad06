"""Extraction time grows linearly with the payload, on the inputs that make naive parsers quadratic.

Each case builds an adversarial payload (an unclosed mark repeated, deep nesting, one huge line, ...) at
sizes n, 2n and 4n and times the extractor on each (CPU time, best of three, garbage collector paused).
No absolute time is asserted: n is doubled until one run takes tens of milliseconds on this machine, and
only the scale-free ratio t(4n) / t(n) is checked. Linear work gives about 4, quadratic work 16.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from adversarial_inputs import WRAP, Payload, nested_lines, numbered, repeat
from holocron.extract import ExtractionError, extract

# t(4n) / t(n) must stay below this: 4 for linear work, 16 for quadratic.
MAX_RATIO = 8.0
# n grows until one extraction takes this long, so that timer noise is small against it...
MIN_SECONDS = 0.015
# ...but never beyond this many characters.
MAX_CHARS = 1 << 21
RUNS = 3

# Patterns the Markdown and wikitext extractors both see: their marks, opened and never closed.
COMMON: dict[str, Payload] = {
    "star-x-space": repeat("*x "),
    "underscore-x-space": repeat("_x "),
    "double-star-x": repeat("**x"),
    "double-tilde-x": repeat("~~x"),
    "link-open-paren": repeat("[x]("),
    "reference-link-open": repeat("[x]["),
    "wikilink-open": repeat("[[x"),
    "external-link-open": repeat("[http://x "),
    "template-open": repeat("{{x"),
    "bold-tag-open": repeat("<b>"),
    "bold-quotes": repeat("'''x"),
    "backtick-x": repeat("`x"),
    "long-line-no-spaces": repeat("x"),
}

SPECIFIC: dict[str, dict[str, Payload]] = {
    "text": {name: COMMON[name] for name in ("star-x-space", "wikilink-open", "bold-tag-open", "long-line-no-spaces")}
    | {"one-char-lines": repeat("x\n"), "blank-lines": repeat(" \n\n")},
    "markdown": COMMON
    | {
        "quote-markers-one-line": repeat("> "),
        "list-markers-one-line": repeat("- "),
        "quotes-100-deep": nested_lines("> ", 100),
        "lists-100-deep": nested_lines("- ", 100),
        "bracket-only": repeat("["),
        "image-open-paren": repeat("![x]("),
        "bracket-then-colons": repeat("[" + "x:" * 20),
        "attribute-quote-open": repeat('<a x="'),
        "one-char-lines": repeat("x\n"),
        "empty-list-items": repeat("- x\n"),
        "html-comment-open": repeat("<!--x"),
    },
    "mediawiki": COMMON
    | {
        "piped-link-open": repeat("[[x|"),
        "template-argument-open": repeat("{{x|"),
        "ref-open": repeat("<ref>"),
        "ref-unterminated": repeat("<ref"),
        "gallery-open": repeat("<gallery>"),
        "file-link-open": repeat("[[File:x|"),
        "heading-spaces": repeat("=" + " " * 40 + "x"),
        "table-cells": repeat("{|\n|x||y\n"),
        "external-link-then-wikilink": repeat("[http://x [[y"),
    },
    "html": {name: COMMON[name] for name in ("bold-tag-open", "template-open", "long-line-no-spaces")}
    | {
        "div-unclosed": repeat("<div>"),
        "div-text-unclosed": repeat("<div>x "),
        "table-cell-unclosed": repeat("<table><tr><td>x "),
        "infobox-unclosed": repeat("<table class=infobox><tr><th>a<td>x "),
        "portable-infobox-unclosed": repeat("<aside class=portable-infobox><div class=pi-data>x "),
        "list-unclosed": repeat("<ul><li>x "),
        "heading-in-span": repeat("<h2><span>x"),
        "heading-in-table": repeat("<table><tr><td><h2>x"),
        "caption-unclosed": repeat("<table><caption>x"),
        "pre-unclosed": repeat("<pre>x "),
        "distinct-formatting": numbered("<b x={}>x "),
        "list-items": repeat("<li>x"),
    },
}


CASES = [(kind, name, build) for kind in WRAP for name, build in SPECIFIC[kind].items()]


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _once(kind: str, payload: str) -> float:
    start = time.process_time()
    with suppress(ExtractionError):  # a payload of marks only may have no text: the time is what counts
        extract(kind, payload)
    return time.process_time() - start


def _best(kind: str, payload: str) -> float:
    gc.collect()
    with _no_gc():
        return min(_once(kind, payload) for _ in range(RUNS))


@pytest.mark.parametrize(("kind", "name", "build"), CASES, ids=[f"{kind}-{name}" for kind, name, _ in CASES])
def test_extraction_time_is_linear(kind: str, name: str, build: Payload) -> None:
    wrap = WRAP[kind]
    size = 4096
    while size < MAX_CHARS:
        with _no_gc():
            if _once(kind, wrap(build(size))) >= MIN_SECONDS:
                break
        size *= 2
    times = [_best(kind, wrap(build(size * factor))) for factor in (1, 2, 4)]
    ratio = times[2] / max(times[0], 1e-9)
    shown = ", ".join(f"t({factor}n)={seconds * 1000:.1f} ms" for factor, seconds in zip((1, 2, 4), times, strict=True))
    assert ratio < MAX_RATIO, f"{kind} on {name} (n={size:,} characters): {shown}, ratio {ratio:.1f}"
