"""Character sliding windows cut at word boundaries ("window-v1").

Guarantees, for any text and valid policy (whitespace is `str.isspace`, a *word start* is a non-whitespace
character at position 0 or after a whitespace character):

* No text is lost: every non-whitespace character lies in some window (counting windows beyond the cap).
  What may fall between two consecutive windows, or before the first or after the last, is whitespace only.
* Every window has at most `chunk_size` characters, starts with a non-whitespace character and ends with one
  (no leading or trailing whitespace), so no window is whitespace only and empty or blank text has none.
* A window ends at a word end whenever its span holds any whitespace; otherwise the single "word" is longer
  than the window and is hard-split (backing off so a combining mark stays with its base character).
* A window starts at a word start, or exactly where the previous window hard-split a long word.
* The next window starts at the first word start at or after `end - overlap` (so the shared text is at most
  `overlap` characters and never starts mid-word); when there is no such word start before `end`, or starting
  there would add no new text (a long word follows), it starts at the next word start at or after `end`.
* Starts strictly increase and ends strictly increase; the output depends only on the text and the policy.
* Linear time: each window costs O(chunk_size) in C-level regex scans, and windows advance by at least
  `chunk_size - overlap` characters except where whitespace or long words force a cut.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from holocron.chunking.policy import ChunkPolicy

# `\s` in a str pattern is exactly `str.isspace`, so the regexes and the docstring's definitions agree.
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)  # match(text, a, b): the last whitespace in text[a:b]
_WORD_START = re.compile(r"(?<!\S)\S")  # search(text, a, b): first word start in [a, b)
_NON_SPACE = re.compile(r"\S")  # search(text, a): first non-whitespace at or after a


@dataclass(frozen=True)
class ChunkSpan:
    """One window: `text == source[start:end]`, `index` counts from 0 in source order."""

    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ChunkingResult:
    """The windows kept, and how many the cap dropped: a truncated source is never silent."""

    spans: list[ChunkSpan]
    total_windows: int  # windows the whole text needs, kept or not
    dropped: int  # total_windows - len(spans): windows beyond policy.max_chunks

    @property
    def truncated(self) -> bool:
        return self.dropped > 0


@dataclass(frozen=True)
class _Window:
    start: int
    end: int  # exclusive, trailing whitespace trimmed
    cut: int  # where the scan stopped; text[end:cut] is whitespace
    hard: bool  # cut inside a word longer than the window


def _window(text: str, start: int, size: int) -> _Window:
    """The window beginning at `start` (a non-whitespace character)."""
    n = len(text)
    limit = start + size
    if limit >= n:
        cut, hard = n, False
    else:
        # The last whitespace in text[start:limit + 1]: at `limit` itself the word ends exactly at the limit.
        m = _LAST_SPACE.match(text, start, limit + 1)
        if m is not None:
            cut, hard = min(m.end(), limit), False
        else:
            cut, hard = limit, True
            while cut > start + 1 and unicodedata.combining(text[cut]):
                cut -= 1
    end = cut
    if not hard:
        end = start + len(text[start:cut].rstrip())
    return _Window(start, end, cut, hard)


def _next_window(text: str, prev: _Window, policy: ChunkPolicy) -> _Window | None:
    """The window after `prev`, or None when only whitespace remains."""
    if prev.cut >= len(text):
        return None
    if prev.hard:
        return _window(text, prev.cut, policy.chunk_size)
    low = max(prev.end - policy.overlap, prev.start + 1)
    if low < prev.end:
        m = _WORD_START.search(text, low, prev.end)
        if m is not None:
            candidate = _window(text, m.start(), policy.chunk_size)
            if candidate.end > prev.end:
                return candidate
    m = _NON_SPACE.search(text, prev.end)
    if m is None:
        return None
    return _window(text, m.start(), policy.chunk_size)


def chunk_text(text: str, policy: ChunkPolicy) -> ChunkingResult:
    """Cut `text` into windows under `policy`; see the module docstring for the guarantees.

    Windows beyond `policy.max_chunks` are still computed (to count them) but not returned.
    """
    if policy.algorithm != "window-v1":
        raise ValueError(f"chunk_text implements window-v1, not {policy.algorithm!r}")
    spans: list[ChunkSpan] = []
    total = 0
    first = _NON_SPACE.search(text)
    window = _window(text, first.start(), policy.chunk_size) if first is not None else None
    while window is not None:
        if total < policy.max_chunks:
            spans.append(ChunkSpan(total, window.start, window.end, text[window.start : window.end]))
        total += 1
        window = _next_window(text, window, policy)
    return ChunkingResult(spans=spans, total_windows=total, dropped=total - len(spans))
