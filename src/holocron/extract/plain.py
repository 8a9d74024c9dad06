"""Plain text and Markdown.

Plain text keeps its paragraphs (blank-line separated) and joins hard-wrapped lines inside each.
Markdown is parsed as CommonMark (with GFM tables and strikethrough) and keeps the words, dropping the
syntax that only adds noise to an embedding: heading and list markers, emphasis, link targets, images,
HTML comments and tags, table rules. Both run in time linear in the size of the payload.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from holocron.extract._text import Block, Heading, clean_line, compose, outline, split_lines
from holocron.extract._types import ExtractedDocument, ExtractionError

# A first line longer than this is prose, not a title.
MAX_TITLE_CHARS = 200


def extract_text(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Plain text: the first line is the title, then paragraphs with inner whitespace collapsed."""
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for raw in split_lines(payload):
        line = clean_line(raw)
        if line:
            current.append(line)
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    if not paragraphs:
        raise ExtractionError("text is empty")
    title: str | None = None
    if len(paragraphs[0][0]) <= MAX_TITLE_CHARS:
        title = paragraphs[0][0]
        paragraphs[0] = paragraphs[0][1:]
    blocks: list[Block] = [[title]] if title else []
    blocks.extend([" ".join(lines)] for lines in paragraphs if lines)
    return ExtractedDocument(title=title, text=compose(blocks), metadata=_origin(origin))


def _origin(origin: str | None) -> dict[str, object]:
    return {"origin": origin} if origin else {}


# --- Markdown ----------------------------------------------------------------------------------------
#
# Markdown is parsed by markdown-it-py (CommonMark, plus GFM tables and strikethrough), and the token
# stream is turned into blocks. markdown-it-py is linear in its input, but slow where the input is
# dense: its inline parser pays for every punctuation mark it stops at, several times over inside
# unclosed link brackets, and its block parser pays some 10-40 us for every line. A paragraph made of
# nothing but markup, or a file of a million one-character lines, would take 10-20 s per MB. So:
#
# * each document gets an inline work budget proportional to its size, which real text never comes
#   near (Markdown documentation uses a third to a half of it); an inline run that would overdraw it
#   has its markup stripped by a few linear regexes instead, keeping the words;
# * a document of very many very short lines is read line by line (markers stripped the same way)
#   instead of by markdown-it-py.

_BLOCK_NESTING = 20  # markdown-it's CommonMark default; containers nested deeper are read as plain lines
_INLINE_NESTING = 10  # links and emphasis nested deeper than this are read as text

# Inline work, in units of about 1-3 us of markdown-it-py time (see _inline_cost).
_BUDGET_PER_CHAR = 0.3
_BUDGET_SLACK = 50_000
_BUDGET_KEY = "holocron_inline_budget"  # where a parse keeps what is left of its budget (markdown-it's env)
# More lines than this (in a document of len(text) characters) are read line by line.
_LINE_SLACK = 20_000
_LINE_CHARS = 32
# Where markdown-it-py's inline parser stops scanning plain text (its "terminator" characters).
_TERMINATORS = "\n!#$%&*+-:<=>@[\\]^_`{}~"


def _markdown_it(nesting: int) -> MarkdownIt:
    return MarkdownIt("commonmark", {"maxNesting": nesting}).enable(["table", "strikethrough"])


_INLINE_MD = _markdown_it(_INLINE_NESTING)
_BLOCK_MD = _markdown_it(_BLOCK_NESTING)


def _inline_cost(content: str) -> int:
    """An upper estimate of markdown-it-py's inline work on ``content``.

    Every terminator is a stop; an unclosed ``[`` makes each nested label scan pass over the stops
    again, up to the nesting limit; emphasis delimiters, code spans and tags each cost a token more.
    """
    stops = sum(map(content.count, _TERMINATORS))
    labels = min(content.count("["), _INLINE_NESTING)
    tokens = sum(map(content.count, "*_~`<"))
    return len(content) // 16 + stops * (1 + labels) + 2 * tokens


