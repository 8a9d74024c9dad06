"""What a reader sees of a hit: the sentences of the chunk that match the question, with the matching words
marked, rather than the chunk's first words.

Pure functions of the chunk's text and the query. A word matches a query word when their folded forms agree
(case, a trailing possessive or plural ``s``); the question's function words ("what", "is", "the") never
count. The sentence with the most distinct query words wins (a longer query word weighs more: "zealand" says
more than "city"), then the earliest; the sentences after it fill the width. A chunk that matches no word
(a hit of the vector search alone) shows its beginning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from holocron.retrieval.terms import STOPWORDS

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"(?=[.!?…\n])(?:([.!?…])[\"'”’)\]]*\s+|\n+)")
"""A sentence's end: its closing mark (group 1, kept in the sentence) with any closing quotes and the space
after it, or a line break. The lookahead lets the scan skip to the next mark instead of trying each branch at
every character (twice as fast)."""
ELLIPSIS = "…"


@dataclass(frozen=True)
class Snippet:
    """``text`` shown for a hit; ``highlights`` the (start, end) offsets in it of the words that matched."""

    text: str
    highlights: list[tuple[int, int]] = field(default_factory=list)
    matched: frozenset[str] = frozenset()
    """The query's folded words the snippet holds."""


@lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """A word's matching form: casefolded, without a possessive ``'s`` or a plural ``s``.

    Cached: a page of hits repeats its words, and folding each afresh was most of an API search's formatting.
    """
    word = word.casefold().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word


def query_words(query: str) -> frozenset[str]:
    """The query's folded content words (function words dropped; none when all are function words)."""
    words = {fold(m.group()) for m in _WORD.finditer(query)}
    content = {w for w in words if w not in STOPWORDS and len(w) > 1}
    return frozenset(content)


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1) if match.group(1) else match.start()
        if end > start:
            spans.append((start, end))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def snippet(text: str, query: str, width: int = 200) -> Snippet:
    """The best-matching sentences of ``text`` for ``query``, at most ``width`` characters, words marked."""
    wanted = query_words(query)
    sentences = _sentences(text)
    if not sentences:
        return Snippet("")
    scores = []
    for start, end in sentences:
        # A folded word is a prefix of its word's casefold, so a sentence whose casefold holds no query word
        # as a substring matches none, and is not split into words at all: most of a hit's sentences.
        folded = text[start:end].casefold().replace("’", "'")
        if not any(word in folded for word in wanted):
            scores.append(0)
            continue
        found = set(map(fold, _WORD.findall(text, start, end))) & wanted
        scores.append(sum(len(w) for w in found))
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i)) if any(scores) else 0
    start, end = sentences[best]
    for following in sentences[best + 1 :]:
        if following[1] - start > width:
            break
        end = following[1]
    shown = " ".join(text[start:end].split())
    prefix = ELLIPSIS + " " if best > 0 else ""
    if len(shown) > width:
        shown = _around_first_match(shown, wanted, width)
    elif end < len(text.rstrip()):
        shown += " " + ELLIPSIS
    shown = prefix + shown if not shown.startswith(ELLIPSIS) else shown
    highlights, matched = [], set()
    for m in _WORD.finditer(shown):
        folded = fold(m.group())
        if folded in wanted:
            highlights.append((m.start(), m.end()))
            matched.add(folded)
    return Snippet(shown, highlights, frozenset(matched))


def _around_first_match(sentence: str, wanted: frozenset[str], width: int) -> str:
    """A window of ``width`` characters of a long sentence, starting a little before its first match."""
    first = next((m.start() for m in _WORD.finditer(sentence) if fold(m.group()) in wanted), 0)
    begin = max(0, first - width // 4)
    if begin > 0:
        begin = sentence.find(" ", begin) + 1 or begin
    window = sentence[begin : begin + width - 4]
    if begin + width - 4 < len(sentence):
        window = window.rsplit(" ", 1)[0] + " " + ELLIPSIS
    return (ELLIPSIS + " " if begin > 0 else "") + window
