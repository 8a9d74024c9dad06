"""Extraction work grows linearly with the payload, on the inputs that make naive parsers quadratic.

Each case builds an adversarial payload (an unclosed mark repeated, deep nesting, one huge line, ...) at
sizes n and 4n and counts the Python lines the extractor executes on each (a trace hook, so the count is
the same on every run and every machine, and nothing is timed). Linear work gives a ratio of about 4,
quadratic work 16. Work inside C code (the regular expression engine, lxml) is not counted here: its speed
on the same payloads is measured by hand with ``bench/adversarial.py``, which prints seconds per MB and the
growth of time with size.
"""

from __future__ import annotations

import sys
from contextlib import suppress
from types import FrameType
from typing import Any

import pytest

from adversarial_inputs import WRAP, Payload, nested_lines, numbered, repeat
from holocron.extract import ExtractionError, extract

# work(4n) / work(n) must stay below this: 4 for linear work, 16 for quadratic.
MAX_RATIO = 8.0
# Large enough that the fixed cost of one extraction is small against the per-character work.
SIZE = 4096

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


def _lines_executed(kind: str, payload: str) -> int:
    """How many Python lines one extraction executes, in every frame below the call."""
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def scope(frame: FrameType, event: str, arg: object) -> Any:
        return local

    previous = sys.gettrace()
    sys.settrace(scope)
    try:
        with suppress(ExtractionError):  # a payload of marks only may have no text: the work is what counts
            extract(kind, payload)
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize(("kind", "name", "build"), CASES, ids=[f"{kind}-{name}" for kind, name, _ in CASES])
def test_extraction_work_is_linear(kind: str, name: str, build: Payload) -> None:
    wrap = WRAP[kind]
    _lines_executed(kind, wrap(build(SIZE // 4)))  # first-call work (caches, compiled patterns) is not per character
    small, large = (_lines_executed(kind, wrap(build(SIZE * factor))) for factor in (1, 4))
    ratio = large / max(small, 1)
    assert ratio < MAX_RATIO, f"{kind} on {name}: {small:,} lines at n={SIZE:,}, {large:,} at 4n, ratio {ratio:.1f}"
