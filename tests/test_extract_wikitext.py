"""Wikitext revisions: mwparserfromhell where it parses in bounded time, the linear cleaner otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from adversarial_inputs import mediawiki_page
from holocron.extract import _wikitext, extract
from holocron.extract._wikitext import MAX_UNCLOSED, unclosed_marks, wikitext_blocks

ARTICLE = """{{Short description|English mathematician}}
{{Infobox person
| name = Ada Lovelace
| image = Ada.jpg
| birth_date = {{birth date|1815|12|10}}
}}
'''Augusta Ada King, Countess of Lovelace''' (''née'' Byron;
10 December 1815 – 27 November 1852)<ref name="bio">{{cite book|title=Ada}}</ref>
was an [[England|English]] [[mathematician]] and writer.<ref name="bio" />
[[File:Ada Lovelace portrait.jpg|thumb|upright|Ada, a portrait with a [[Link|nested]] link and {{circa|1840}}]]

== Early life ==
She was the only legitimate child of the poet [[Lord Byron]]&nbsp;and
[[Anne Isabella Milbanke|Lady Byron]].<!-- a comment -->
Her mother promoted her interest in mathematics.<br />She was often ill.

=== Education and [[Mary Somerville|Somerville]] ===
* Tutors: [[William Frend]]
* Study of ''logic'' and ''[[music]]''
*# A nested item

; Analytical Engine : the machine she wrote about

== Works ==
{| class="wikitable"
|+ Publications
! Year !! Title
|-
| 1843 || ''Sketch of the [[Analytical Engine]]''
|-
| style="color:red" | 1844 || Notes <ref>Cite.</ref>
|}

<table><tr><td>HTML</td><td>table</td></tr></table>

See [https://example.org the archive] and https://example.org/bare. __NOTOC__

== References ==
{{reflist}}
* A reference

== External links ==
* [https://example.org Site]
[[Category:English mathematicians]]
[[:Category:Shown as a link]]
"""


def test_article_through_the_parser() -> None:
    assert wikitext_blocks(ARTICLE) == [
        [
            "Augusta Ada King, Countess of Lovelace (née Byron; 10 December 1815 – 27 November 1852) was an English "
            "mathematician and writer."
        ],
        ["Early life"],
        [
            "She was the only legitimate child of the poet Lord Byron and Lady Byron. Her mother promoted her "
            "interest in mathematics. She was often ill."
        ],
        ["Education and Somerville"],
        ["Tutors: William Frend", "Study of logic and music", "A nested item"],
        ["Analytical Engine the machine she wrote about"],
        ["Works"],
        ["Publications", "Year | Title", "1843 | Sketch of the Analytical Engine", "1844 | Notes"],
        ["HTML | table"],
        ["See the archive and https://example.org/bare."],
    ]


def test_headings_and_levels_reach_the_outline() -> None:
    document = extract("mediawiki", mediawiki_page(ARTICLE))
    outline = [(section.title, section.level) for section in document.sections]
    assert outline == [("Early life", 2), ("Education and Somerville", 3), ("Works", 2)]
    assert "Shown as a link" not in document.text  # it sits in the dropped tail section (External links)
    assert "reference" not in document.text and "Site" not in document.text


def test_category_link_with_a_leading_colon_is_text() -> None:
    blocks = wikitext_blocks("See [[:Category:Chess]] and [[Category:Hidden]] here.")
    assert blocks == [["See Category:Chess and here."]]


def test_markup_the_regexes_could_not_read() -> None:
    # An HTML table's cells, a template whose argument holds a closing mark inside <nowiki>, a heading
    # made of a link, and a list written as HTML.
    wikitext = (
        "<table><tr><th>Name</th><th>Role</th></tr><tr><td>[[Ada]]</td><td>writer</td></tr></table>\n\n"
        "Before {{quote|<nowiki>}}</nowiki> inside}} after.\n"
        "== [[Analytical Engine|The engine]] ==\n"
        "<ul><li>first</li><li>second</li></ul>\n"
    )
    assert wikitext_blocks(wikitext) == [
        ["Name | Role", "Ada | writer"],
        ["Before after."],
        ["The engine"],
        ["first", "second"],
    ]


def test_the_parser_and_the_cleaner_agree_on_common_markup() -> None:
    page = (
        "'''Bold''' lead with [[a|b]] and [[c]].<ref>x</ref>\n\n== Section ==\n* one\n* two ''x''\n\n"
        "Text {{template|{{nested}}}} after [http://example.org caption].\n"
    )
    assert unclosed_marks(page) == 0
    parsed = _wikitext._assemble(_wikitext._parsed_lines(page))
    cleaned = _wikitext._assemble(_wikitext._cleaned_lines(page))
    assert (
        parsed
        == cleaned
        == [
            ["Bold lead with b and c."],
            ["Section"],
            ["one", "two x"],
            ["Text after caption."],
        ]
    )


@pytest.mark.parametrize(
    ("wikitext", "expected"),
    [
        ("<b>a</b> <br> <br/> <ref name=x/> <ref>x</ref> [[a]] {{b|{{c}}}} [http://x y] <!-- c --> {|\n|x\n|}", 0),
        ("<b>bold", 1),
        ("<ref name='x'", 1),
        ("[[link", 1),
        ("{{template|{{inner}}", 1),
        ("[http://example.org caption", 1),
        ("[http://example.org caption\n]", 1),  # a URL's caption ends with its line
        ("<!-- open", 1),
        ("{|\n| cell", 1),
        ("]] }} </b> stray closings", 0),
        ("<b>" * 5 + "[[x" * 5 + "<!--", 11),
    ],
)
def test_unclosed_marks(wikitext: str, expected: int) -> None:
    assert unclosed_marks(wikitext) == expected


class _ParseSpy:
    def __init__(self) -> None:
        self.calls = 0
        self.real = _wikitext.mwparserfromhell.parse

    def __call__(self, text: str, **options: Any) -> Any:
        self.calls += 1
        return self.real(text, **options)


@pytest.fixture
def parse_spy(monkeypatch: pytest.MonkeyPatch) -> _ParseSpy:
    spy = _ParseSpy()
    monkeypatch.setattr(_wikitext.mwparserfromhell, "parse", spy)
    return spy


def test_well_formed_pages_go_through_the_parser(parse_spy: _ParseSpy) -> None:
    wikitext_blocks(ARTICLE)
    wikitext_blocks("text with " + "<b>x " * MAX_UNCLOSED)
    assert parse_spy.calls == 2


def test_broken_pages_go_to_the_linear_cleaner(parse_spy: _ParseSpy) -> None:
    # 17 unclosed tags: the parser would rescan the page 17 times; 64 kB of them took it 30 s.
    broken = "Words kept. " + "<b>x " * (MAX_UNCLOSED + 1)
    assert wikitext_blocks(broken) == [["Words kept. " + " ".join(["x"] * (MAX_UNCLOSED + 1))]]
    assert wikitext_blocks("[[x" * 20_000) == [["[[x" * 20_000]]  # unclosed links stay text, as MediaWiki shows them
    assert parse_spy.calls == 0


def test_long_pages_go_to_the_linear_cleaner(parse_spy: _ParseSpy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wikitext, "MAX_PARSED_CHARS", 100)
    assert wikitext_blocks("'''Long''' [[page|text]] " * 10) == [[" ".join(["Long text"] * 10)]]
    assert parse_spy.calls == 0


def test_a_page_cannot_forge_line_marks() -> None:
    forged = "plain \ue000 text\n\ue001" + "2\ue001Not a heading\n"
    assert wikitext_blocks(forged) == [["plain text 2Not a heading"]]
