"""Structure-aware chunks ("structure-v1"): the document's own structure first, then the model's token window.

A chunk is cut, in order of preference, at a section boundary, a blank line (paragraph), a line break (list
item, table row), a sentence end, and only then between two words; token counts come from the model's own
tokenizer, read once over the whole text (:class:`Tokenizer`), never from a characters-per-token guess.

Guarantees, for any text, headings and tokenizer (whitespace is ``str.isspace``):

* No text is lost: every non-whitespace character lies in exactly one chunk (counting chunks beyond the cap);
  what falls between two chunks, or before the first or after the last, is whitespace only.
* Chunks do not overlap; starts and ends strictly increase; every chunk starts and ends with a
  non-whitespace character; the output depends only on the text, the headings, the tokenizer and the policy.
* A chunk never crosses the start of a section, except that a heading with no text of its own before the next
  heading travels with what follows it.
* A chunk and its contextual header together hold at most ``policy.chunk_size`` tokens (as the tokenizer
  counts them in the whole text), unless one word alone is longer: only then is a cut made inside a word, at
  one of the tokenizer's own token boundaries.
* Linear in the text apart from a binary search per candidate cut: each level of the preference order scans
  only the pieces the level above could not fit.

The contextual header is the heading path (title › section › subsection) of the chunk's start, less a last
heading the chunk itself begins with; :func:`embedding_input` is the one place it is joined to the content.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from holocron.chunking.chunker import ChunkingResult, ChunkSpan
from holocron.chunking.policy import ChunkPolicy

# Between the levels of a heading path, as shown to people and to the model.
PATH_SEPARATOR = " › "
# A header longer than this share of the window keeps only its last heading, and no header at all if that
# is still too long: the chunk's own text must keep most of the window.
MAX_HEADER_SHARE = 0.25
# What precedes a block too long for one chunk is "short" below 1/4 of the window: it is filled up with the
# block's start instead of standing alone.
SMALL_SHARE_DIVISOR = 4

# The preference order of cuts: each pattern matches the whitespace a cut may replace.
_CUTS = (
    re.compile(r"\n[^\S\n]*\n\s*"),  # a blank line: paragraphs, and the blocks of the composed text
    re.compile(r"\n\s*"),  # a line break: list items, table rows, lines of a block
    re.compile(r"(?:(?<=[.!?;:])|(?<=[.!?][\"'’”)\]]))\s+"),  # a sentence end (or a clause ending in ; or :)
    re.compile(r"\s+"),  # between two words
)


@runtime_checkable
class Tokenizer(Protocol):
    """The model's tokenizer, as chunking needs it; ``name`` goes into the policy's version."""

    @property
    def name(self) -> str: ...

    def token_ends(self, text: str) -> list[int]:
        """The end offset in ``text`` of each token, in order, with no special tokens."""
        ...

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, with no special tokens."""
        ...


def embedding_input(context: str | None, content: str) -> str:
    """What the model embeds for a chunk: its contextual header, a blank line, its content."""
    return f"{context}\n\n{content}" if context else content


def contextual_header(path: Sequence[str], chunk_text: str) -> str:
    """The heading path joined, less a last heading that the chunk itself begins with (it is shown already)."""
    shown = list(path)
    if shown and chunk_text.startswith(shown[-1]) and chunk_text[len(shown[-1]) : len(shown[-1]) + 1] in ("", "\n"):
        shown.pop()
    return PATH_SEPARATOR.join(shown)


class _Counter:
    """Tokens of any span of the text, from the end offsets of the whole text's tokens."""

    def __init__(self, ends: Sequence[int]) -> None:
        self.ends = ends

    def tokens(self, start: int, end: int) -> int:
        """Tokens whose last character lies in ``[start, end)``."""
        return bisect_right(self.ends, end) - bisect_right(self.ends, start)

    def fits(self, start: int, end: int, budget: int) -> bool:
        return self.tokens(start, end) <= budget


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span without leading and trailing whitespace, or None when it is whitespace only."""
    piece = text[start:end]
    stripped = piece.lstrip()
    if not stripped:
        return None
    first = start + len(piece) - len(stripped)
    return first, first + len(stripped.rstrip())


def _pieces(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """The non-blank parts of ``text[start:end]`` between the cuts of one level, trimmed."""
    parts: list[tuple[int, int]] = []
    position = start
    for match in _CUTS[level].finditer(text, start, end):
        trimmed = _trim(text, position, match.start())
        if trimmed is not None:
            parts.append(trimmed)
        position = match.end()
    trimmed = _trim(text, position, end)
    if trimmed is not None:
        parts.append(trimmed)
    return parts


def _hard_split(counter: _Counter, start: int, end: int, budget: int) -> list[tuple[int, int]]:
    """A word longer than the window, cut at the tokenizer's token boundaries, ``budget`` tokens a piece."""
    ends = counter.ends
    first = bisect_right(ends, start)
    last = bisect_right(ends, end)
    cuts = [ends[index] for index in range(first + budget - 1, last, budget) if ends[index] < end]
    bounds = [start, *cuts, end]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _atoms(
    text: str, counter: _Counter, start: int, end: int, budget: int, level: int, opens_split: bool
) -> list[tuple[int, int, bool]]:
    """The pieces of ``text[start:end]`` that fit the budget whole, cut at the most preferred level that makes
    them fit; each says whether it opens a block (paragraph, line, sentence) that had to be split."""
    if counter.fits(start, end, budget):
        return [(start, end, opens_split)]
    if level == len(_CUTS):
        pieces = _hard_split(counter, start, end, budget)
        return [(a, b, opens_split and index == 0) for index, (a, b) in enumerate(pieces)]
    atoms: list[tuple[int, int, bool]] = []
    for index, (piece_start, piece_end) in enumerate(_pieces(text, start, end, level)):
        first = opens_split and index == 0
        if counter.fits(piece_start, piece_end, budget):
            atoms.append((piece_start, piece_end, first))
        else:
            atoms.extend(_atoms(text, counter, piece_start, piece_end, budget, level + 1, True))
    return atoms


