"""Light cleanup of raw wikitext into blocks, in time linear in the size of the text.

This is not a wikitext parser: it removes what would otherwise pollute the text (templates,
references, file and category links, table and list syntax, bold/italic quotes) and keeps the words.
Infobox templates are dropped with all other templates.

A full parser (mwparserfromhell) is not used on purpose: its tokenizer retries from every unclosed
``<tag>``, ``[[link|``, ``[http://...`` or ``{{template|`` to the end of the page, which takes minutes
on a few hundred kB of broken markup, and even on well-formed markup it runs at 2-6 s per MB.

Every regex here is linear: each one either always succeeds once it has started (``.*?`` up to a
closing mark *or the end*), or scans only characters that cannot start another attempt (a class that
excludes the opening and closing marks) with possessive quantifiers, so that no attempt backtracks and
no two attempts scan the same characters.
"""

from __future__ import annotations

import re

from holocron.extract._text import Block, Heading, clean_line, is_tail_heading, split_lines

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# A <ref/>, or a <ref> up to its </ref> or the end of the text (an unclosed one hides the rest anyway).
_REF = re.compile(r"<ref\b[^<>/]*+/>|<ref\b[^<>]*+>.*?(?:</ref\s*+>|\Z)", re.DOTALL | re.IGNORECASE)
_DROPPED_OPENING = re.compile(
    r"<(gallery|math|score|timeline|graph|syntaxhighlight|source|imagemap|templatedata)\b[^<>]*+>", re.IGNORECASE
)
_DROPPED_CLOSING = {
    name: re.compile(rf"</{name}\s*+>", re.IGNORECASE)
    for name in (
        "gallery",
        "math",
        "score",
        "timeline",
        "graph",
        "syntaxhighlight",
        "source",
        "imagemap",
        "templatedata",
    )
}
_MEDIA_LINK = re.compile(r"\[\[\s*+:?\s*+(?:file|image|media|category)\s*+:", re.IGNORECASE)
_PIPED_LINK = re.compile(r"\[\[([^\[\]|]*+)\|([^\[\]]*+)\]\]")
_LINK = re.compile(r"\[\[:?([^\[\]|]*+)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:|//)")  # the opening of [url] or [url caption]
_BR = re.compile(r"<br\s*+/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*+(?:\s[^<>]*+)?/?>")
_QUOTES = re.compile(r"'{2,}")
_MAGIC_WORD = re.compile(r"__[A-Z]++__")
_LIST = re.compile(r"^[*#:;]++\s*+")
_CELL_SEPARATOR = re.compile(r"\|\||!!")
_HEADING_LINE = re.compile(r"^==[^\n]*==[ \t]*+$", re.MULTILINE)
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
    return "[[" in text or "{{" in text or "'''" in text or _HEADING_LINE.search(text) is not None


def heading(line: str, *, min_level: int = 1) -> tuple[int, str] | None:
    """``== Title ==`` (a stripped line) as ``(2, "Title")``, or None when the line is no heading.

    The level is the number of ``=`` on the side that has fewer (at most 6); the rest is the title, as
    MediaWiki reads ``=== Title ==`` (level 2, title "= Title").
    """
    if len(line) < 2 or line[0] != "=" or line[-1] != "=":
        return None
    lead, trail = len(line) - len(line.lstrip("=")), len(line) - len(line.rstrip("="))
    level = min(len(line) // 2 if lead == len(line) else min(lead, trail), 6)  # only "=": no title
    if level < min_level:
        return None
    return level, line[level : len(line) - level].strip()


def _drop_elements(text: str) -> str:
    """Remove ``<gallery>...</gallery>`` and the like. An element never closed is left as it is."""
    out: list[str] = []
    position = 0
    unclosed: set[str] = set()  # no closing tag after the first opening of these: none for later ones
    while (opening := _DROPPED_OPENING.search(text, position)) is not None:
        name = opening.group(1).lower()
        closing = None if name in unclosed else _DROPPED_CLOSING[name].search(text, opening.end())
        if closing is None:
            unclosed.add(name)
            out.append(text[position : opening.end()])
            position = opening.end()
        else:
            out.append(text[position : opening.start()])
            position = closing.end()
    out.append(text[position:])
    return "".join(out)


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
    # Most lines hold few kinds of markup: each substitution runs only where its mark occurs.
    if "[" in text:
        text = _PIPED_LINK.sub(r"\2", text)
        text = _LINK.sub(lambda m: m.group(1).lstrip("#"), text)
        text = _external_links(text)
    if "<" in text:
        text = _TAG.sub("", text)
    if "''" in text:
        text = _QUOTES.sub("", text)
    if "__" in text:
        text = _MAGIC_WORD.sub("", text)
    if "&" in text:
        for entity, char in _ENTITY.items():
            text = text.replace(entity, char)
    return text


def _external_links(text: str) -> str:
    """``[url caption]`` as its caption (``[url]`` as nothing), up to the first ``]`` after the URL.

    Linear: each link's search for its ``]`` starts where the previous link ended, and when there is no
    ``]`` left, no later link can be closed either, so the rest is left as it is.
    """
    out: list[str] = []
    position = 0
    while (opening := _EXTERNAL_LINK.search(text, position)) is not None:
        closing = text.find("]", opening.end())
        if closing < 0:
            break
        _url, *caption = text[opening.end() : closing].split(None, 1)
        out.append(text[position : opening.start()])
        out.extend(caption)
        position = closing + 1
    out.append(text[position:])
    return "".join(out)


def wikitext_blocks(text: str) -> list[Block]:
    """Blocks of a wikitext page: headings, paragraphs, list items and table rows as lines."""
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _drop_elements(text)
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
        found = heading(stripped)
        if found:
            flush()
            level, title = found[0], clean_line(_inline(found[1]))
            if skipping is not None and level <= skipping:
                skipping = None
            if skipping is None and is_tail_heading(title):
                skipping = level
            elif skipping is None and title:
                blocks.append(Heading(title, level))
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
            cells = (_cell(cell) for cell in _CELL_SEPARATOR.split(stripped[1:]))
            listing.append(" | ".join(cell for cell in cells if cell))
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
    return [
        block if isinstance(block, Heading) else [line for line in map(clean_line, block) if line] for block in blocks
    ]


def _cell(cell: str) -> str:
    """Text of one table cell, dropping its ``attr="..." |`` prefix."""
    if "|" in cell and "[[" not in cell.split("|", 1)[0]:
        cell = cell.split("|", 1)[1]
    if cell.startswith("+"):
        cell = cell[1:]
    return clean_line(_inline(cell))
