"""Payload builders for adversarial extraction inputs, shared by ``test_extract_linear`` and ``bench/adversarial.py``.

Each builder takes a size in characters and returns a payload of about that size; :data:`WRAP` turns a body into
the raw form each extractor reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable

Payload = Callable[[int], str]


def repeat(unit: str) -> Payload:
    """``unit`` repeated on one line (or as many lines as it holds) to about ``size`` characters."""
    return lambda size: unit * max(1, size // len(unit))


def numbered(unit: str) -> Payload:
    """``unit`` with ``{}`` replaced by a counter, so that no two repetitions are the same tag."""

    def build(size: int) -> str:
        parts: list[str] = []
        total = 0
        while total < size:
            parts.append(unit.format(len(parts)))
            total += len(parts[-1])
        return "".join(parts)

    return build


def nested_lines(marker: str, depth: int) -> Payload:
    """Lines nested ``depth`` deep (``> > > x``, ``- - - x``), as many lines as the size allows."""
    return repeat(marker * depth + "x\n")


def mediawiki_page(wikitext: str) -> str:
    """Wikitext as the MediaWiki API serves a revision (``formatversion=2``)."""
    page = {"pageid": 1, "title": "Page", "revisions": [{"slots": {"main": {"content": wikitext}}}]}
    return json.dumps({"query": {"pages": [page]}})


WRAP: dict[str, Callable[[str], str]] = {
    "markdown": lambda text: text,
    "text": lambda text: text,
    "mediawiki": mediawiki_page,
    "html": lambda text: f"<html><body>{text}",
}
