"""Readable text from served HTML: MediaWiki skins (Wikipedia, Fandom, standalone) and generic pages.

The page is parsed once with Lexbor (selectolax), the article root is located, site furniture is cut
out with one CSS query, infobox facts are lifted out as ``label: value`` lines, and the remaining tree
is walked once to produce blocks (paragraphs, headings, lists, table rows). Reference-list tail
sections ("References", "External links", ...) are skipped while walking.

Everything is linear in the size of the page. Lexbor's tree builder is not, on deep nesting (every
start tag checks the open elements back to the nearest scope boundary, and every text node rebuilds the
open formatting elements), so :func:`limit_nesting` first drops the start tags that would nest deeper
than any real page does; the walk never renders a node twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from holocron.extract._text import (
    Block,
    Heading,
    clean_line,
    clean_title,
    compose,
    is_tail_heading,
    outline,
    with_title,
)
from holocron.extract._types import ExtractedDocument, ExtractionError
from holocron.extract.article import locate, reference_text, shingles

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
    " map, button, input, select, textarea, form, math, .mwe-math-element, img,"
    " a.headerlink, a.anchor-link, a.anchorjs-link, a.heading-anchor"  # permalink marks: a lone ¶ or #
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


def extract_html(payload: str, *, origin: str | None = None, general: bool = True) -> ExtractedDocument:
    """Extract the article of a served HTML page: title first, then infobox facts, then the body.

    A MediaWiki skin (Wikipedia, Fandom, standalone wikis) goes through the wiki rules of this module; any
    other page through :mod:`holocron.extract.article` (trafilatura), with these rules as the fallback when
    that finds no main text (``general=False``: these rules alone, as ``bench/extract_eval.py`` compares).
    ``metadata["extractor"]`` says which one produced the text.
    """
    html = limit_nesting(payload)
    tree = LexborHTMLParser(html, scripting=True)
    root, wiki = _find_root(tree)
    title = _find_title(tree, root)
    metadata = _metadata(tree, origin)
    blocks: list[Block] = []
    metadata["extractor"] = "wiki" if wiki else "article"
    if general and not wiki and tree.body is not None:
        reference = reference_text(html)
        located = locate(tree.body, reference)
        if located is not None:
            blocks = article_blocks(located, wiki=False, title=title, reference=reference)
    if not compose(blocks):
        if root is None:
            raise ExtractionError("HTML page has no readable text")
        blocks = article_blocks(root, wiki=wiki, title=title)
        metadata["extractor"] = "wiki" if wiki else "fallback"
    if not compose(blocks):
        raise ExtractionError("HTML page has no readable text")
    whole = with_title(title, blocks)
    return ExtractedDocument(title=title, text=compose(whole), metadata=metadata, sections=outline(whole))


def fragment_blocks(html: str, *, title: str | None = None) -> list[Block]:
    """Blocks of a rendered wiki HTML fragment, as returned inside MediaWiki API responses."""
    tree = LexborHTMLParser(limit_nesting(html), scripting=True)
    root = tree.css_first(".mw-parser-output") or tree.body or tree.root
    if root is None:
        return []
    return article_blocks(root, wiki=True, title=title)


def article_blocks(root: LexborNode, *, wiki: bool, title: str | None, reference: str | None = None) -> list[Block]:
    """Infobox lines followed by the body blocks of an article root (the tree is modified).

    Layout elements (nav, aside, ...) and, on a non-wiki page, elements whose class or id names a kind of
    furniture are dropped; with a ``reference`` text (:func:`holocron.extract.article.reference_text`), only
    those whose text the reference does not hold (a Sphinx ``aside`` holding the abstract stays).
    """
    _remove(root, _NOT_TEXT)
    _remove(root, _WIKI_NOISE)
    _remove(root, _HIDDEN)
    facts = _lift_infoboxes(root, title)
    if reference is None:
        _remove(root, _LAYOUT_NOISE)
        if not wiki:
            _remove_boilerplate(root)
    else:
        _remove_unreferenced(root, reference)
    body = _Renderer().render(root)
    return ([facts] if facts else []) + body


# --- nesting -----------------------------------------------------------------------------------------

# Open elements beyond these depths are dropped before parsing (real pages nest a few dozen deep).
MAX_NESTING = 256
MAX_FORMATTING = 32  # open <b>, <a>, <font>, ...: dropping them loses no text and no line break

# A comment, a raw text element with its text (each up to its end or the end of the page: lazy, and then
# always a match), or a tag (possessive, up to the next angle bracket).
_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<(?P<raw>script|style|textarea|title|xmp|iframe|noembed|noframes|noscript)\b[^<>]*+>.*?(?:</(?P=raw)\s*+>|\Z)"
    r"|<plaintext\b.*"
    r"|<(?P<closing>/?)(?P<name>[A-Za-z][A-Za-z0-9:-]*+)[^<>]*+>",
    re.DOTALL | re.IGNORECASE,
)
_VOID = frozenset(
    [
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "frame",
        "hr",
        "image",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_FORMATTING = frozenset(
    ["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"]
)
# Elements whose end the tree builder finds on its own, so that they never pile up: not tracked.
_UNTRACKED = frozenset(["html", "head", "body", "p", "caption", "colgroup", "optgroup", "rb", "rp", "rt", "rtc"])
# An element of a group closes an open one of the same group, unless a container opened since.
_SIBLINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "li": (("li",), ("ul", "ol", "menu")),
    "dt": (("dt", "dd"), ("dl",)),
    "dd": (("dt", "dd"), ("dl",)),
    "td": (("td", "th"), ("tr", "table")),
    "th": (("td", "th"), ("tr", "table")),
    "tr": (("tr",), ("table",)),
    "thead": (("thead", "tbody", "tfoot"), ("table",)),
    "tbody": (("thead", "tbody", "tfoot"), ("table",)),
    "tfoot": (("thead", "tbody", "tfoot"), ("table",)),
    "option": (("option",), ("select", "datalist")),
}


class _OpenElements:
    """A cheap model of the tree builder's stack of open elements, enough to bound its depth."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.where: dict[str, list[int]] = {}  # name -> its indexes in names, ascending
        self.dropped: dict[str, int] = {}  # start tags dropped, by name: their end tags go too
        self.formatting: dict[str, int] = {}
        self.open_formatting = 0

    def start(self, name: str) -> bool:
        """Whether to keep this start tag."""
        if name in _FORMATTING:
            if self.open_formatting >= MAX_FORMATTING:
                self.dropped[name] = self.dropped.get(name, 0) + 1
                return False
            self.formatting[name] = self.formatting.get(name, 0) + 1
            self.open_formatting += 1
            return True
        if name in _UNTRACKED:
            return True
        where = self.where
        siblings = _SIBLINGS.get(name)
        if siblings is not None:
            sibling = -1
            for other in siblings[0]:
                indexes = where.get(other)
                if indexes and indexes[-1] > sibling:
                    sibling = indexes[-1]
            if sibling >= 0:
                for other in siblings[1]:
                    indexes = where.get(other)
                    if indexes and indexes[-1] > sibling:
                        break  # the open sibling is outside the container opened since: it stays open
                else:
                    self._pop_to(sibling)
        if len(self.names) >= MAX_NESTING:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            return False
        indexes = where.get(name)
        if indexes is None:
            where[name] = [len(self.names)]
        else:
            indexes.append(len(self.names))
        self.names.append(name)
        return True

    def end(self, name: str) -> bool:
        """Whether to keep this end tag."""
        if self.dropped.get(name):
            self.dropped[name] -= 1
            return False
        if name in _FORMATTING:
            if self.formatting.get(name):
                self.formatting[name] -= 1
                self.open_formatting -= 1
        elif self._last(name) >= 0:
            self._pop_to(self._last(name))
        return True

    def _last(self, name: str) -> int:
        indexes = self.where.get(name)
        return indexes[-1] if indexes else -1

    def _pop_to(self, index: int) -> None:
        where = self.where
        for name in self.names[index:]:
            where[name].pop()
        del self.names[index:]


