"""Readable text from served HTML: MediaWiki skins (Wikipedia, Fandom, standalone) and generic pages.

The page is parsed once with Lexbor (selectolax), the article root is located, site furniture is cut
out with one CSS query, infobox facts are lifted out as ``label: value`` lines, and the remaining tree
is walked once to produce blocks (paragraphs, headings, lists, table rows). Reference-list tail
sections ("References", "External links", ...) are skipped while walking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from holocron.extract._text import Block, clean_line, clean_title, compose, is_tail_heading, with_title
from holocron.extract._types import ExtractedDocument, ExtractionError

# Article roots, most specific first. The first group marks a MediaWiki page.
_WIKI_ROOTS = (
    "#mw-content-text > .mw-parser-output",
    "#mw-content-text .mw-parser-output",
    "#content .mw-parser-output",
    ".page-content .mw-parser-output",
    "#mw-content-text",
    ".mw-parser-output",
)
_GENERIC_ROOTS = ("article", "main", "[role=main]", "body")

# Never text: code, media, forms, and formulas (MathML and its TeX source read as symbol soup and
# would break up the sentence around them).
_NOT_TEXT = (
    "script, style, noscript, template, link, meta, iframe, object, embed, svg, canvas, video, audio,"
    " map, button, input, select, textarea, form, math, .mwe-math-element, img"
)

# MediaWiki / Fandom furniture inside the article body: edit links, navigation boxes, tables of
# contents, reference markers and lists, maintenance banners, hidden elements.
_WIKI_NOISE = (
    ".mw-editsection, .mw-editsection-bracket, .navbox, #navbox, .vertical-navbox, .navbox-styles,"
    " table.sidebar, #toc, .toc, #toctitle, sup.reference, sup.noprint, .noprint, .mw-ref, ol.references,"
    " div.reflist,"
    " .references, .mw-references-wrap, .refbegin, .mw-cite-backlink, .catlinks, #catlinks, .printfooter,"
    " .mw-jump-link, #siteSub, #contentSub, .hatnote, .dablink, .rellink, .metadata, .ambox, .mbox-small,"
    " .sistersitebox, .portal, .portalbox, .shortdescription, .mw-empty-elt, .magnify, .sortkey,"
    " .geo-nondefault, .geo-multi-punct, .mw-collapsible-toggle, .pi-navigation, .wds-tabs__wrapper,"
    " .wds-button, .wds-icon, .wds-dropdown, .wikia-photogallery-add, .article-media-placeholder,"
    " [hidden]"
)

# Elements hidden by an inline style are not part of what a reader sees.
_HIDDEN = '[style*="display:none"], [style*="display: none"]'

# Page furniture that generic HTML shares with wikis once infoboxes have been lifted out.
_LAYOUT_NOISE = "nav, header, footer, aside, dialog, [role=navigation], [role=banner], [role=contentinfo]"

# Class or id words that mark boilerplate on non-wiki pages (share bars, ads, bylines, comments).
_BOILERPLATE_WORD = re.compile(
    r"(?:^|[\s_-])(?:share|sharing|social|ads?|advert|advertisement|gpt|sponsor(?:ed)?|promo|newsletter|"
    r"subscribe|cookie|consent|breadcrumbs?|related|comments?|byline|author-bio|categories|tags|"
    r"skip-link|popup|modal|sidebar|widget)(?:$|[\s_-])",
    re.IGNORECASE,
)

_INFOBOXES = 'aside.portable-infobox, table[class*="infobox"], table[id*="infobox"]'

_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = frozenset({"ul", "ol", "dl", "menu", "dir"})
_LIST_ITEMS = frozenset({"li", "dd", "dt"})
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "details",
        "div",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "main",
        "nav",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
    }
)
_TITLE_SEPARATORS = (" - ", " | ", " – ", " — ", " :: ", " · ")


def extract_html(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Extract the article of a served HTML page: title first, then infobox facts, then the body."""
    tree = LexborHTMLParser(payload, scripting=True)
    root, wiki = _find_root(tree)
    title = _find_title(tree, root)
    metadata = _metadata(tree, origin)
    if root is None:
        raise ExtractionError("HTML page has no readable text")
    blocks = article_blocks(root, wiki=wiki, title=title)
    if not compose(blocks):
        raise ExtractionError("HTML page has no readable text")
    return ExtractedDocument(title=title, text=compose(with_title(title, blocks)), metadata=metadata)


