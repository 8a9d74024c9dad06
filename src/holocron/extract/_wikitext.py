"""Wikitext into blocks: mwparserfromhell for pages it can parse in bounded time, linear regexes otherwise.

mwparserfromhell reads wikitext as MediaWiki does (nested templates, piped and media links, tags, tables,
list items), and :func:`wikitext_blocks` walks its tree. Its tokenizer has one weakness: every mark
opened and never closed (``<b>``, ``[[x|``, ``[http://x``, ``<ref>``) makes it rescan to the end of the
page, so a page with thousands of them takes minutes (64 kB of ``<b>`` takes 30 s, 256 kB over 500 s).
:func:`unclosed_marks` counts those marks in one linear pass, and a page with more than
:data:`MAX_UNCLOSED` of them, or longer than :data:`MAX_PARSED_CHARS`, goes to the regex cleaner below.

The regex cleaner removes what would otherwise pollute the text (templates, references, file and
category links, table and list syntax, bold/italic quotes) and keeps the words. Every regex in it is
linear: each one either always succeeds once it has started (``.*?`` up to a closing mark *or the end*),
or scans only characters that cannot start another attempt (a class that excludes the opening and closing
marks) with possessive quantifiers, so that no attempt backtracks and no two attempts scan the same
characters. Both paths end in :func:`_assemble`, the one rule for turning lines into blocks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, HTMLEntity, Tag, Text, Wikilink
from mwparserfromhell.nodes import Heading as HeadingNode
from mwparserfromhell.wikicode import Wikicode

from holocron.extract._text import Block, Heading, clean_line, is_tail_heading, split_lines

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# A <ref/>, or a <ref> up to its </ref> or the end of the text (an unclosed one hides the rest anyway).
_REF = re.compile(r"<ref\b[^<>/]*+/>|<ref\b[^<>]*+>.*?(?:</ref\s*+>|\Z)", re.DOTALL | re.IGNORECASE)
# Elements whose content is not text of the page, or is not shown on it (besides <ref>, read on its own).
_DROPPED_ELEMENTS = (
    "gallery",
    "math",
    "chem",
    "score",
    "timeline",
    "graph",
    "syntaxhighlight",
    "source",
    "imagemap",
    "templatedata",
    "includeonly",
    "mapframe",
    "maplink",
    "style",
    "script",
)
_DROPPED_OPENING = re.compile(rf"<({'|'.join(_DROPPED_ELEMENTS)})\b[^<>]*+>", re.IGNORECASE)
_DROPPED_CLOSING = {name: re.compile(rf"</{name}\s*+>", re.IGNORECASE) for name in _DROPPED_ELEMENTS}
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


def _inline_markup(text: str) -> str:
    # Most lines hold few kinds of markup: each substitution runs only where its mark occurs.
    if "[" in text:
        text = _PIPED_LINK.sub(r"\2", text)
        text = _LINK.sub(lambda m: m.group(1).lstrip("#"), text)
        text = _external_links(text)
    text = _plain(text)
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
    text = text.translate(_NO_SENTINELS)
    if len(text) <= MAX_PARSED_CHARS and unclosed_marks(text) <= MAX_UNCLOSED:
        return _assemble(_parsed_lines(text))
    return _assemble(_cleaned_lines(text))


# --- the one rule for lines into blocks --------------------------------------------------------------------

_TEXT, _ITEM, _BREAK, _HEADING = "text", "item", "break", "heading"
# (kind, heading level, text): a paragraph line, a list item or table row, a block boundary, a heading.
_Line = tuple[str, int, str]
_BREAK_LINE: _Line = (_BREAK, 0, "")


def _assemble(lines: Iterable[_Line]) -> list[Block]:
    """Paragraph lines joined into one line, items and rows kept as lines, tail sections (References, ...) dropped."""
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

    for kind, level, line in lines:
        if kind == _HEADING:
            flush()
            title = clean_line(line)
            if skipping is not None and level <= skipping:
                skipping = None
            if skipping is None and is_tail_heading(title):
                skipping = level
            elif skipping is None and title:
                blocks.append(Heading(title, level))
        elif skipping is not None:
            continue
        elif kind == _BREAK:
            flush()
        elif kind == _ITEM:
            if paragraph:
                flush()
            listing.append(line)
        else:
            if listing:
                flush()
            paragraph.append(line)
    flush()
    return [
        block if isinstance(block, Heading) else [line for line in map(clean_line, block) if line] for block in blocks
    ]


# --- the parser: mwparserfromhell's tree, rendered to marked lines -----------------------------------------

# Private-use characters that mark a rendered line as a list item or table row, or as a heading; removed
# from the input first, so that no page can forge them.
_ITEM_MARK, _HEADING_MARK = "\ue000", "\ue001"
_NO_SENTINELS = str.maketrans("", "", _ITEM_MARK + _HEADING_MARK)
_MEDIA_TARGET = re.compile(r"\s*+(?:file|image|media|category)\s*+:", re.IGNORECASE)
_DROPPED_TAGS = frozenset({"ref", "references", *_DROPPED_ELEMENTS})
_BLOCK_TAGS = frozenset({"p", "div", "blockquote", "center", "pre", "dl", "ul", "ol", "section", "poem"})
_LIST_TAGS = frozenset({"li", "dt", "dd"})
_CELL_TAGS = frozenset({"td", "th"})
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Opening marks that the tokenizer retries to the end of the page when they are never closed.
# Marks the tokenizer retries to the end of the page when they are never closed: a paired opening tag (not
# self-closing), a closing tag, an opening tag never terminated by ">".
_PAIRED_OPENING = re.compile(r"<([A-Za-z][A-Za-z0-9]*+)\b[^<>]*+(?<!/)>")
_CLOSING_TAG = re.compile(r"</([A-Za-z][A-Za-z0-9]*+)")
_UNTERMINATED_TAG = re.compile(r"<[A-Za-z][A-Za-z0-9]*+\b[^<>]*+(?=<|\Z)")
_VOID_TAGS = frozenset({"br", "hr", "wbr", "img", "references"})
_TABLE_OPENING = re.compile(r"^[ \t]*+\{\|", re.MULTILINE)
_TABLE_CLOSING = re.compile(r"^[ \t]*+\|\}", re.MULTILINE)
MAX_UNCLOSED = 16
"""A page with more marks than this opened and never closed goes to the linear cleaner."""
MAX_PARSED_CHARS = 1_000_000
"""Longer pages go to the linear cleaner. The parser is not quite linear even on well-formed text: 0.4 s/MB
at 125 kB, 0.9 s/MB at 1 MB, 1.5 s/MB at 2 MB of prose (the largest real articles are a few hundred kB)."""


def unclosed_marks(text: str) -> int:
    """How many tags, links, templates, tables, comments and bracketed URLs are opened and never closed.

    An upper bound of the tokenizer's rescans: each such mark makes mwparserfromhell try it to the end
    of the page (or of the line, for a URL) before reading it as text. A ``<tag`` without its ``>``
    counts, as does each ``[[`` or ``{{`` left on the stack at the end. One linear pass per kind of mark,
    the counting done in C.
    """
    opened = Counter(map(str.lower, _PAIRED_OPENING.findall(text)))
    closed = Counter(map(str.lower, _CLOSING_TAG.findall(text)))
    unclosed = sum(max(0, count - closed[name]) for name, count in opened.items() if name not in _VOID_TAGS)
    unclosed += len(_UNTERMINATED_TAG.findall(text))
    for opening, closing in (("[[", "]]"), ("{{", "}}")):
        if opening in text:
            depth = 0
            for mark in re.findall(f"{re.escape(opening)}|{re.escape(closing)}", text):
                depth = depth + 1 if mark == opening else max(0, depth - 1)
            unclosed += depth
    unclosed += max(0, len(_TABLE_OPENING.findall(text)) - len(_TABLE_CLOSING.findall(text)))
    if "<!--" in text:  # an opening inside a comment counts too: after an unclosed one, each is retried
        unclosed += text.count("<!--") - sum(comment.endswith("-->") for comment in _COMMENT.findall(text))
    if "[" in text:
        for line in text.split("\n"):
            unclosed += len(_EXTERNAL_LINK.findall(line, line.rfind("]") + 1))
    return unclosed


def _parsed_lines(text: str) -> Iterator[_Line]:
    out: list[str] = []
    _render(mwparserfromhell.parse(text, skip_style_tags=True), out)
    for raw in split_lines("".join(out)):
        stripped = raw.strip()
        if not stripped:
            yield _BREAK_LINE
        elif stripped[0] == _HEADING_MARK:
            level, _, title = stripped[1:].partition(_HEADING_MARK)
            yield _HEADING, int(level), title.replace(_ITEM_MARK, " ")
        elif stripped[0] == _ITEM_MARK:
            yield _ITEM, 0, stripped.lstrip(_ITEM_MARK).replace(_ITEM_MARK, " ")
        else:
            yield _TEXT, 0, stripped.replace(_ITEM_MARK, " ")


def _inline(code: Wikicode | None) -> str:
    """The text of a link label, heading or table cell, on one line."""
    out: list[str] = []
    if code is not None:
        _render(code, out)
    return " ".join("".join(out).split())


def _render(code: Wikicode, out: list[str]) -> None:
    """Append the text of ``code`` to ``out``: line marks for headings, items and rows, nothing for markup."""
    for node in code.nodes:
        if isinstance(node, Text):
            out.append(_plain(node.value))
        elif isinstance(node, Wikilink):
            target = str(node.title)
            if _MEDIA_TARGET.match(target):
                continue  # an image or a category; with a leading colon ([[:File:x]]) it is a visible link
            out.append(_inline(node.text) if node.text is not None else _inline(node.title).lstrip(":#"))
        elif isinstance(node, ExternalLink):
            if node.brackets:
                out.append(_inline(node.title) if node.title is not None else "")
            else:
                out.append(str(node.url))
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, HeadingNode):
            out.append(f"\n{_HEADING_MARK}{min(node.level, 6)}{_HEADING_MARK}{_inline(node.title)}\n")
        elif isinstance(node, Tag):
            _render_tag(node, out)
        # templates, template arguments and comments render as nothing


def _render_tag(tag: Tag, out: list[str]) -> None:
    name = str(tag.tag).strip().lower()
    if tag.wiki_markup and name in _LIST_TAGS:
        # A wiki list mark (*, #, ;, :) opens the line it starts; its text is the nodes that follow.
        out.append(_ITEM_MARK)
        return
    if name in _DROPPED_TAGS or tag.self_closing or tag.contents is None:
        if name == "br":
            out.append("\n")
        elif name == "hr":
            out.append("\n\n")
        return
    if name == "table":
        out.append("\n\n")
        _render_rows(tag.contents, out)
        out.append("\n\n")
    elif name in _LIST_TAGS:
        out.append(f"\n{_ITEM_MARK}")
        _render(tag.contents, out)
    elif name in _HTML_HEADINGS:
        out.append(f"\n{_HEADING_MARK}{_HTML_HEADINGS[name]}{_HEADING_MARK}{_inline(tag.contents)}\n")
    elif name in _BLOCK_TAGS:
        out.append("\n\n")
        _render(tag.contents, out)
        out.append("\n\n")
    else:
        _render(tag.contents, out)


def _render_rows(table: Wikicode, out: list[str]) -> None:
    """A table as one item line per row, its cells joined by `` | ``; a caption as a line of its own."""
    cells: list[str] = []

    def end_row() -> None:
        if any(cells):
            out.append(f"\n{_ITEM_MARK}" + " | ".join(cell for cell in cells if cell))
        cells.clear()

    for node in table.nodes:
        if not isinstance(node, Tag) or node.contents is None:
            continue
        name = str(node.tag).strip().lower()
        if name == "tr":
            end_row()
            cells.extend(
                _inline(cell.contents) for cell in node.contents.nodes if isinstance(cell, Tag) and _is_cell(cell)
            )
            end_row()
        elif name in _CELL_TAGS and node.wiki_markup == "|" and str(node.contents).startswith("+"):
            end_row()  # "|+ caption": mwparserfromhell reads it as a cell
            cells.append(_inline(node.contents)[1:].strip())
            end_row()
        elif name in _CELL_TAGS:
            cells.append(_inline(node.contents))
        elif name == "caption":
            end_row()
            cells.append(_inline(node.contents))
            end_row()
        elif name in ("thead", "tbody", "tfoot"):
            end_row()
            _render_rows(node.contents, out)
    end_row()


def _is_cell(node: Tag) -> bool:
    return str(node.tag).strip().lower() in _CELL_TAGS


def _plain(text: str) -> str:
    """A text node without the marks the parser leaves in text: bold/italic quotes, magic words, stray tags."""
    if "''" in text:
        text = _QUOTES.sub("", text)
    if "__" in text:
        text = _MAGIC_WORD.sub("", text)
    if "<" in text:
        text = _TAG.sub("", text)
    return text


# --- the linear cleaner, for pages the parser would take too long on ---------------------------------------


def _cleaned_lines(text: str) -> Iterator[_Line]:
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _drop_elements(text)
    text = strip_balanced(text, "{{", "}}")
    text = _strip_media_links(text)
    text = _BR.sub("\n", text)
    for raw in split_lines(text):
        stripped = raw.strip()
        found = heading(stripped)
        if found:
            yield _HEADING, found[0], _inline_markup(found[1])
        elif not stripped or stripped.startswith(("{|", "|}", "|-")):
            yield _BREAK_LINE
        elif stripped.startswith(("|", "!")):
            cells = (_cell(cell) for cell in _CELL_SEPARATOR.split(stripped[1:]))
            yield _ITEM, 0, " | ".join(cell for cell in cells if cell)
        elif _LIST.match(stripped):
            yield _ITEM, 0, _inline_markup(_LIST.sub("", stripped))
        else:
            yield _TEXT, 0, _inline_markup(stripped)


def _cell(cell: str) -> str:
    """Text of one table cell, dropping its ``attr="..." |`` prefix."""
    if "|" in cell and "[[" not in cell.split("|", 1)[0]:
        cell = cell.split("|", 1)[1]
    if cell.startswith("+"):
        cell = cell[1:]
    return clean_line(_inline_markup(cell))