def limit_nesting(html: str) -> str:
    """``html`` with the start tags (and their end tags) that would open elements deeper than
    MAX_NESTING (MAX_FORMATTING for formatting elements) replaced by a space; usually ``html`` itself.

    One pass of a regex over the markup, comments and raw text (scripts, styles, ...) matched whole; each
    tag costs O(1) amortised.
    """
    model = _OpenElements()
    cuts: list[tuple[int, int]] = []
    for markup in _MARKUP.finditer(html):
        closing, name = markup.group("closing", "name")
        if name is None:  # a comment or a raw text element, whole
            continue
        name = name.lower()
        keep = model.end(name) if closing else (name in _VOID or model.start(name))
        if not keep:
            cuts.append(markup.span())
    if not cuts:
        return html
    out: list[str] = []
    position = 0
    for start, end in cuts:
        out.append(html[position:start])
        out.append(" ")
        position = end
    out.append(html[position:])
    return "".join(out)


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


def _remove_unreferenced(root: LexborNode, reference: str) -> None:
    """Detach the layout elements (nav, header, footer, aside, ...) whose text the reference mostly leaves
    out; an ``aside`` only when it is mostly links too (a box of the article's own prose, such as a Sphinx
    abstract, stays; a "related stories" list goes). Class names are not trusted here: inside the article
    they name its boxes as often as its furniture."""
    held = shingles(reference)
    for node in root.css(_LAYOUT_NOISE):
        if node is root or node.parent is None:
            continue
        own = shingles(node.text(separator=" "))
        if len(own & held) >= 0.5 * len(own) and own:
            continue
        if node.tag == "aside" and _link_share(node) < 0.5:
            continue
        node.decompose(recursive=False)


