"""Light cleanup of raw wikitext into blocks.

This is not a wikitext parser: it removes what would otherwise pollute the text (templates,
references, file and category links, table and list syntax, bold/italic quotes) and keeps the words.
Infobox templates are dropped with all other templates.
"""

from __future__ import annotations

import re

from holocron.extract._text import Block, clean_line, is_tail_heading, split_lines

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_REF = re.compile(r"<ref\b[^>/]*/>|<ref\b[^>]*>.*?(?:</ref\s*>|\Z)", re.DOTALL | re.IGNORECASE)
_DROPPED_ELEMENTS = re.compile(
    r"<(gallery|math|score|timeline|graph|syntaxhighlight|source|imagemap|templatedata)\b[^>]*>.*?</\1\s*>",
    re.DOTALL | re.IGNORECASE,
)
_MEDIA_LINK = re.compile(r"\[\[\s*:?\s*(?:file|image|media|category)\s*:", re.IGNORECASE)
_PIPED_LINK = re.compile(r"\[\[([^\[\]|]*)\|([^\[\]]*)\]\]")
_LINK = re.compile(r"\[\[:?([^\[\]|]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:|//)[^\s\]]*(?:\s+([^\]]*))?\]")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_QUOTES = re.compile(r"'{2,}")
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_HEADING = re.compile(r"^(={1,6})\s*(.*?)\s*\1\s*$")
_LIST = re.compile(r"^[*#:;]+\s*")
_ENTITY = {
    "&nbsp;": " ",
    "&ndash;": "–",
    "&mdash;": "—",
    "&amp;": "&",
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
}


def looks_like_wikitext(text: str) -> bool:
    """Whether plain text carries wikitext markup worth converting (links, templates, headings)."""
    return "[[" in text or "{{" in text or "'''" in text or bool(re.search(r"^==.*==\s*$", text, re.MULTILINE))


def strip_balanced(text: str, opening: str, closing: str) -> str:
    """Remove every balanced ``opening ... closing`` span, nested ones included.

    An opening that is never closed (or a stray closing) is dropped on its own, so that one broken
    template cannot swallow the rest of the page. Linear in the length of the text.
    """
    tokens = re.compile(f"{re.escape(opening)}|{re.escape(closing)}")
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for match in tokens.finditer(text):
        if match.group() == opening:
            stack.append(match.start())
        elif stack:
            spans.append((stack.pop(), match.end()))
        else:
            spans.append(match.span())
    spans.extend((start, start + len(opening)) for start in stack)
    out: list[str] = []
    position = 0
    for start, end in sorted(spans):
        if start >= position:
            out.append(text[position:start])
        position = max(position, end)
    out.append(text[position:])
    return "".join(out)


def _strip_media_links(text: str) -> str:
    """Remove ``[[File:...]]`` / ``[[Category:...]]`` links, whose captions may hold nested links."""
    out: list[str] = []
    position = 0
    tokens = re.compile(r"\[\[|\]\]")
    while True:
        found = _MEDIA_LINK.search(text, position)
        if found is None:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position : found.start()])
        depth = 0
        end = len(text)
        for match in tokens.finditer(text, found.start()):
            depth += 1 if match.group() == "[[" else -1
            if depth == 0:
                end = match.end()
                break
        position = end


def _inline(text: str) -> str:
    text = _PIPED_LINK.sub(r"\2", text)
    text = _LINK.sub(lambda m: m.group(1).lstrip("#"), text)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _TAG.sub("", text)
    text = _QUOTES.sub("", text)
    text = _MAGIC_WORD.sub("", text)
    for entity, char in _ENTITY.items():
        text = text.replace(entity, char)
    return text


def wikitext_blocks(text: str) -> list[Block]:
    """Blocks of a wikitext page: headings, paragraphs, list items and table rows as lines."""
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROPPED_ELEMENTS.sub("", text)
    text = strip_balanced(text, "{{", "}}")
    text = _strip_media_links(text)
    text = _BR.sub("\n", text)
    blocks: list[Block] = []
    paragraph: list[str] = []
    listing: list[str] = []
    skipping: int | None = None

    def flush() -> None:
        nonlocal paragraph, listing
        if paragraph:
            blocks.append([" ".join(paragraph)])
        if listing:
            blocks.append(listing)
        paragraph, listing = [], []

    for raw in split_lines(text):
        stripped = raw.strip()
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            level = len(heading.group(1))
            title = clean_line(_inline(heading.group(2)))
            if skipping is not None and level <= skipping:
                skipping = None
            if skipping is None and is_tail_heading(title):
                skipping = level
            elif skipping is None and title:
                blocks.append([title])
            continue
        if skipping is not None:
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith(("{|", "|}", "|-")):
            flush()
            continue
        if stripped.startswith(("|", "!")):
            if paragraph:
                flush()
            cells = re.split(r"\|\||!!", stripped[1:])
            listing.append(" | ".join(_cell(cell) for cell in cells if _cell(cell)))
            continue
        if _LIST.match(stripped):
            if paragraph:
                flush()
            listing.append(_inline(_LIST.sub("", stripped)))
            continue
        if listing:
            flush()
        paragraph.append(_inline(stripped))
    flush()
    return [[line for line in (clean_line(raw) for raw in block) if line] for block in blocks]


def _cell(cell: str) -> str:
    """Text of one table cell, dropping its ``attr="..." |`` prefix."""
    if "|" in cell and "[[" not in cell.split("|", 1)[0]:
        cell = cell.split("|", 1)[1]
    if cell.startswith("+"):
        cell = cell[1:]
    return clean_line(_inline(cell))