def _budgeted_inline(state: StateCore) -> None:
    """markdown-it's core "inline" rule, with the document's work budget (see above)."""
    budget = state.env.get(_BUDGET_KEY)
    for token in state.tokens:
        if token.type != "inline":
            continue
        children: list[Token] = []
        cost = _inline_cost(token.content)
        if isinstance(budget, int) and cost > budget:
            children = _stripped_inline(token.content)
        else:
            _INLINE_MD.inline.parse(token.content, _INLINE_MD, state.env, children)
            if isinstance(budget, int):
                budget -= cost
        token.children = children
    state.env[_BUDGET_KEY] = budget


_BLOCK_MD.core.ruler.at("inline", _budgeted_inline)

# The linear fallback for inline runs over budget. Every pattern below is either a literal, a
# character class, or a possessive repetition of a class that excludes the character that ends it, so
# the engine never backtracks and no attempt scans past the next delimiter.
_FALLBACK_TARGET = re.compile(r"\]\([^()\n]*+\)")  # a link or image destination
_FALLBACK_TAG = re.compile(r"<[^<>\n]*+>")
_FALLBACK_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_FALLBACK_UNDERSCORES = re.compile(r"(?<!\w)_++|_++(?!\w)")  # not inside snake_case words
_FALLBACK_MARKS = str.maketrans("", "", "*~`[]")


def _strip_markup(text: str) -> str:
    """Words of inline Markdown without parsing it: link targets, tags, escapes and marks removed."""
    text = _FALLBACK_TARGET.sub("]", text.replace("![", "["))
    text = _FALLBACK_TAG.sub(" ", text)
    return _FALLBACK_UNDERSCORES.sub("", _FALLBACK_ESCAPE.sub(r"\1", text).translate(_FALLBACK_MARKS))


def _stripped_inline(content: str) -> list[Token]:
    tokens: list[Token] = []
    for number, line in enumerate(_strip_markup(content).split("\n")):
        if number:
            tokens.append(Token("softbreak", "br", 0))
        tokens.append(Token("text", "", 0, content=line))
    return tokens


# Front matter: a first line of "---" or "+++", up to the next such line (or "...").
_FRONT_OPENERS = ("---", "+++")
_FRONT_CLOSERS = ("---", "+++", "...")
_TASK_BOX = re.compile(r"\A[ \t]*\[[ xX]\][ \t]+")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # lazy up to the first "-->", or the end
_HTML_TAG = re.compile(r"<[^<>]*+>")
_RAW_HTML = ("<script", "<style")  # HTML blocks that hold code, not text
# Quote and list markers, then heading marks or a fence, at the start of a line (possessive: no backtracking).
_LINE_MARKERS = re.compile(
    r"^(?:[ \t]*+(?:>|[-*+](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)))*+[ \t]*+(?:#{1,6}(?=[ \t]|$)|```.*|~~~.*)?",
    re.MULTILINE,
)