def fragment_blocks(html: str, *, title: str | None = None) -> list[Block]:
    """Blocks of a rendered wiki HTML fragment, as returned inside MediaWiki API responses."""
    tree = LexborHTMLParser(html, scripting=True)
    root = tree.css_first(".mw-parser-output") or tree.body or tree.root
    if root is None:
        return []
    return article_blocks(root, wiki=True, title=title)


def article_blocks(root: LexborNode, *, wiki: bool, title: str | None) -> list[Block]:
    """Infobox lines followed by the body blocks of an article root (the tree is modified)."""
    _remove(root, _NOT_TEXT)
    _remove(root, _WIKI_NOISE)
    _remove(root, _HIDDEN)
    facts = _lift_infoboxes(root, title)
    _remove(root, _LAYOUT_NOISE)
    if not wiki:
        _remove_boilerplate(root)
    body = _Renderer().render(root)
    return ([facts] if facts else []) + body


# --- locating things -------------------------------------------------------------------------------


def _find_root(tree: LexborHTMLParser) -> tuple[LexborNode | None, bool]:
    """The node holding the article text, and whether the page is a MediaWiki page."""
    for selector in _WIKI_ROOTS:
        node = tree.css_first(selector)
        if node is not None:
            return node, True
    generator = tree.css_first('meta[name="generator"]')
    wiki = generator is not None and (generator.attributes.get("content") or "").startswith("MediaWiki")
    for selector in _GENERIC_ROOTS:
        node = tree.css_first(selector)
        if node is not None and clean_line(node.text()):
            return node, wiki
    return tree.body or tree.root, wiki


def _find_title(tree: LexborHTMLParser, root: LexborNode | None) -> str | None:
    """Title from the wiki heading, else ``<title>`` without its site-name suffix, else the first h1."""
    for selector in ("h1#firstHeading", ".page-header__title", "#section_0"):
        node = tree.css_first(selector)
        if node is not None:
            title = clean_title(node.text())
            if title:
                return title
    node = tree.css_first("title")
    if node is not None:
        title = _strip_site_suffix(clean_line(node.text()))
        if title:
            return title
    node = root.css_first("h1") if root is not None else None
    return clean_title(node.text()) if node is not None else None


def _strip_site_suffix(title: str) -> str:
    """Drop a trailing " - Wikipedia" / " | Fandom" style site name from a document title."""
    for separator in _TITLE_SEPARATORS:
        head, found, tail = title.rpartition(separator)
        if found and head.strip() and len(tail.split()) <= 6:
            return head.strip()
    return title


def _metadata(tree: LexborHTMLParser, origin: str | None) -> dict[str, Any]:
    """Canonical URL, language and publication date when the page declares them."""
    meta: dict[str, Any] = {}
    if origin:
        meta["origin"] = origin
    url = _attr(tree, 'link[rel="canonical"]', "href") or _attr(tree, 'meta[property="og:url"]', "content")
    if url:
        meta["canonical_url"] = urljoin(origin, url) if origin else url
    language = _attr(tree, "html", "lang")
    if language:
        meta["language"] = language
    published = _attr(tree, 'meta[property="article:published_time"]', "content") or _attr(
        tree, 'meta[name="date"]', "content"
    )
    if published:
        meta["published"] = published
    site = _attr(tree, 'meta[property="og:site_name"]', "content")
    if site:
        meta["site_name"] = site
    return meta


def _attr(tree: LexborHTMLParser, selector: str, name: str) -> str | None:
    node = tree.css_first(selector)
    if node is None:
        return None
    value = node.attributes.get(name)
    return value.strip() or None if value else None


# --- cleaning ----------------------------------------------------------------------------------------


