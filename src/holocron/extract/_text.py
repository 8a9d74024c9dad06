"""Text normalisation shared by the extractors.

Every extractor produces *blocks* (a block is a list of lines: a paragraph, a heading, a list, a
table) and hands them to :func:`compose`, which is the single place that fixes the output format:
NFC, whitespace inside a line collapsed to single spaces, no empty lines inside a block, and exactly
one blank line between blocks. Keeping that in one function is what makes the output of all source
types interchangeable for the chunker and deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

Block = list[str]

# Characters that only steer rendering (zero-width space, BOM, soft hyphen, bidi marks, word joiner)
# and C0/C1 control characters: dropped so that they never split or glue words for the embedder.
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_CONTROLS = (*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F, *range(0x80, 0x85), *range(0x86, 0xA0))
_DROP: dict[int, str | None] = dict.fromkeys(_CONTROLS)
_DROP.update({ord(ch): None for ch in "\u00ad\u200b\u200e\u200f\u2060\ufeff"})
_DROP.update({ord(ch): "\n" for ch in _LINE_BREAKS})
_DROP[0x1F] = " "
_WS = re.compile(r"\s+")
# Most lines hold none of the characters above; finding that out with one regex scan is far cheaper than
# str.translate's per-character dictionary lookups.
_NEEDS_TRANSLATE = re.compile("[" + re.escape("".join(map(chr, _DROP))) + "]")


def _translated(text: str) -> str:
    return text.translate(_DROP) if _NEEDS_TRANSLATE.search(text) else text


# Section headings after which a wiki article holds only references, link lists or site furniture.
TAIL_SECTIONS = frozenset(
    {
        "references",
        "notes",
        "sources",
        "external links",
        "see also",
        "further reading",
        "footnotes",
        "citations",
        "bibliography",
        "notes and references",
        "references and notes",
        "notes and sources",
        "sources and notes",
        "works cited",
        "external link",
    }
)


def is_tail_heading(text: str) -> bool:
    """Whether a heading opens a references / external-links section that adds nothing to embed."""
    return _WS.sub(" ", text).strip().rstrip(":").strip().casefold() in TAIL_SECTIONS


def clean_line(text: str) -> str:
    """Return one line of text: NFC, invisible and control characters dropped, whitespace collapsed."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return " ".join(_translated(text).split())  # split() collapses exactly what \s+ matches, in C


def split_lines(text: str) -> list[str]:
    """Split raw text into lines on every kind of line break (CR, LF, CRLF, U+2028, ...)."""
    return _translated(text.replace("\r\n", "\n")).split("\n")


class Heading(list[str]):
    """A heading block: one line, and its level (1 for ``<h1>`` or ``= Title =``), so that the outline of the
    text (:func:`outline`) knows which section each offset lies in."""

    def __init__(self, text: str, level: int) -> None:
        super().__init__([text])
        self.level = level


@dataclass(frozen=True)
class Section:
    """A heading of the composed text: where it starts, its level and its words."""

    offset: int
    level: int
    title: str


def _composed(blocks: Iterable[Sequence[str]]) -> Iterator[tuple[str, Sequence[str]]]:
    """Each non-empty block's final text, with the block it came from."""
    for block in blocks:
        lines = [line for line in (clean_line(raw) for raw in block) if line]
        if lines:
            yield "\n".join(lines), block


def compose(blocks: Iterable[Sequence[str]]) -> str:
    """Join blocks into the final text: lines by a newline, blocks by exactly one blank line."""
    return "\n\n".join(text for text, _ in _composed(blocks))


def outline(blocks: Iterable[Sequence[str]]) -> tuple[Section, ...]:
    """The headings of ``compose(blocks)``, with their offsets in it."""
    found: list[Section] = []
    offset = 0
    for text, block in _composed(blocks):
        if isinstance(block, Heading):
            found.append(Section(offset, block.level, text))
        offset += len(text) + 2
    return tuple(found)


def section_path(sections: Sequence[Section], offset: int) -> list[str]:
    """The headings above ``offset``, outermost first (a heading at the offset itself counts): the chunk
    that starts there belongs to that section."""
    path: list[Section] = []
    for section in sections:
        if section.offset > offset:
            break
        while path and path[-1].level >= section.level:
            path.pop()
        path.append(section)
    return [section.title for section in path]


def with_title(title: str | None, blocks: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """Put the title first, dropping a leading body block that merely repeats it."""
    if not title:
        return list(blocks)
    rest = list(blocks)
    key = title.casefold()
    while rest and len(rest[0]) == 1 and clean_line(rest[0][0]).casefold() == key:
        rest.pop(0)
    return [[title], *rest]


def clean_title(title: str | None) -> str | None:
    """Normalise a title to one clean line, or None when nothing readable is left."""
    if title is None:
        return None
    cleaned = clean_line(title)
    return cleaned or None