def _link_share(node: LexborNode) -> float:
    """The share of the element's text that is link text."""
    total = len(node.text(separator=" ").split())
    linked = sum(len(link.text(separator=" ").split()) for link in node.css("a"))
    return linked / total if total else 1.0


# --- infoboxes ---------------------------------------------------------------------------------------


def _lift_infoboxes(root: LexborNode, title: str | None) -> Block:
    """Turn every outermost infobox into ``label: value`` lines and detach it from the body."""
    boxes = root.css(_INFOBOXES)
    inside = _Inside({box.mem_id for box in boxes}, root)
    lines: Block = []
    outermost = [box for box in boxes if not inside(box)]  # decided before anything is detached
    for box in outermost:
        if box.tag == "aside":
            lines.extend(_portable_infobox_lines(box))
        else:
            lines.extend(_table_infobox_lines(box))
        box.decompose(recursive=False)
    key = (title or "").casefold()
    return [line for line in (clean_line(raw) for raw in lines) if line and line.casefold() != key]


class _Inside:
    """Whether a node has an ancestor among ``ids`` (below ``stop``), each node's answer worked out once."""

    def __init__(self, ids: set[int], stop: LexborNode) -> None:
        self.ids = ids
        self.stop = stop.mem_id
        self.known: dict[int, bool] = {}  # node -> whether the node itself or an ancestor is in ids

    def __call__(self, node: LexborNode) -> bool:
        path: list[int] = []
        parent = node.parent
        answer = False
        while parent is not None and parent.mem_id != self.stop:
            known = self.known.get(parent.mem_id)
            if known is not None:
                answer = known
                break
            if parent.mem_id in self.ids:
                answer = True
                break
            path.append(parent.mem_id)
            parent = parent.parent
        for mem_id in path:
            self.known[mem_id] = answer
        if parent is not None and parent.mem_id in self.ids:
            self.known[parent.mem_id] = True
        return answer


