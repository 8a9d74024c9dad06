"""Content-type detection: sniffing real sample files and refusing what cannot be ingested."""

from __future__ import annotations

import dataclasses

import pytest

from datafiles import data_file, data_files
from holocron.extract import extract
from holocron.ingest.detect import CONTENT_TYPES, Detected, UnsupportedContent, detect_source_type

ARYA_REVISIONS = "mediawiki-api/awoiaf.westeros.org/query__revisions__Arya_Stark.json"


def _samples() -> dict[str, str]:
    """Every sample file, by name, with the source type it must be detected as."""
    samples = dict.fromkeys(data_files("wiki-html", ".html", expect=7), "html")
    samples |= dict.fromkeys(data_files("mediawiki-api", ".json", expect=149), "mediawiki")
    samples |= dict.fromkeys(data_files("openalex", ".json", expect=4), "openalex")
    samples["README.md"] = "markdown"  # the data folder's own README
    return samples


SAMPLES = _samples()


def _reason(data: bytes, name: str) -> str:
    with pytest.raises(UnsupportedContent) as caught:
        detect_source_type(data, name)
    return str(caught.value)


@pytest.mark.parametrize(("name", "source_type"), SAMPLES.items(), ids=list(SAMPLES))
def test_sample_files_are_detected(name: str, source_type: str) -> None:
    path = data_file(name)
    data = path.read_bytes()
    detected = detect_source_type(data, path.name)
    assert detected.source_type == source_type
    assert detected.content_type == CONTENT_TYPES[source_type]
    assert detected.text == data.decode("utf-8")


def test_html_named_txt_is_html() -> None:
    data = data_file("wiki-html/readability__wikipedia-2__source.html").read_bytes()
    detected = detect_source_type(data, "new-zealand.txt")
    assert (detected.source_type, detected.content_type) == ("html", "text/html")
    assert extract(detected.source_type, detected.text).title == "New Zealand"


def test_json_without_json_name_is_sniffed() -> None:
    assert detect_source_type(data_file(ARYA_REVISIONS).read_bytes(), "arya").source_type == "mediawiki"
    work = data_file("openalex/papers__work.json").read_bytes()
    assert detect_source_type(work, "W2741809807.dat").source_type == "openalex"


def test_truncated_json_is_malformed() -> None:
    truncated = data_file(ARYA_REVISIONS).read_bytes()[:500]
    assert _reason(truncated, "arya.json").startswith("malformed JSON: ")
    assert _reason(truncated, "arya").startswith("malformed JSON: ")


def test_unrecognised_json() -> None:
    subset = data_file("wiki-html/trafilatura_evaldata_subset.json").read_bytes()
    assert _reason(subset, "subset.json") == "unrecognised JSON document"
    assert _reason(b'{"hello": "world"}', "x") == "unrecognised JSON document"


def test_binary_data_is_refused() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + b"\x00" * 64
    assert _reason(png, "image.png") == "binary file"
    assert _reason(png, "image.txt") == "binary file"
    assert _reason(bytes(range(1, 32)) * 20, "blob") == "binary file"


def test_invalid_utf8_reports_the_byte() -> None:
    assert _reason(b"abc\xff\xfe", "a.txt") == "invalid UTF-8 at byte 3"
    assert _reason(b"\xef\xbb\xbfab\xff", "b.txt") == "invalid UTF-8 at byte 5"


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n", "\u3000\n".encode()])
def test_empty_files_are_refused(data: bytes) -> None:
    assert _reason(data, "empty.txt") == "empty file"


def test_bom_is_stripped() -> None:
    detected = detect_source_type(b"\xef\xbb\xbf# Title\n\nSome text.\n", "notes.md")
    assert detected == Detected("markdown", "text/markdown", "# Title\n\nSome text.\n")
    detected = detect_source_type('\ufeff{"parse": {"title": "A", "text": "<p>x</p>"}}'.encode(), "a")
    assert detected.source_type == "mediawiki"
    assert detected.text.startswith("{")


def test_html_sniffing_without_doctype() -> None:
    assert detect_source_type(b"<p>Hello <b>world</b></p>", "snippet.txt").source_type == "html"
    assert detect_source_type(b"<div class='x'>\n<h1>T</h1>\n</div>", "page").source_type == "html"
    assert detect_source_type(b"x < y and y > z, says the proof.", "proof.txt").source_type == "text"


def test_markdown_by_name_and_by_structure() -> None:
    readme = b'<p align="center"><img src="logo.png"></p>\n\n# Project\n\nText.\n'
    assert detect_source_type(readme, "README.md").source_type == "markdown"
    structured = b"# Title\n\nIntro with a [link](https://example.org).\n\n## Part\n\n- item\n"
    assert detect_source_type(structured, "notes.txt").source_type == "markdown"
    badge = b"[![build](https://ci/badge.svg)](https://ci)\n\n# Name\n\nA library.\n"
    assert detect_source_type(badge, "README").source_type == "markdown"
    assert detect_source_type(b"Plain words.\n\nA second paragraph.\n", "a.txt").source_type == "text"
    assert detect_source_type(b"[note] not json at all\n", "a.txt").source_type == "text"


def test_detected_is_frozen_and_errors_are_value_errors() -> None:
    detected = detect_source_type(b"hello", "a.txt")
    with pytest.raises(dataclasses.FrozenInstanceError):
        detected.source_type = "html"  # type: ignore[misc]
    assert issubclass(UnsupportedContent, ValueError)
    assert detected == Detected("text", "text/plain", "hello")


def test_markdown_structure_signals() -> None:
    setext = b'Title\n=====\n\nIntro with a [link](https://example.org "its title").\n'
    assert detect_source_type(setext, "notes").source_type == "markdown"
    two_links = b"See [one](https://a.example/x) and [two](https://b.example/y (nested)) for more.\n"
    assert detect_source_type(two_links, "links").source_type == "markdown"
    table = b"Intro\n-----\n\n| a | b |\n|---|:---:|\n| 1 | 2 |\n"
    assert detect_source_type(table, "table").source_type == "markdown"
    # Marks without structure stay plain text, however many and however long the line.
    marks = b"[x](" * 20000 + b"**x" * 20000 + b"x" * 100000
    assert detect_source_type(marks, "marks").source_type == "text"


def test_charset_declaration_decodes_and_unknown_charset_is_named() -> None:
    page = "<html><head><meta charset=iso-8859-1></head><body><p>Crème brûlée</p></body></html>"
    detected = detect_source_type(page.encode("latin-1"), "page.html")
    assert (detected.source_type, detected.text) == ("html", page)
    assert _reason(b"<meta charset=nonsense><p>x</p>", "page.html") == (
        "unsupported charset 'nonsense' (declared in the <meta> tag)"
    )
