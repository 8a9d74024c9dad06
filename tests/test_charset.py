"""Declared charsets: a page in latin-1, windows-1252, ISO-8859-15 or UTF-16 is read in its charset.

The bytes are built here with Python's codecs, so each test states exactly what is on disk. A declaration
(byte order mark, XML declaration, ``<meta>``) is honoured; undeclared legacy bytes are still refused as
invalid UTF-8, UTF-16 without a byte order mark as binary, and an unknown charset name by its name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from holocron.config import Settings
from holocron.embedding.local import LocalProvider
from holocron.extract import extract
from holocron.ingest.detect import PRESCAN_BYTES, UnsupportedContent, detect_source_type

LATIN1_PAGE = (
    "<!doctype html><html><head><meta charset=iso-8859-1><title>Crème brûlée</title></head>"
    "<body><p>La crème brûlée est un dessert français à la vanille, caramélisé au chalumeau.</p></body></html>"
)
WINDOWS_1252_PAGE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    "<title>Smart quotes</title></head>"
    "<body><p>“Déjà vu” costs 5 € – or so the naïve café owner said.</p></body></html>"
)


def _reason(data: bytes, name: str = "page.html") -> str:
    with pytest.raises(UnsupportedContent) as caught:
        detect_source_type(data, name)
    return caught.value.reason


# --- detection ---------------------------------------------------------------------------------------------


def test_meta_charset_latin1() -> None:
    data = LATIN1_PAGE.encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    detected = detect_source_type(data, "dessert.html")
    assert detected.source_type == "html"
    assert detected.text == LATIN1_PAGE
    document = extract("html", detected.text)
    assert document.title == "Crème brûlée"
    assert "La crème brûlée est un dessert français à la vanille" in document.text


def test_meta_http_equiv_windows_1252() -> None:
    data = WINDOWS_1252_PAGE.encode("cp1252")
    assert b"\x93" in data and b"\x80" in data  # curly quotes and the euro sign: bytes latin-1 has not
    detected = detect_source_type(data, "quotes.html")
    assert detected.text == WINDOWS_1252_PAGE
    assert "“Déjà vu” costs 5 € – or so the naïve café owner said." in extract("html", detected.text).text


def test_iso_8859_1_label_means_windows_1252() -> None:
    # As in browsers (WHATWG Encoding Standard): pages labelled latin-1 use 0x80-0x9F for cp1252 punctuation.
    data = b"<meta charset='ISO-8859-1'><p>\x93quoted\x94 \x85 caf\xe9</p>"
    assert detect_source_type(data, "a.html").text == "<meta charset='ISO-8859-1'><p>“quoted” … café</p>"
    # The five bytes cp1252 leaves undefined stay their latin-1 code points rather than failing.
    assert (
        detect_source_type(b"<meta charset=latin1><p>a\x81b</p>", "a.html").text == "<meta charset=latin1><p>a\x81b</p>"
    )


def test_xml_declaration() -> None:
    page = '<?xml version="1.0" encoding="ISO-8859-15"?>\n<html><body><p>Prix : 20 € l’œuf</p></body></html>'
    page = page.replace("’", "'")  # ISO-8859-15 has € and œ, but no curly apostrophe
    detected = detect_source_type(page.encode("iso-8859-15"), "prices.xhtml")
    assert detected.text == page
    assert "Prix : 20 € l'œuf" in extract("html", detected.text).text


@pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_bom(codec: str, bom: bytes) -> None:
    text = "# Café Müller\n\nZwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\n"
    data = bom + text.encode(codec)
    detected = detect_source_type(data, "cafe.md")
    assert (detected.source_type, detected.text) == ("markdown", text)  # the BOM is not part of the text
    assert extract("markdown", detected.text).title == "Café Müller"


def test_utf16_without_bom_stays_binary() -> None:
    assert _reason("<p>Café</p>".encode("utf-16-le")) == "binary file"
    assert _reason("Plain words.".encode("utf-16-be"), "a.txt") == "binary file"


def test_utf16_bom_with_binary_inside() -> None:
    assert _reason(b"\xff\xfe" + "a\x00b".encode("utf-16-le")) == "binary file"
    assert _reason(b"\xff\xfe" + b"\x00\xd8") == "invalid UTF-16 at byte 2"  # a lone surrogate


def test_utf8_bom_wins_over_meta() -> None:
    data = b"\xef\xbb\xbf<meta charset=iso-8859-1><p>caf\xc3\xa9</p>"
    assert detect_source_type(data, "a.html").text == "<meta charset=iso-8859-1><p>café</p>"


def test_meta_utf16_in_an_ascii_document_means_utf8() -> None:
    data = '<meta charset="utf-16"><p>café</p>'.encode()
    assert detect_source_type(data, "a.html").text == '<meta charset="utf-16"><p>café</p>'


def test_east_asian_and_cyrillic_charsets() -> None:
    japanese = '<meta charset="shift_jis"><p>日本語のテキスト</p>'
    assert detect_source_type(japanese.encode("cp932"), "ja.html").text == japanese
    russian = '<html><head><meta charset="koi8-r"></head><body><p>Привет, мир</p></body></html>'
    assert detect_source_type(russian.encode("koi8-r"), "ru.html").text == russian


@pytest.mark.parametrize("label", ["x-bogus-42", "zlib", "rot13", "unicode_escape", "utf-7"])
def test_unknown_or_unfit_charset_is_named(label: str) -> None:
    data = f'<html><head><meta charset="{label}"></head><body><p>x</p></body></html>'.encode()
    assert _reason(data) == f"unsupported charset '{label}' (declared in the <meta> tag)"
    xml = f'<?xml version="1.0" encoding="{label}"?><html><body><p>x</p></body></html>'.encode()
    assert _reason(xml) == f"unsupported charset '{label}' (declared in the XML declaration)"


def test_bytes_invalid_in_the_declared_charset() -> None:
    data = b'<meta charset="shift_jis"><p>\x82\xa0 \x82</p>'  # a lead byte, then "<": no character
    assert _reason(data) == "invalid shift_jis at byte 32"
    assert data[32:34] == b"\x82<"


def test_meta_only_counts_near_the_start_and_outside_comments() -> None:
    late = b"<html><head>" + b" " * PRESCAN_BYTES + b"<meta charset=iso-8859-1></head><p>caf\xe9</p>"
    assert _reason(late).startswith("invalid UTF-8 at byte ")
    commented = b"<!-- <meta charset=iso-8859-1> --><p>caf\xe9</p>"
    assert _reason(commented) == "invalid UTF-8 at byte 40"


def test_undeclared_latin1_is_still_refused() -> None:
    assert _reason("café crème".encode("latin-1"), "notes.txt") == "invalid UTF-8 at byte 3"
    # A charset named in prose or JSON is no declaration: only markup's own <meta> counts.
    assert _reason(b'{"html": "<meta charset=latin1>", "x": "caf\xe9"}', "a.json") == "invalid UTF-8 at byte 43"


# --- through ingest, index and search --------------------------------------------------------------------------


@pytest.mark.model
def test_declared_charsets_are_ingested_indexed_and_found(db_url: str, tmp_path: Path) -> None:
    from holocron.service import Holocron

    folder = tmp_path / "pages"
    folder.mkdir()
    (folder / "dessert.html").write_bytes(LATIN1_PAGE.encode("latin-1"))
    (folder / "quotes.html").write_bytes(WINDOWS_1252_PAGE.encode("cp1252"))
    notes = "# Köln\n\nDer Kölner Dom ist eine römisch-katholische Kathedrale am Rhein.\n"
    (folder / "koeln.md").write_bytes(b"\xff\xfe" + notes.encode("utf-16-le"))
    (folder / "undeclared.txt").write_bytes("café crème".encode("latin-1"))
    (folder / "bogus.html").write_bytes(b"<html><head><meta charset=klingon></head><body><p>Qapla'</p></body></html>")
    settings = Settings(database_url=db_url, home=tmp_path / "home", embed_batch_size=32)
    with Holocron(settings, provider=LocalProvider()) as holo:
        report = holo.ingest([folder])
        reasons = {Path(r.request_uri).name: r.reason for r in report.rejected}
        assert reasons == {
            "undeclared.txt": "invalid UTF-8 at byte 3",
            "bogus.html": "unsupported charset 'klingon' (declared in the <meta> tag)",
        }
        indexed = holo.index()
        assert indexed.chunking.sources_chunked == 3 and not indexed.chunking.errors
        t = holo.db.t
        with holo.db.read() as tx:
            payloads = {r.resource_id: r.payload for r in tx.execute(select(t.ingest_records))}
            chunks = {r.source_id: r.content for r in tx.execute(select(t.chunk))}
        assert payloads["pages/dessert.html"] == LATIN1_PAGE
        assert payloads["pages/koeln.md"] == notes
        assert "La crème brûlée est un dessert français" in chunks["files:pages/dessert.html"]
        assert "“Déjà vu” costs 5 €" in chunks["files:pages/quotes.html"]
        assert "Der Kölner Dom ist eine römisch-katholische Kathedrale" in chunks["files:pages/koeln.md"]

        for query, source in [("brûlée", "dessert.html"), ("Kölner", "koeln.md"), ("naïve", "quotes.html")]:
            hits = holo.search(query, k=3, mode="keyword").hits
            assert hits and hits[0].source_id == f"files:pages/{source}", (query, hits)
        hits = holo.search("caramelised vanilla dessert", k=3).hits
        assert hits[0].source_id == "files:pages/dessert.html"
