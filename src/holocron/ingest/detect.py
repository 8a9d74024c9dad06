"""Content-type detection for ingested files.

Detection sniffs the bytes, not only the file name: a wiki page saved as ``.txt`` is still HTML and
a MediaWiki API dump without an extension is still MediaWiki JSON. Anything that cannot yield text
(binary data, undecodable bytes, empty files, broken or unknown JSON) is refused up front with
:class:`UnsupportedContent` and a reason a person can act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from holocron.extract._types import json_error_reason
from holocron.extract.mediawiki import looks_like_mediawiki
from holocron.extract.openalex import looks_like_openalex

CONTENT_TYPES: dict[str, str] = {
    "html": "text/html",
    "mediawiki": "application/vnd.mediawiki+json",
    "openalex": "application/vnd.openalex+json",
    "text": "text/plain",
    "markdown": "text/markdown",
}

_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 8192
# More than this share of control characters in the first bytes means the data is not text.
_MAX_CONTROL_RATIO = 0.10
# Bytes that text files legitimately hold below 0x20: tab, LF, VT, FF, CR, ESC (ANSI colours).
_TEXT_CONTROLS = frozenset(b"\t\n\x0b\x0c\r\x1b")
_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd")
_HTML_NAMES = (".html", ".htm", ".xhtml", ".shtml")
_STRONG_HTML = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_TAG = re.compile(
    r"<(?:head|body|div|p|span|a|h[1-6]|table|tr|td|ul|ol|li|article|section|main|nav|header|footer|"
    r"meta|title|link|script|style|br|img|form|iframe|aside|figure|blockquote|pre|strong|em|b|i)\b[^<>]*>",
    re.IGNORECASE,
)
_CLOSING_TAG = re.compile(r"</[A-Za-z][A-Za-z0-9]*\s*>")
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^[^\n]*\S[^\n]*\n ?(?:=+|-{2,})[ \t]*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[[^\]\n]+\]\([^)\s]+[^)]*\)")
_MD_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}\.)[ \t]+\S", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__|`[^`\n]+`")
_MD_TABLE_RULE = re.compile(r"^\|?[ \t]*:?-{3,}:?[ \t]*\|", re.MULTILINE)


class UnsupportedContent(ValueError):  # noqa: N818 - the ingest API names it for what it is, not "Error"
    """Content that cannot be ingested; the message says why ("binary file", "empty file", ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Detected:
    """What a file holds: the extractor to use, its media type, and the decoded text."""

    source_type: str
    content_type: str
    text: str


def detect_source_type(data: bytes, name: str) -> Detected:
    """Decide how to extract ``data`` (a file called ``name``) from its content, then its name."""
    offset = len(_BOM) if data.startswith(_BOM) else 0
    body = data[offset:]
    if not body.strip():
        raise UnsupportedContent("empty file")
    if b"\x00" in body:
        raise UnsupportedContent("binary file")
    head = body[:_SNIFF_BYTES]
    controls = sum(1 for byte in head if (byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F)
    if controls / len(head) > _MAX_CONTROL_RATIO:
        raise UnsupportedContent("binary file")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedContent(f"invalid UTF-8 at byte {exc.start + offset}") from None
    if not text.strip():
        raise UnsupportedContent("empty file")
    source_type = _classify(text, name)
    return Detected(source_type=source_type, content_type=CONTENT_TYPES[source_type], text=text)


def _classify(text: str, name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if _looks_like_json(text, suffix):
        return _json_kind(text)
    start = text[:4096]
    if _STRONG_HTML.search(start):
        return "html"
    if suffix in _MARKDOWN_NAMES:
        return "markdown"
    if suffix in _HTML_NAMES or _weak_html(start):
        return "html"
    if _looks_like_markdown(text[:65536]):
        return "markdown"
    return "text"


def _looks_like_json(text: str, suffix: str) -> bool:
    """JSON by name, or text that clearly opens a JSON object or array (not ``[link](...)``)."""
    if suffix == ".json":
        return True
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return stripped[1:].lstrip()[:1] in ('"', "}", "")
    if stripped.startswith("["):
        rest = stripped[1:].lstrip()
        return not rest or rest[0] in '{["]-' or rest[0].isdigit() or rest.startswith(("true", "false", "null"))
    return False


def _json_kind(text: str) -> str:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedContent(json_error_reason(exc)) from None
    except RecursionError:
        raise UnsupportedContent("malformed JSON: nested too deeply") from None
    if looks_like_mediawiki(document):
        return "mediawiki"
    if looks_like_openalex(document):
        return "openalex"
    raise UnsupportedContent("unrecognised JSON document")


def _weak_html(start: str) -> bool:
    """Markup near the start: the text opens with a known tag and holds a closing tag."""
    stripped = start.lstrip()
    if stripped.startswith("<?xml") and "<html" in stripped.lower():
        return True
    return bool(stripped.startswith("<") and _HTML_TAG.match(stripped) and _CLOSING_TAG.search(start))


def _looks_like_markdown(text: str) -> bool:
    """Clear Markdown structure: headings plus other syntax, a code fence, or several links."""
    headings = len(_MD_HEADING.findall(text)) + len(_MD_SETEXT.findall(text))
    signals = sum(
        1
        for pattern in (_MD_FENCE, _MD_LINK, _MD_LIST, _MD_EMPHASIS, _MD_TABLE_RULE)
        if pattern.search(text) is not None
    )
    links = len(_MD_LINK.findall(text))
    return (headings >= 1 and (headings >= 2 or signals >= 1)) or _MD_FENCE.search(text) is not None or links >= 2