def _remove(root: LexborNode, selector: str) -> None:
    """Detach every match; detaching a node whose ancestor is already detached is harmless."""
    for node in root.css(selector):
        if node is not root:
            node.decompose(recursive=False)


def _remove_boilerplate(root: LexborNode) -> None:
    """Detach share bars, ad slots, bylines and similar blocks of non-wiki pages, by class or id."""
    for node in root.css("[class], [id]"):
        if node is root:
            continue
        marks = f"{node.attributes.get('class') or ''} {node.attributes.get('id') or ''}"
        if _BOILERPLATE_WORD.search(marks):
            node.decompose(recursive=False)


# --- infoboxes ---------------------------------------------------------------------------------------


def _lift_infoboxes(root: LexborNode, title: str | None) -> Block:
    """Turn every outermost infobox into ``label: value`` lines and detach it from the body."""
    boxes = root.css(_INFOBOXES)
    ids = {box.mem_id for box in boxes}
    lines: Block = []
    for box in boxes:
        if _has_ancestor_in(box, ids, root):
            continue
        if box.tag == "aside":
            lines.extend(_portable_infobox_lines(box))
        else:
            lines.extend(_table_infobox_lines(box))
        box.decompose(recursive=False)
    key = (title or "").casefold()
    return [line for line in (clean_line(raw) for raw in lines) if line and line.casefold() != key]


