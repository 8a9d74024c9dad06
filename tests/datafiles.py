"""The sample files the tests read, all inside the repository, and a loud failure when one is missing.

A file is named as in the sample-data layout, e.g. ``"wiki-html/trafilatura__en.wikipedia.org.tsne.html"`` or
``"mediawiki-api/en.wikipedia.org/query__revisions__Bush.json"``. It lives in exactly one of three places:
``tests/data/`` (see its README for origin and licence), the demo corpus ``examples/corpus/`` when the demo
already ships it (there the MediaWiki recordings are named ``<site>_<request>.json``, not ``<site>/<request>.json``),
or ``bench/data/`` when a benchmark ships it (the article gold set, ``article-gold/...``).

A missing file fails the test that reads it; a folder that a parametrisation globs must give the number of files
it is known to hold at collection time, so a missing folder is a collection error, never a silent skip or a
smaller test run.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
CORPUS = REPO / "examples" / "corpus"
BENCH_DATA = REPO / "bench" / "data"

# Demo-corpus folders whose files are flattened: "<site>/<request>.json" is stored as "<site>_<request>.json".
FLATTENED = {"mediawiki-api"}


def _corpus_path(name: str) -> Path:
    parts = PurePosixPath(name).parts
    if parts[0] in FLATTENED and len(parts) == 3:
        return CORPUS / parts[0] / f"{parts[1]}_{parts[2]}"
    return CORPUS.joinpath(*parts)


def _corpus_name(path: Path) -> str:
    relative = path.relative_to(CORPUS)
    folder = relative.parts[0]
    if folder in FLATTENED and len(relative.parts) == 2:
        site, _, request = relative.parts[1].partition("_")
        return f"{folder}/{site}/{request}"
    return relative.as_posix()


def data_file(name: str) -> Path:
    """The path of the sample file ``name``; fails the test (naming every place looked at) when it is missing."""
    parts = PurePosixPath(name).parts
    candidates = [DATA.joinpath(*parts), _corpus_path(name), BENCH_DATA.joinpath(*parts)]
    found = [path for path in candidates if path.is_file()]
    if not found:
        pytest.fail(
            f"sample file {name!r} is missing: looked for {', '.join(str(p) for p in candidates)} "
            "(the tests' data must be in the repository: see tests/data/README.md)",
            pytrace=False,
        )
    return found[0]


def data_text(name: str) -> str:
    return data_file(name).read_text(encoding="utf-8")


def data_files(folder: str, suffix: str, *, expect: int) -> dict[str, Path]:
    """Every sample file under ``folder`` (recursively) whose name ends with ``suffix``, by name, sorted.

    Exactly ``expect`` of them: fewer (a folder gone, from one place or both) is a failure at collection, not a
    parametrisation with fewer cases or none; a file added to the data is added to the count too. The same name
    in both places is a failure as well (each file has exactly one home).
    """
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    roots = [(DATA / folder, lambda p: p.relative_to(DATA).as_posix()), (CORPUS / folder, _corpus_name)]
    for root, name_of in roots:
        if not root.is_dir():
            continue
        for path in root.rglob(f"*{suffix}"):
            if path.is_file():
                name = name_of(path)
                if name in found:
                    duplicates.append(name)
                found[name] = path
    if duplicates:
        pytest.fail(f"sample files both in {DATA} and in {CORPUS}: {sorted(duplicates)}", pytrace=False)
    if len(found) != expect:
        pytest.fail(
            f"{len(found)} sample files *{suffix} in {DATA / folder} and {CORPUS / folder}, expected {expect}: "
            "the tests' data must be in the repository (see tests/data/README.md)",
            pytrace=False,
        )
    return dict(sorted(found.items()))


def write_pages(folder: Path, pages: dict[str, str]) -> Path:
    """Write ``pages`` (file name -> text) into a new ``folder``, for a test to ingest."""
    folder.mkdir()
    for name, text in pages.items():
        (folder / name).write_text(text)
    return folder


def scifact_texts(abstracts: int, claims: int) -> list[str]:
    """The first SciFact abstracts (title + text) and claims shipped with the tests: real texts of both kinds."""
    corpus = data_file("scifact/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [f"{d['title']} {d['text']}" for d in map(json.loads, corpus[:abstracts])]
    queries = data_file("scifact/queries.jsonl").read_text(encoding="utf-8").splitlines()
    return texts + [q["text"] for q in map(json.loads, queries[:claims])]
