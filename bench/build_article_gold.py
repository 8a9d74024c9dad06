"""Build the article gold set of ``bench/extract_eval.py`` from openly licensed documentation pages.

Run by hand once, from pages as Debian ships them (``apt-get download debian-handbook python3.11-doc``, then
``dpkg-deb -x``); the pages and ``gold.json`` it writes are committed, with their licences in
``bench/data/article-gold/README.md``:

    .venv/bin/python bench/build_article_gold.py --handbook DIR/usr/share/doc/debian-handbook/html/en-US \\
        --python-docs DIR/usr/share/doc/python3.11/html

The gold of a page comes from the generator's own markup, which no extractor under test is told about: the
article is DocBook's ``div.section``/``div.chapter`` (the handbook) or Sphinx's ``div.body[role=main]`` (the
Python docs). "with" snippets are the first eight words of its first, middle and last long paragraphs;
"without" snippets are the furniture strings of that generator (navigation, sidebars, footers) found on the
page outside the article and nowhere inside it. The pages are a fixed, sorted choice, not a tuned one.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

OUT = Path(__file__).resolve().parent / "data" / "article-gold"
HANDBOOK_PAGES = 10
PYTHON_PAGES = 10
FURNITURE = {
    "handbook": ["Download the ebook", "The Debian Administrator's Handbook"],
    "python": [
        "Table of Contents",
        "Previous topic",
        "Next topic",
        "This Page",
        "Report a Bug",
        "Show Source",
        "Quick search",
        "Python Software Foundation",
        "Last updated on",
        "Found a bug?",
        "Navigation",
    ],
}
MAIN = {"handbook": "body > div.section, body > div.chapter", "python": "div.body[role=main]"}
PARAGRAPHS = {"handbook": "div.para", "python": "p"}


def text(node_text: str) -> str:
    return " ".join(node_text.split())


def gold_for(html: str, kind: str) -> dict[str, list[str]] | None:
    tree = LexborHTMLParser(html)
    main = tree.css_first(MAIN[kind])
    body = tree.body
    if main is None or body is None:
        return None
    paragraphs = [t for t in (text(p.text()) for p in main.css(PARAGRAPHS[kind])) if len(t) >= 120]
    if len(paragraphs) < 3:
        return None
    picked = [paragraphs[0], paragraphs[len(paragraphs) // 2], paragraphs[-1]]
    with_ = list(dict.fromkeys(" ".join(p.split()[:8]) for p in picked))
    inside = text(main.text())
    everywhere = text(body.text())
    without = [f for f in FURNITURE[kind] if f in everywhere and f not in inside]
    return {"with": with_, "without": without}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handbook", type=Path, required=True)
    parser.add_argument("--python-docs", type=Path, required=True)
    args = parser.parse_args()
    choices = [
        ("handbook", sorted(args.handbook.glob("sect.*.html"))[::6][:HANDBOOK_PAGES], args.handbook),
        (
            "python",
            sorted([*args.python_docs.glob("howto/*.html"), *args.python_docs.glob("tutorial/*.html")])[::3][
                :PYTHON_PAGES
            ],
            args.python_docs,
        ),
    ]
    gold: dict[str, dict[str, object]] = {}
    OUT.mkdir(parents=True, exist_ok=True)
    for kind, pages, root in choices:
        for page in pages:
            html = page.read_text(encoding="utf-8")
            found = gold_for(html, kind)
            if found is None:
                continue
            name = f"{kind}__{page.relative_to(root).as_posix().replace('/', '__')}"
            shutil.copyfile(page, OUT / name)
            gold[name] = {"kind": kind, **found}
    (OUT / "gold.json").write_text(json.dumps(gold, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"{len(gold)} pages, {sum(len(g['with']) for g in gold.values())} with-snippets, "  # type: ignore[arg-type]
        f"{sum(len(g['without']) for g in gold.values())} without-snippets"
    )  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
