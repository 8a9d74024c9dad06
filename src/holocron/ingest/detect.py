"""Content-type detection for ingested files.

Detection sniffs the bytes, not only the file name: a wiki page saved as ``.txt`` is still HTML and
a MediaWiki API dump without an extension is still MediaWiki JSON. Anything that cannot yield text
(binary data, undecodable bytes, empty files, broken or unknown JSON) is refused up front with
:class:`UnsupportedContent` and a reason a person can act on.

Text is UTF-8 unless the file says otherwise: a byte order mark (UTF-8, UTF-16 LE or BE) wins, then
the encoding of an XML declaration, then a ``<meta charset>`` or ``<meta http-equiv="Content-Type">``
in the first bytes of markup, looked for the way a browser's prescan does. Charset names are read as
the WHATWG Encoding Standard reads them (``iso-8859-1`` and ``us-ascii`` mean windows-1252, ...).
UTF-16 without a byte order mark cannot be told from binary data and is refused as such.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
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
_UTF16_BOMS = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_SNIFF_BYTES = 8192
# A <meta> charset is looked for in this many first bytes, an XML declaration only at the very start.
PRESCAN_BYTES = 4096
_XML_DECLARATION = re.compile(
    rb"""\A[ \t\r\n]*+<\?xml\b[^<>?]*?\bencoding[ \t\r\n]*+=[ \t\r\n]*+["']([^"'<>]{1,64})["']"""
)
_PRESCAN_COMMENT = re.compile(rb"<!--.*?(?:-->|\Z)", re.DOTALL)
# <meta charset=x> and <meta http-equiv="Content-Type" content="text/html; charset=x"> alike: the first
# "charset=" inside a <meta> tag (which ends at the next angle bracket, so no attempt scans past it).
_META_CHARSET = re.compile(
    rb"""<meta[ \t\r\n/][^<>]*?charset[ \t\r\n]*+=[ \t\r\n]*+["']?[ \t\r\n]*+([^ \t\r\n"';/<>]{1,64})""",
    re.IGNORECASE,
)
# Charset names Python knows under another name, from the WHATWG Encoding Standard's label list.
_LABEL_ALIASES = {
    "windows-31j": "cp932",
    "windows-874": "cp874",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic",
    "iso-8859-8-i": "iso8859-8",
    "x-user-defined": "cp1252",
    "x-sjis": "cp932",
    "x-gbk": "gbk",
}
# Python codec (canonical name) -> the decoder the Encoding Standard uses for it.
_WHATWG_DECODERS = {
    "iso8859-1": "windows-1252",
    "ascii": "windows-1252",
    "cp1252": "windows-1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    # A charset that an ASCII prescan could read is not UTF-16: the Encoding Standard reads it as UTF-8.
    "utf-16": "utf-8",
    "utf-16-le": "utf-8",
    "utf-16-be": "utf-8",
}
_DECODERS = frozenset(
    {"utf-8", "windows-1252", "cp866", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "euc_jp", "iso2022_jp"}
    | {f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)}
    | {f"cp{n}" for n in (874, 932, 949, *range(1250, 1259))}
    | {"gb18030", "big5hkscs"}
)
# windows-1252 as the Encoding Standard defines it: latin-1, except 0x80-0x9F where cp1252 has a character.
_WINDOWS_1252 = {
    byte: char for byte in range(0x80, 0xA0) for char in [bytes([byte]).decode("cp1252", errors="ignore")] if char
}
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
# Linear: possessive repetitions of classes that exclude what follows them, so that no attempt
# backtracks and each one stops at the end of its line or at the next bracket.
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]++\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^[ \t]*+[^\s][^\n]*+\n ?(?:=++|-{2,}+)[ \t]*+$", re.MULTILINE)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[[^\[\]\n]++\]\([^()\s]++(?:[^()\n]++|\([^()\n]*+\))*+\)")
_MD_LIST = re.compile(r"^[ \t]*+(?:[-*+]|\d{1,3}\.)[ \t]++\S", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"\*\*[^*\n]++\*\*|__[^_\n]++__|`[^`\n]++`")
_MD_TABLE_RULE = re.compile(r"^\|?[ \t]*+:?-{3,}+:?[ \t]*+\|", re.MULTILINE)


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
    text = decode_text(data)
    source_type = _classify(text, name)
    return Detected(source_type=source_type, content_type=CONTENT_TYPES[source_type], text=text)


def decode_text(data: bytes) -> str:
    """The text of a file, in the charset its byte order mark or its own declaration names, else UTF-8.

    Raises UnsupportedContent for binary data, empty text, bytes invalid in that charset, or a declared
    charset that is unknown or no text encoding.
    """
    for bom, encoding in _UTF16_BOMS:
        if data.startswith(bom):
            text = _decode(data, len(bom), encoding, "UTF-16")
            _refuse_binary(ord(char) for char in text[:_SNIFF_BYTES])
            return _checked(text)
    offset = len(_BOM) if data.startswith(_BOM) else 0
    body = data[offset:]
    if not body.strip():
        raise UnsupportedContent("empty file")
    if b"\x00" in body:
        raise UnsupportedContent("binary file")
    _refuse_binary(body[:_SNIFF_BYTES])
    encoding, label = ("utf-8", "UTF-8") if offset else declared_charset(body)
    return _checked(_decode(data, offset, encoding, label))


def _refuse_binary(head: Iterable[int]) -> None:
    """Too many control characters (bytes or code points) at the start: binary data, not text."""
    codes = list(head)
    controls = sum(1 for code in codes if (code < 0x20 and code not in _TEXT_CONTROLS) or code == 0x7F)
    if codes and controls / len(codes) > _MAX_CONTROL_RATIO:
        raise UnsupportedContent("binary file")


def declared_charset(data: bytes) -> tuple[str, str]:
    """The decoder named by an XML declaration or a ``<meta>`` near the start of markup, and the name
    as written; ``("utf-8", "UTF-8")`` when there is none. An unknown name raises UnsupportedContent."""
    label: str | None = None
    where = ""
    declaration = _XML_DECLARATION.match(data)
    if declaration is not None:
        label, where = declaration.group(1).decode("ascii", "replace"), "XML declaration"
    elif data[:PRESCAN_BYTES].lstrip()[:1] == b"<":
        head = _PRESCAN_COMMENT.sub(b"", data[:PRESCAN_BYTES])
        meta = _META_CHARSET.search(head)
        if meta is not None:
            label, where = meta.group(1).decode("ascii", "replace"), "<meta> tag"
    if label is None:
        return "utf-8", "UTF-8"
    return _decoder(label, where), label


def _decoder(label: str, where: str) -> str:
    name = label.strip().lower()
    try:
        canonical = codecs.lookup(_LABEL_ALIASES.get(name, name)).name
    except LookupError:
        canonical = ""
    decoder = _WHATWG_DECODERS.get(canonical, canonical)
    if decoder not in _DECODERS:
        raise UnsupportedContent(f"unsupported charset {label!r} (declared in the {where})")
    return decoder


def _decode(data: bytes, offset: int, encoding: str, label: str) -> str:
    body = data[offset:]
    if encoding == "windows-1252":
        return body.decode("latin-1").translate(_WINDOWS_1252)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding == "utf-8" else label
        raise UnsupportedContent(f"invalid {name} at byte {exc.start + offset}") from None


def _checked(text: str) -> str:
    """Decoded text that is really text: not empty, and no NUL (which only binary data holds)."""
    if not text.strip():
        raise UnsupportedContent("empty file")
    if "\x00" in text:
        raise UnsupportedContent("binary file")
    return text


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
