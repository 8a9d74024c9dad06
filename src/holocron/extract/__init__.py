"""Text extraction: raw ingested payloads to the exact text the indexer chunks and embeds.

Pure functions, no I/O. Each source type has its own extractor; they all return an
:class:`ExtractedDocument` whose ``text`` follows one format (title first line, blocks separated by
one blank line, whitespace collapsed, NFC) or raise :class:`ExtractionError` with a short reason. Its
``sections`` are the text's headings with their offsets, so that a chunk knows the section it lies in
(:func:`section_path`).
"""

from __future__ import annotations

from collections.abc import Callable

from holocron.extract._text import Section, section_path
from holocron.extract._types import ExtractedDocument, ExtractionError
from holocron.extract.html import extract_html
from holocron.extract.mediawiki import extract_mediawiki
from holocron.extract.openalex import extract_openalex
from holocron.extract.plain import extract_markdown, extract_text
from holocron.vocabulary import SOURCE_TYPES

__all__ = ["SOURCE_TYPES", "ExtractedDocument", "ExtractionError", "Section", "extract", "section_path"]

_EXTRACTORS: dict[str, Callable[..., ExtractedDocument]] = {
    "html": extract_html,
    "mediawiki": extract_mediawiki,
    "openalex": extract_openalex,
    "text": extract_text,
    "markdown": extract_markdown,
}
assert tuple(_EXTRACTORS) == SOURCE_TYPES, "holocron.vocabulary.SOURCE_TYPES names every extractor"


def extract(source_type: str, payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Extract readable text from ``payload`` of the given source type.

    ``origin`` (the URL or path the payload came from) is recorded in the metadata and used to
    resolve relative links such as a relative canonical URL.
    """
    extractor = _EXTRACTORS.get(source_type)
    if extractor is None:
        known = ", ".join(SOURCE_TYPES)
        raise ExtractionError(f"unknown source type {source_type!r} (expected one of: {known})")
    return extractor(payload, origin=origin)