def extract_markdown(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Markdown: title from the first heading (else front matter, else the first line), words kept."""
    text = payload.replace("\r\n", "\n").replace("\r", "\n")  # markdown-it's own line breaks
    front_title, text = _front_matter(text)
    dense = text.count("\n") > _LINE_SLACK + len(text) // _LINE_CHARS
    raw = _line_blocks(text) if dense else _markdown_blocks(text)
    blocks = [block for block in (_clean_block(block) for block in raw) if block]
    title: str | None = None
    if blocks and _heading_level(blocks[0][0]):
        title = blocks[0][1][0]
        blocks = blocks[1:]
    elif front_title:
        title = front_title
    elif blocks:
        kind, lines = blocks[0]
        if kind == "para" and len(lines[0]) <= MAX_TITLE_CHARS:
            title = lines[0]
            blocks[0] = (kind, lines[1:])
    body: list[Block] = []
    for kind, lines in blocks:
        if not lines:
            continue
        level = _heading_level(kind)
        body.append(Heading(" ".join(lines), level) if level else [" ".join(lines)] if kind == "para" else lines)
    if not compose(body) and not title:
        raise ExtractionError("Markdown document has no readable text")
    whole = ([[title]] if title else []) + body
    return ExtractedDocument(title=title, text=compose(whole), metadata=_origin(origin), sections=outline(whole))


def _heading_level(kind: str) -> int:
    """The level of a raw block's kind ``h1`` .. ``h6``; 0 when it is no heading."""
    return int(kind[1]) if len(kind) == 2 and kind[0] == "h" and kind[1].isdigit() else 0


def _front_matter(text: str) -> tuple[str | None, str]:
    """The front matter's title, if any, and the text after the front matter."""
    first, newline, rest = text.partition("\n")
    if not newline or first.rstrip(" \t") not in _FRONT_OPENERS:
        return None, text
    position = 0
    title: str | None = None
    while position <= len(rest):
        end = rest.find("\n", position)
        end = len(rest) if end < 0 else end
        line = rest[position:end]
        if line.rstrip(" \t") in _FRONT_CLOSERS:
            return title, rest[end + 1 :]
        if title is None:
            key, separator, value = _split_key(line)
            if separator and key.strip().casefold() == "title":
                title = clean_line(value.strip().strip("\"'")) or None
        position = end + 1
    return None, text  # never closed: not front matter


def _split_key(line: str) -> tuple[str, str, str]:
    """``key: value`` (YAML) or ``key = value`` (TOML), whichever separator comes first."""
    colon, equals = line.find(":"), line.find("=")
    cut = min(i for i in (colon, equals, len(line)) if i >= 0)
    return line[:cut], line[cut : cut + 1], line[cut + 1 :]


_Raw = tuple[str, list[str]]


def _markdown_blocks(text: str) -> list[_Raw]:
    """Raw blocks of a Markdown text: ("h1".."h6" | "para" | "list" | "table" | "code", lines)."""
    env: dict[str, object] = {_BUDGET_KEY: int(_BUDGET_SLACK + _BUDGET_PER_CHAR * len(text))}
    tokens = _BLOCK_MD.parse(text, env)
    source = text.split("\n")
    return _Blocks(source).run(tokens)


def _line_blocks(text: str) -> list[_Raw]:
    """Paragraphs of a Markdown text read line by line: container and heading markers and inline
    markup stripped, fence lines dropped. Only for documents too dense for markdown-it-py."""
    blocks: list[_Raw] = []
    lines: list[str] = []
    for line in _strip_markup(_LINE_MARKERS.sub("", text)).split("\n"):
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append(("para", lines))
            lines = []
    if lines:
        blocks.append(("para", lines))
    return blocks


class _Blocks:
    """One pass over markdown-it's block tokens, collecting blocks.

    Lists (with everything nested in them) and tables are one block each, a list item or a table row
    per line; lists that follow each other without a blank line are one block. Quotes are transparent.
    """

    def __init__(self, source: list[str]) -> None:
        self.source = source
        self.blocks: list[_Raw] = []
        self.lists: list[bool] = []  # open lists, innermost last: whether each is ordered
        self.list_lines: list[str] = []
        self.list_end = -1  # source line where the last top-level list ended
        self.item_prefix: str | None = None  # set at the start of a list item, used by its first line
        self.row: list[str] | None = None
        self.table: list[str] = []
        self.heading = False
        self.heading_level = 1

    def run(self, tokens: list[Token]) -> list[_Raw]:
        for index, token in enumerate(tokens):
            kind = token.type
            if kind == "inline":
                self._inline(token)
            elif kind == "heading_open":
                self.heading = True
                self.heading_level = int(token.tag[1:]) if token.tag[1:].isdigit() else 1
            elif kind == "heading_close":
                self.heading = False
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self._open_list(token, ordered=kind == "ordered_list_open")
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
                if not self.lists:
                    self.blocks.append(("list", self.list_lines))
            elif kind == "list_item_open":
                self.item_prefix = f"{token.info}{token.markup} " if self.lists and self.lists[-1] else ""
            elif kind in ("fence", "code_block"):
                self._lines("code", token.content.split("\n"))
            elif kind == "html_block":
                self._html(token.content)
            elif kind == "table_open":
                self.table = []
            elif kind == "table_close":
                self._lines("table", self.table)
                self.table = []
            elif kind == "tr_open":
                self.row = []
            elif kind == "tr_close" and self.row is not None:
                self.table.append(" | ".join(cell for cell in self.row if cell))
                self.row = None
            if token.nesting == 1 and token.map and index + 1 < len(tokens) and tokens[index + 1].nesting == -1:
                self._too_deep(token, tokens[index + 1])
        return self.blocks

    def _open_list(self, token: Token, *, ordered: bool) -> None:
        if not self.lists:
            start = token.map[0] if token.map else -1
            if (
                self.blocks
                and self.blocks[-1][0] == "list"
                and start == self.list_end
                and self.source[start - 1].strip()
            ):
                self.list_lines = self.blocks.pop()[1]  # the previous list runs on, no blank line: one block
            else:
                self.list_lines = []
            self.list_end = token.map[1] if token.map else -1
        self.lists.append(ordered)

    def _lines(self, kind: str, lines: list[str]) -> None:
        """A block of its own, or more lines of the list it sits in."""
        if self.lists:
            self.list_lines.extend(lines)
        elif lines:
            self.blocks.append((kind, lines))

    def _inline(self, token: Token) -> None:
        lines = _inline_lines(token.children or [])
        if self.row is not None:
            self.row.append(" ".join(lines))
        elif self.heading:
            self._lines(f"h{self.heading_level}", [" ".join(lines)])
        elif self.lists:
            line = " ".join(lines)
            if self.item_prefix is not None:  # the first paragraph of an item: its marker, no task box
                line = self.item_prefix + _TASK_BOX.sub("", line, count=1)
                self.item_prefix = None
            self.list_lines.append(line)
        elif lines and all(line.lstrip().startswith("|") for line in lines):
            # Pipe rows without a delimiter row are no GFM table, but they are still a table.
            self._lines("table", [_pipe_row(line) for line in lines])
        else:
            self.blocks.append(("para", lines))

    def _html(self, content: str) -> None:
        if content.lstrip()[:7].lower().startswith(_RAW_HTML):
            return
        text = _HTML_TAG.sub(" ", _HTML_COMMENT.sub("", content))
        lines = [line for line in text.split("\n") if line.strip()]
        if self.lists:
            self.list_lines.extend(lines)
        elif lines:
            self.blocks.append(("para", lines))

    def _too_deep(self, opening: Token, closing: Token) -> None:
        """A container past the nesting limit comes out empty: read its source lines as plain text."""
        if opening.level + 1 < _BLOCK_NESTING or opening.map is None:
            return
        start, end = opening.map
        text = _strip_markup(_LINE_MARKERS.sub("", "\n".join(self.source[start:end])))
        self._lines("para", [line for line in text.split("\n") if line.strip()])


def _pipe_row(line: str) -> str:
    return " | ".join(cell for cell in (cell.strip() for cell in line.strip().strip("|").split("|")) if cell)


def _inline_lines(children: list[Token]) -> list[str]:
    """The words of an inline token, one string per source line: markup dropped, link targets too."""
    lines: list[str] = []
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind in ("text", "text_special"):
            parts.append(child.content)
        elif kind == "code_inline":
            parts.append(child.content.strip())
        elif kind in ("softbreak", "hardbreak"):
            lines.append("".join(parts))
            parts = []
        elif kind == "html_inline":
            parts.append("" if child.content.startswith("<!--") else " ")
        # images (with their alt text), emphasis and link marks add no words
    lines.append("".join(parts))
    return lines


def _clean_block(block: _Raw) -> _Raw | None:
    kind, lines = block
    kept = [line for line in (clean_line(line) for line in lines) if line]
    return (kind, kept) if kept else None