def _portable_infobox_lines(box: LexborNode) -> Iterator[str]:
    """Lines of a Fandom portable infobox: title and group headers, then ``label: value`` pairs."""
    stack = list(reversed(list(box.iter())))
    while stack:
        node = stack.pop()
        classes = (node.attributes.get("class") or "").split()
        if "pi-title" in classes or "pi-header" in classes:
            yield _flat(node, " ")
        elif "pi-data" in classes:
            label_node = _child_with_class(node, "pi-data-label")
            value_node = _child_with_class(node, "pi-data-value")
            label = _label(_flat(label_node, " ")) if label_node is not None else ""
            value = _flat(value_node, ", ") if value_node is not None else ""
            if value:
                yield _pair(label, value)
        elif "pi-horizontal-group" in classes:
            labels = [_label(_flat(th, " ")) for th in node.css("th")]
            values = [_flat(td, ", ") for td in node.css("td")]
            for label, value in zip(labels, values, strict=False):
                yield _pair(label, value)
        else:
            stack.extend(reversed(list(node.iter())))


def _child_with_class(node: LexborNode, name: str) -> LexborNode | None:
    for child in node.iter():
        if name in (child.attributes.get("class") or "").split():
            return child
    return None


def _table_infobox_lines(table: LexborNode) -> Iterator[str]:
    """Lines of a MediaWiki infobox table: a row with a header cell and data becomes ``label: value``.

    Sub-rows written "• Total" are prefixed with the group row above them ("Area, Total: ...").
    """
    caption = _caption(table)
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


def _caption(table: LexborNode) -> LexborNode | None:
    return next((child for child in table.iter() if child.tag == "caption"), None)


def _holds_table(table: LexborNode) -> bool:
    """Whether a table has a table inside. Each search stops at the first one, so over a whole page
    every node is looked at for its nearest enclosing table only."""
    return any(child.tag == "table" or child.css_first("table") is not None for child in table.iter())


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
    and tables are rendered whole (a heading's text is gathered on one line as the walk goes through
    it, headings inside it included). While inside a reference-style tail section, nothing is emitted
    until a heading of the same or a higher level closes it.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lines: Block = []
        self.parts: list[str] = []
        self.list_depth = 0
        self.skip_level: int | None = None
        self.heading: tuple[int, int] | None = None  # (level, node) of the heading being read
        self.heading_parts: list[str] = []

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
            if self.heading is not None:
                self.heading_parts.append(node.text_content or "")
            elif self.skip_level is None:
                self.parts.append(node.text_content or "")
            return False
        if tag is None or tag.startswith("-"):
            return False
        if self.heading is not None:
            return True
        level = _HEADINGS.get(tag)
        if level is not None:
            if self.skip_level is None:
                self._end_block()
            self.heading = (level, node.mem_id)
            return True
        if self.skip_level is not None:
            return True
        if tag == "br":
            self._end_line()
            return False
        if tag == "table":
            if not _holds_table(node):
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
        if self.heading is not None:
            if node.mem_id == self.heading[1]:
                self._heading(self.heading[0])
            elif tag == "br" or tag in _BLOCKS or tag in _LISTS or tag in _LIST_ITEMS:
                self.heading_parts.append(" ")
            return
        if tag in _LISTS:
            self.list_depth = max(0, self.list_depth - 1)
            if self.list_depth == 0:
                self._end_block()
        elif tag in _LIST_ITEMS:
            self._end_line()
        elif tag in _BLOCKS:
            self._break()

    def _heading(self, level: int) -> None:
        text = clean_line("".join(self.heading_parts))
        self.heading, self.heading_parts = None, []
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
            self.blocks.append(Heading(text, level))

    def _table(self, table: LexborNode) -> None:
        """A data or layout table: one line per row, cells joined by " | "."""
        self._end_block()
        caption = _caption(table)
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


def page_links(html: str, base_url: str) -> list[str]:
    """The absolute http(s) URLs a page's ``<a href>`` point to, in order, once each, without fragments
    (a crawl's discovery). A ``<base href>`` is honoured; nesting is bounded as for extraction."""
    tree = LexborHTMLParser(limit_nesting(html))
    base = _attr(tree, "base[href]", "href")
    root = urljoin(base_url, base) if base else base_url
    found: dict[str, None] = {}
    for node in tree.css("a[href]"):
        href = (node.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        url, _ = urldefrag(urljoin(root, href))
        if urlsplit(url).scheme in ("http", "https"):
            found[url] = None
    return list(found)