def _split(text: str, counter: _Counter, start: int, end: int, budget: int) -> list[tuple[int, int]]:
    """``text[start:end]`` as spans of at most ``budget`` tokens: whole pieces packed in order while they fit.

    A block too long for one chunk starts a chunk of its own, so the cut falls at its start rather than inside
    it, unless what precedes it is short (a title, a heading, a lead line): that is filled up instead.
    """
    small = max(1, budget // SMALL_SHARE_DIVISOR)
    spans: list[tuple[int, int]] = []
    for atom_start, atom_end, opens_split in _atoms(text, counter, start, end, budget, 0, False):
        packs = spans and counter.fits(spans[-1][0], atom_end, budget)
        if packs and (not opens_split or counter.fits(spans[-1][0], spans[-1][1], small)):
            spans[-1] = (spans[-1][0], atom_end)
        else:
            spans.append((atom_start, atom_end))
    return spans


def _regions(text: str, boundaries: Sequence[int]) -> list[tuple[int, int]]:
    """The text between section starts; a heading with no text of its own joins the region after it."""
    starts = sorted({offset for offset in boundaries if 0 < offset < len(text)})
    bounds = [0, *starts, len(text)]
    regions: list[tuple[int, int]] = []
    carried: int | None = None
    for region_start, region_end in itertools.pairwise(bounds):
        trimmed = _trim(text, region_start, region_end)
        if trimmed is None:
            continue
        begin = trimmed[0] if carried is None else carried
        if region_end < len(text) and "\n" not in text[trimmed[0] : trimmed[1]]:
            carried = begin  # a heading line alone: it opens the next region
            continue
        regions.append((begin, trimmed[1]))
        carried = None
    if carried is not None:
        trimmed = _trim(text, carried, len(text))
        if trimmed is not None:
            regions.append(trimmed)
    return regions


def _header_for(
    path: Sequence[str], tokenizer: Tokenizer, window: int, cache: dict[tuple[str, ...], tuple[tuple[str, ...], int]]
) -> tuple[tuple[str, ...], int]:
    """The path the header may show, and its tokens: all of it, else its last heading, else nothing (see
    MAX_HEADER_SHARE)."""
    key = tuple(path)
    if key not in cache:
        limit = int(window * MAX_HEADER_SHARE)
        candidates = [key, key[-1:], ()]
        counts = [*tokenizer.count([PATH_SEPARATOR.join(candidate) for candidate in candidates[:2]]), 0]
        cache[key] = next((c, n) for c, n in zip(candidates, counts, strict=True) if n <= limit)
    return cache[key]


def chunk_structure(
    text: str,
    policy: ChunkPolicy,
    tokenizer: Tokenizer,
    *,
    section_starts: Sequence[int] = (),
    heading_path: Callable[[int], Sequence[str]] = lambda offset: (),
    title: str | None = None,
) -> tuple[ChunkingResult, list[str]]:
    """Cut ``text`` under a structure policy; returns the chunks and each chunk's contextual header.

    ``section_starts`` are the offsets where headings begin; ``heading_path(offset)`` the headings above an
    offset, outermost first; ``title`` leads every path (when the policy asks for headers at all).
    """
    if policy.algorithm != "structure-v1":
        raise ValueError(f"chunk_structure implements structure-v1, not {policy.algorithm!r}")
    counter = _Counter(tokenizer.token_ends(text))
    window = policy.chunk_size
    headers: dict[tuple[str, ...], tuple[tuple[str, ...], int]] = {}
    spans: list[ChunkSpan] = []
    contexts: list[str] = []
    total = 0
    starts = sorted(section_starts)

    def shown_path(offset: int) -> tuple[tuple[str, ...], int]:
        if policy.context != "path":
            return (), 0
        headings = tuple(heading_path(offset))
        lead = (title,) if title and headings[:1] != (title,) else ()  # a title that is also the first heading
        full = tuple(part for part in lead + headings if part)
        return _header_for(full, tokenizer, window, headers) if full else ((), 0)

    for region_start, region_end in _regions(text, section_starts):
        # The header of any chunk of the region is the path at its start: reserve room for the longest one.
        inside = starts[bisect_right(starts, region_start) : bisect_right(starts, region_end)]
        reserve = max(shown_path(offset)[1] for offset in (region_start, *inside))
        budget = max(1, window - reserve)
        for start, end in _split(text, counter, region_start, region_end, budget):
            if total < policy.max_chunks:
                content = text[start:end]
                spans.append(ChunkSpan(total, start, end, content))
                contexts.append(contextual_header(shown_path(start)[0], content))
            total += 1
    return ChunkingResult(spans=spans, total_windows=total, dropped=total - len(spans)), contexts
