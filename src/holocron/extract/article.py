"""Where the article is on any HTML page that is not a known wiki skin: news, blogs, documentation, shops.

Which part of a page is its article is decided by trafilatura, the strongest general extractor measured,
rather than by class names: a class that merely contains "sidebar" or "ad" is as often the article's own
wrapper as furniture. trafilatura's own output is not kept, though: it drops the loose text of some containers
(a DocBook ``div.para`` loses its first sentence) and flattens structure. Its text is the *reference*: the
deepest element of the page's own tree that still holds nearly all of the reference's word triples is the
article's root, which :mod:`holocron.extract.html` then renders with all its text, headings, lists and tables.
``bench/extract_eval.py`` measures the three ways side by side (rules alone, trafilatura alone, this).
"""

from __future__ import annotations

from typing import Any

import trafilatura

MAX_DESCENT = 48
"""Steps down from ``<body>`` at most (real article roots sit a few dozen elements deep): linear, whatever the
nesting."""
HOLD = 0.9
"""A child is the article's root when it still holds this share of what the page holds of the reference..."""
LEAVE = 12
"""...and leaves out at most this many of the word triples its parent holds (about one short sentence): a
section that holds most of the article's text is not the article when a sibling section holds the rest."""
_CONTAINERS = frozenset({"div", "section", "article", "main", "td", "body", "center", "font", "span", "form"})


def reference_text(html: str) -> str:
    """trafilatura's plain-text idea of the page's main text ("" when it finds none)."""
    return trafilatura.extract(html, include_comments=False, include_tables=True, deduplicate=False) or ""


def shingles(text: str) -> set[tuple[str, ...]]:
    """The text's word triples, casefolded: what "holds the same text" compares."""
    words = text.casefold().split()
    return {tuple(words[i : i + 3]) for i in range(max(0, len(words) - 2))}


def locate(body: Any, reference: str) -> Any | None:
    """The deepest element under ``body`` that still holds nearly all of the reference's word triples: the
    article's own container in the page's tree, rendered then with all its text (trafilatura's output drops
    the loose text of some containers)."""
    target = shingles(reference)
    if not target:
        return None
    held = len(target & shingles(body.text(separator=" ")))
    if held < 0.5 * len(target):
        return None
    node, node_held = body, held
    for _ in range(MAX_DESCENT):
        child = node.child
        found = None
        while child is not None:
            if child.tag in _CONTAINERS:
                kept = len(target & shingles(child.text(separator=" ")))
                if kept >= HOLD * held and node_held - kept <= LEAVE:
                    found, node_held = child, kept
                    break
            child = child.next
        if found is None:
            break
        node = found
    return node
