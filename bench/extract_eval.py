"""Extraction quality: every extractor scored on the same gold sets in one run, side by side.

Run by hand:

    .venv/bin/python bench/extract_eval.py

A gold page lists snippets a good extraction keeps ("with") and drops ("without"), as trafilatura's own
evaluation does: a kept "with" is a true positive, a missing one a false negative, a kept "without" a false
positive. Whitespace is collapsed on both sides before the substring test. Sets:

* ``wiki``: the trafilatura project's snippets for three wiki pages (``tests/data/wiki-html``), served HTML in
  ``examples/corpus/wiki-html``;
* ``articles``: 18 documentation pages of two generators (DocBook, Sphinx) with snippets taken from their own
  markup (``bench/build_article_gold.py``; licences in ``bench/data/article-gold/README.md``).

Extractors: ``holocron`` (``holocron extract``: wiki rules for wiki skins, trafilatura for the rest),
``holocron-rules`` (the wiki rules alone on every page, as before trafilatura), ``trafilatura`` (plain text,
its defaults), ``justext`` (paragraphs it classifies good), and ``readability-lxml`` when installed.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import justext
import trafilatura

from holocron.extract._types import ExtractionError
from holocron.extract.html import extract_html

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Page:
    name: str
    html: str
    with_: list[str]
    without: list[str]


def wiki_set() -> list[Page]:
    gold = json.loads((ROOT / "tests/data/wiki-html/trafilatura_evaldata_subset.json").read_text(encoding="utf-8"))
    folder = ROOT / "examples/corpus/wiki-html"
    return [
        Page(g["file"], (folder / f"trafilatura__{g['file']}").read_text(encoding="utf-8"), g["with"], g["without"])
        for g in gold.values()
    ]


def article_set() -> list[Page]:
    folder = ROOT / "bench/data/article-gold"
    gold = json.loads((folder / "gold.json").read_text(encoding="utf-8"))
    return [
        Page(name, (folder / name).read_text(encoding="utf-8"), g["with"], g["without"]) for name, g in gold.items()
    ]


def holocron(html: str) -> str:
    try:
        return extract_html(html).text
    except ExtractionError:
        return ""


def holocron_rules(html: str) -> str:
    try:
        return extract_html(html, general=False).text
    except ExtractionError:
        return ""


def trafilatura_text(html: str) -> str:
    return trafilatura.extract(html) or ""


def justext_text(html: str) -> str:
    paragraphs = justext.justext(html.encode("utf-8"), justext.get_stoplist("English"))
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def extractors() -> dict[str, Callable[[str], str]]:
    found: dict[str, Callable[[str], str]] = {
        "holocron": holocron,
        "holocron-rules": holocron_rules,
        "trafilatura": trafilatura_text,
        "justext": justext_text,
    }
    if importlib.util.find_spec("readability") is not None:
        from readability import Document  # type: ignore[import-not-found]
        from selectolax.lexbor import LexborHTMLParser

        def readability_text(html: str) -> str:
            summary = Document(html).summary()
            return LexborHTMLParser(summary).text(separator="\n")

        found["readability-lxml"] = readability_text
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


def score(extract: Callable[[str], str], pages: list[Page]) -> dict[str, float]:
    tp = fn = fp = tn = 0
    empty = 0
    started = time.perf_counter()
    for page in pages:
        text = flat(extract(page.html))
        empty += len(text) < 200
        for snippet in page.with_:
            if flat(snippet) in text:
                tp += 1
            else:
                fn += 1
        for snippet in page.without:
            if flat(snippet) in text:
                fp += 1
            else:
                tn += 1
    seconds = time.perf_counter() - started
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "empty": empty,
        "ms_per_page": 1000 * seconds / len(pages),
    }


def main() -> None:
    sets = {"wiki": wiki_set(), "articles": article_set()}
    print(
        f"{'set':<9} {'extractor':<17} {'pages':>5} {'precision':>9} {'recall':>7} {'F1':>6} {'empty':>5}"
        f" {'ms/page':>8}"
    )
    for set_name, pages in sets.items():
        for name, extract in extractors().items():
            s = score(extract, pages)
            print(
                f"{set_name:<9} {name:<17} {len(pages):>5} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}"
                f" {int(s['empty']):>5} {s['ms_per_page']:>8.1f}"
            )


if __name__ == "__main__":
    main()
