"""OpenAlex entities (https://docs.openalex.org).

A work becomes its title followed by its abstract, rebuilt from ``abstract_inverted_index`` (OpenAlex
does not ship abstracts as text). Other entities (authors, sources, institutions, topics, ...) have
no abstract; they become a short description from their name and a few descriptive fields, so that
they can still be found by name, affiliation or subject. A list response (``{"results": [...]}``)
becomes one titled section per record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from holocron.extract._text import Block, clean_line, clean_title, compose
from holocron.extract._types import ExtractedDocument, ExtractionError, load_json

OPENALEX_ID_PREFIX = "https://openalex.org/"
NO_TEXT = "OpenAlex record has neither title nor abstract"

_KINDS = {"W": "work", "A": "author", "S": "source", "I": "institution", "T": "topic", "C": "concept"}
_KINDS.update({"P": "publisher", "F": "funder", "K": "keyword"})
_TAG = re.compile(r"<[^<>]+>")
_MAX_NAMES = 10


def looks_like_openalex(document: Any) -> bool:
    """Whether decoded JSON is an OpenAlex entity, a list of them, or an API list response."""
    if isinstance(document, list):
        return bool(document) and all(_is_record(item) for item in document[:5])
    if isinstance(document, Mapping) and isinstance(document.get("results"), list):
        results = document["results"]
        return bool(results) and all(_is_record(item) for item in results[:5])
    return _is_record(document)


def _is_record(item: Any) -> bool:
    if not isinstance(item, Mapping):
        return False
    identifier = item.get("id")
    return "abstract_inverted_index" in item or (
        isinstance(identifier, str) and identifier.startswith(OPENALEX_ID_PREFIX)
    )


def extract_openalex(payload: str, *, origin: str | None = None) -> ExtractedDocument:
    """Text of one OpenAlex record (or of each record of a list response)."""
    document = load_json(payload)
    if isinstance(document, Mapping) and isinstance(document.get("results"), list):
        records: list[Any] = document["results"]
    elif isinstance(document, list):
        records = document
    else:
        records = [document]
    rendered: list[tuple[str | None, list[Block], dict[str, Any]]] = []
    for record in records:
        item = _record(record) if isinstance(record, Mapping) else None
        if item is not None:
            rendered.append(item)
    if not rendered:
        raise ExtractionError(NO_TEXT)
    blocks: list[Block] = []
    for title, body, _meta in rendered:
        if title:
            blocks.append([title])
        blocks.extend(body)
    metadata: dict[str, Any] = dict(rendered[0][2])
    if len(rendered) > 1:
        metadata = {"records": [meta for *_, meta in rendered]}
    if origin:
        metadata["origin"] = origin
    return ExtractedDocument(title=rendered[0][0], text=compose(blocks), metadata=metadata)


def rebuild_abstract(inverted_index: Any) -> str:
    """Abstract text from an inverted index ``{word: [positions]}``: each word at its positions."""
    if not isinstance(inverted_index, Mapping):
        return ""
    slots: dict[int, str] = {}
    for word, positions in inverted_index.items():
        if not isinstance(word, str) or not isinstance(positions, list):
            continue
        for position in positions:
            if isinstance(position, int) and not isinstance(position, bool):
                slots.setdefault(position, word)
    return " ".join(slots[position] for position in sorted(slots))


def _kind(record: Mapping[str, Any]) -> str:
    if "abstract_inverted_index" in record or "authorships" in record:
        return "work"
    identifier = record.get("id")
    if isinstance(identifier, str) and identifier.startswith(OPENALEX_ID_PREFIX):
        return _KINDS.get(identifier[len(OPENALEX_ID_PREFIX) : len(OPENALEX_ID_PREFIX) + 1], "entity")
    return "entity"


def _record(record: Mapping[str, Any]) -> tuple[str | None, list[Block], dict[str, Any]] | None:
    kind = _kind(record)
    name = record.get("display_name") or record.get("title")
    title = clean_title(_TAG.sub("", name)) if isinstance(name, str) else None
    meta: dict[str, Any] = {"entity": kind}
    if isinstance(record.get("id"), str):
        meta["id"] = record["id"]
    body = _work(record, meta) if kind == "work" else _entity(record, kind, meta)
    if not title and not compose(body):
        return None
    return title, body, meta


def _work(record: Mapping[str, Any], meta: dict[str, Any]) -> list[Block]:
    """Abstract paragraph of a work; bibliographic fields go to the metadata."""
    for key in ("doi", "publication_date", "publication_year", "type", "language"):
        if record.get(key) is not None:
            meta[key] = record[key]
    authors = _names(author.get("author") for author in _list(record.get("authorships")))
    if authors:
        meta["authors"] = authors
    location = record.get("primary_location")
    source = location.get("source") if isinstance(location, Mapping) else None
    if isinstance(source, Mapping) and isinstance(source.get("display_name"), str):
        meta["venue"] = source["display_name"]
    abstract = clean_line(_TAG.sub(" ", rebuild_abstract(record.get("abstract_inverted_index"))))
    return [[abstract]] if abstract else []


def _entity(record: Mapping[str, Any], kind: str, meta: dict[str, Any]) -> list[Block]:
    """A few ``label: value`` lines describing a non-work entity."""
    for key in ("orcid", "ror", "issn_l", "country_code", "type", "works_count"):
        if record.get(key) is not None:
            meta[key] = record[key]
    lines: Block = [f"OpenAlex {kind}"]
    if kind == "author":
        _add(lines, "Also known as", _strings(record.get("display_name_alternatives"), record))
        _add(lines, "Last known institutions", _names(_list(record.get("last_known_institutions"))))
        affiliations = (item.get("institution") for item in _list(record.get("affiliations")))
        _add(lines, "Affiliations", _names(affiliations))
    elif kind == "institution":
        _add(lines, "Type", [record["type"]] if isinstance(record.get("type"), str) else [])
        geo = record.get("geo")
        if isinstance(geo, Mapping):
            place = [geo.get(key) for key in ("city", "region", "country")]
            _add(lines, "Location", [", ".join(part for part in place if isinstance(part, str) and part)])
        _add(lines, "Also known as", _strings(record.get("display_name_alternatives"), record))
        _add(lines, "Acronyms", _strings(record.get("display_name_acronyms"), record))
    elif kind == "source":
        _add(lines, "Type", [record["type"]] if isinstance(record.get("type"), str) else [])
        host = record.get("host_organization_name")
        _add(lines, "Publisher", [host] if isinstance(host, str) else [])
        _add(lines, "Also known as", _strings(record.get("alternate_titles"), record))
        _add(lines, "ISSN", _strings(record.get("issn"), record))
    if isinstance(record.get("description"), str):
        lines.append(record["description"])
    _add(lines, "Topics", _names(_list(record.get("topics"))))
    _add(lines, "Concepts", _names(_list(record.get("x_concepts"))))
    return [lines] if len(lines) > 1 else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _names(items: Iterable[Any]) -> list[str]:
    """Distinct ``display_name`` values of OpenAlex objects, in order, at most ten."""
    names: list[str] = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("display_name"), str):
            name = clean_line(item["display_name"])
            if name and name not in names:
                names.append(name)
                if len(names) == _MAX_NAMES:
                    break
    return names


def _strings(value: Any, record: Mapping[str, Any]) -> list[str]:
    """Distinct strings of a list field, without the record's own display name."""
    own = record.get("display_name")
    out: list[str] = []
    for item in _list(value):
        if isinstance(item, str) and item != own and item not in out:
            out.append(item)
    return out[:_MAX_NAMES]


def _add(lines: Block, label: str, values: list[str]) -> None:
    """Append ``label: a; b; c`` (semicolons, since names such as "Priem, Jason" hold commas)."""
    values = [value for value in values if value]
    if values:
        lines.append(f"{label}: {'; '.join(values)}")