def _has_ancestor_in(node: LexborNode, ids: set[int], stop: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.mem_id != stop.mem_id:
        if parent.mem_id in ids:
            return True
        parent = parent.parent
    return False


def _portable_infobox_lines(box: LexborNode) -> Iterator[str]:
    """Lines of a Fandom portable infobox: title and group headers, then ``label: value`` pairs."""
    for node in box.traverse():
        classes = (node.attributes.get("class") or "").split()
        if "pi-title" in classes or "pi-header" in classes:
            yield _flat(node, " ")
        elif "pi-data" in classes:
            label_node = node.css_first(".pi-data-label")
            value_node = node.css_first(".pi-data-value")
            label = _label(_flat(label_node, " ")) if label_node is not None else ""
            value = _flat(value_node, ", ") if value_node is not None else ""
            if value:
                yield _pair(label, value)
        elif "pi-horizontal-group" in classes:
            labels = [_label(_flat(th, " ")) for th in node.css("th")]
            values = [_flat(td, ", ") for td in node.css("td")]
            for label, value in zip(labels, values, strict=False):
                yield _pair(label, value)


def _table_infobox_lines(table: LexborNode) -> Iterator[str]:
    """Lines of a MediaWiki infobox table: a row with a header cell and data becomes ``label: value``.

    Sub-rows written "• Total" are prefixed with the group row above them ("Area, Total: ...").
    """
    caption = table.css_first("caption")
    if caption is not None:
        yield _flat(caption, " ")
    group = ""
    for row in _rows(table):
        cells = [cell for cell in row.iter() if cell.tag in ("th", "td")]
        texts = [_flat(cell, ", ") if index else _flat(cell, " ") for index, cell in enumerate(cells)]
        filled = [text for text in texts if text]
        if not filled:
            continue
        if len(cells) >= 2 and texts[0] and len(filled) >= 2:
            label = _label(texts[0])
            value = ", ".join(text for text in texts[1:] if text)
            if label.startswith(("•", "·", "-")) and group:
                label = f"{group}, {label.lstrip('•·- ').strip()}"
            else:
                group = label
            yield _pair(label, value)
        else:
            if cells and cells[0].tag == "th":
                group = _label(filled[0])
            yield " ".join(filled)


def _label(text: str) -> str:
    return text.strip().rstrip(":").strip()


def _pair(label: str, value: str) -> str:
    if label and value:
        return f"{label}: {value}"
    return label or value


def _rows(table: LexborNode) -> Iterator[LexborNode]:
    """Rows of this table only, not of tables nested in its cells."""
    for child in table.iter():
        if child.tag == "tr":
            yield child
        elif child.tag in ("thead", "tbody", "tfoot"):
            for row in child.iter():
                if row.tag == "tr":
                    yield row


# --- rendering -----------------------------------------------------------------------------------------


def _flat(node: LexborNode, separator: str) -> str:
    """All text of a node on one line, its own lines and blocks joined by ``separator``."""
    lines = [clean_line(line) for block in _Renderer().render(node) for line in block]
    return separator.join(line for line in lines if line)


class _Renderer:
    """Walks a DOM subtree once, turning it into blocks of lines.

    Block elements end the current paragraph, ``br`` and list items end the current line, headings
    and tables are rendered whole. While inside a reference-style tail section, nothing is emitted
    until a heading of the same or a higher level closes it.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lines: Block = []
        self.parts: list[str] = []
        self.list_depth = 0
        self.skip_level: int | None = None

    def render(self, root: LexborNode) -> list[Block]:
        # Iterative walk: (node, entering). Real pages nest deeper than Python's recursion limit allows.
        stack: list[tuple[LexborNode, bool]] = [(child, True) for child in reversed(list(root.iter(include_text=True)))]
        while stack:
            node, entering = stack.pop()
            if entering:
                if self._enter(node):
                    stack.append((node, False))
                    stack.extend((child, True) for child in reversed(list(node.iter(include_text=True))))
            else:
                self._leave(node)
        self._end_block()
        return self.blocks

    def _enter(self, node: LexborNode) -> bool:
        """Handle the start of a node; return True to walk into its children."""
        tag = node.tag
        if tag == "-text":
            if self.skip_level is None:
                self.parts.append(node.text_content or "")
            return False
        if tag is None or tag.startswith("-"):
            return False
        level = _HEADINGS.get(tag)
        if level is not None:
            self._heading(node, level)
            return False
        if self.skip_level is not None:
            return True
        if tag == "br":
            self._end_line()
            return False
        if tag == "table":
            if len(node.css("table")) == 1:  # the match list includes the node itself
                self._table(node)
                return False
            # A table holding tables is layout: walk it like nested blocks so inner tables keep rows.
            self._break()
            return True
        if tag == "pre":
            self._break()
            self.lines.extend((node.text() or "").split("\n"))
            self._break()
            return False
        if tag in _LISTS:
            if self.list_depth == 0:
                self._end_block()
            self.list_depth += 1
        elif tag in _LIST_ITEMS:
            self._end_line()
        elif tag in _BLOCKS:
            self._break()
        return True

    def _leave(self, node: LexborNode) -> None:
        tag = node.tag
        if tag in _LISTS:
            self.list_depth = max(0, self.list_depth - 1)
            if self.list_depth == 0:
                self._end_block()
        elif tag in _LIST_ITEMS:
            self._end_line()
        elif tag in _BLOCKS:
            self._break()

    def _heading(self, node: LexborNode, level: int) -> None:
        text = _flat(node, " ")
        if self.skip_level is not None and level <= self.skip_level:
            self.skip_level = None
        if self.skip_level is not None:
            return
        if is_tail_heading(text):
            self._end_block()
            self.skip_level = level
            return
        self._end_block()
        if text:
            self.blocks.append([text])

    def _table(self, table: LexborNode) -> None:
        """A data or layout table: one line per row, cells joined by " | "."""
        self._end_block()
        caption = table.css_first("caption")
        if caption is not None:
            self.lines.append(_flat(caption, " "))
        for row in _rows(table):
            cells = [_flat(cell, " ") for cell in row.iter() if cell.tag in ("th", "td")]
            line = " | ".join(cell for cell in cells if cell)
            if line:
                self.lines.append(line)
        self._end_block()

    def _break(self) -> None:
        """Paragraph boundary; inside a list only a line boundary, so the list stays one block."""
        if self.list_depth:
            self._end_line()
        else:
            self._end_block()

    def _end_line(self) -> None:
        if self.parts:
            line = "".join(self.parts)
            self.parts = []
            if line.strip():
                self.lines.append(line)

    def _end_block(self) -> None:
        self._end_line()
        if self.lines:
            self.blocks.append(self.lines)
            self.lines = []
