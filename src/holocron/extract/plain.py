"""Plain text and Markdown.

Plain text keeps its paragraphs (blank-line separated) and joins hard-wrapped lines inside each.
Markdown keeps the words and drops the syntax that only adds noise to an embedding: heading and
list markers, emphasis, link targets, images, HTML comments and tags, table rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from holocron.extract._text import Block, clean_line, compose, split_lines
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

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n(.*?)\n(?:---|\+\+\+|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title\s*[:=]\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(?:\[[ xX]\][ \t]+)?")
_ORDERED = re.compile(r"^[ \t]*(\d{1,9}[.)])[ \t]+")
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_REF_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*\S+.*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)|!\[([^\]]*)\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def extract_markdown(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Markdown: title from the first heading (else front matter, else the first line), words kept."""
    text = payload.replace("\r\n", "\n")
    front_title: str | None = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        if found:
            front_title = clean_line(found.group(1).strip("\"'")) or None
        text = text[front.end() :]
    text = _COMMENT.sub("", text)
    blocks = [block for block in (_clean_block(block) for block in _markdown_blocks(text)) if block]
    title: str | None = None
    if blocks and blocks[0][0] == "heading":
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
        body.append([" ".join(lines)] if kind == "para" else lines)
    if not compose(body) and not title:
        raise ExtractionError("Markdown document has no readable text")
    out = compose(([[title]] if title else []) + body)
    return ExtractedDocument(title=title, text=out, metadata=_origin(origin))


_Raw = tuple[str, list[str]]


def _markdown_blocks(text: str) -> Iterator[_Raw]:
    """Split Markdown into raw blocks: ("heading" | "para" | "list" | "table" | "code", lines)."""
    kind = ""
    lines: list[str] = []
    fence = ""

    def flush() -> Iterator[_Raw]:
        nonlocal kind, lines
        if lines:
            yield kind or "para", lines
        kind, lines = "", []

    for raw in split_lines(text):
        if fence:
            if raw.strip().startswith(fence):
                fence = ""
                yield from flush()
            else:
                lines.append(raw)
            continue
        opened = _FENCE.match(raw)
        if opened:
            yield from flush()
            fence, kind = opened.group(1), "code"
            continue
        line = _QUOTE.sub("", raw)
        if not line.strip():
            yield from flush()
            continue
        if _RULE.match(line) and not (kind == "para" and _SETEXT.match(line)):
            yield from flush()
            continue
        if kind == "para" and len(lines) >= 1 and _SETEXT.match(line):
            *before, last = lines
            if before:
                yield "para", before
            kind, lines = "", []
            yield "heading", [last]
            continue
        if _REF_DEFINITION.match(line):
            continue
        atx = _ATX.match(line)
        if atx:
            yield from flush()
            yield "heading", [atx.group(2) or ""]
            continue
        if _TABLE_RULE.match(line) and "-" in line and (kind == "table" or "|" in line):
            kind = "table"
            continue
        if _BULLET.match(line) or _ORDERED.match(line):
            if kind not in ("list", ""):
                yield from flush()
            kind = "list"
            lines.append(_ORDERED.sub(r"\1 ", _BULLET.sub("", line)))
            continue
        if line.lstrip().startswith("|") or (kind == "table" and "|" in line):
            if kind not in ("table", ""):
                yield from flush()
            kind = "table"
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            lines.append(" | ".join(cell for cell in cells if cell))
            continue
        if kind == "list" and raw[:1] in (" ", "\t") and lines:
            lines[-1] = f"{lines[-1]} {line.strip()}"
            continue
        if kind in ("list", "table"):
            yield from flush()
        kind = kind or "para"
        lines.append(line)
    yield from flush()


def _clean_block(block: _Raw) -> _Raw | None:
    kind, lines = block
    keep_syntax = kind == "code"
    cleaned = [clean_line(line if keep_syntax else _inline(line)) for line in lines]
    kept = [line for line in cleaned if line]
    return (kind, kept) if kept else None


def _inline(text: str) -> str:
    """Strip inline Markdown syntax from one line, leaving code spans' contents untouched."""
    out: list[str] = []
    position = 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_inline_syntax(text[position : match.start()]))
        out.append(match.group(2).strip())
        position = match.end()
    out.append(_inline_syntax(text[position:]))
    return "".join(out)


def _inline_syntax(text: str) -> str:
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub(" ", text)
    text = _STRONG.sub(r"\2", text)
    text = _EM_STAR.sub(r"\1", text)
    text = _EM_UNDERSCORE.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    return _ESCAPE.sub(r"\1", text)
