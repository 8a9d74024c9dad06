"""Structure-aware chunking (structure-v1): its guarantees on generated and real text, with a simple tokenizer
whose counts are known by hand and with the real model's tokenizer, and the policy's identity."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from datafiles import data_file
from holocron.chunking import PATH_SEPARATOR, ChunkingResult, ChunkPolicy, chunk_structure, embedding_input
from holocron.chunking.structure import contextual_header
from holocron.config import Settings
from holocron.embedding.base import EmbeddingError, tokenizer_for_policy
from holocron.embedding.local import LocalProvider
from holocron.extract import extract, section_path
from holocron.jobs.models import ChunkPolicySpec
from holocron.service import Holocron

_TOKEN = re.compile(r"\w{1,4}|[^\w\s]")


class PieceTokenizer:
    """Words cut into pieces of at most four word characters, and every other character alone: a token
    count anyone can check by hand, additive over whitespace like the model's WordPiece."""

    name = "pieces-of-4"

    def token_ends(self, text: str) -> list[int]:
        return [match.end() for match in _TOKEN.finditer(text)]

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(text)) for text in texts]


TOKENIZER = PieceTokenizer()


def policy(size: int, context: str = "path") -> ChunkPolicy:
    return ChunkPolicy(chunk_size=size, overlap=0, algorithm="structure-v1", tokenizer=TOKENIZER.name, context=context)


def check_guarantees(text: str, spans: Sequence[tuple[int, int]], budget: int, contexts: Sequence[str]) -> None:
    covered = bytearray(len(text))
    previous_end = -1
    for (start, end), context in zip(spans, contexts, strict=True):
        piece = text[start:end]
        assert start >= previous_end and end > start, "chunks overlap or go backwards"
        assert not piece[0].isspace() and not piece[-1].isspace(), repr(piece)
        for index in range(start, end):
            covered[index] = 1
        tokens = TOKENIZER.count([context])[0] + TOKENIZER.count([piece])[0]
        if tokens > budget:
            assert not any(ch.isspace() for ch in piece), f"an over-long chunk that is not one word: {piece!r}"
        # never cut inside a word unless the word alone is longer than the window
        for edge in (start, end):
            inside_word = 0 < edge < len(text) and not text[edge - 1].isspace() and not text[edge].isspace()
            if inside_word:
                word = re.search(r"\S*\Z", text[:edge]).group() + re.match(r"\S*", text[edge:]).group()  # type: ignore[union-attr]
                # the header reserved for the chunk's section is at most a quarter of the window
                assert TOKENIZER.count([word])[0] > budget - budget // 4, (edge, word)
        previous_end = end
    lost = [index for index, ch in enumerate(text) if not ch.isspace() and not covered[index]]
    assert not lost, f"characters lost at {lost[:5]}"


def test_paragraph_boundaries_come_before_sentences_and_words() -> None:
    first = "Aa bb cc. Dd ee."  # 7 tokens
    second = "Ff gg hh. Ii jj kk."  # 8 tokens
    text = f"{first}\n\n{second}"
    result, contexts = chunk_structure(text, policy(10, context=""), TOKENIZER)
    assert [span.text for span in result.spans] == [first, second]
    # Too small for a paragraph: the cut falls at a sentence end, not between any two words.
    result, _ = chunk_structure(first, policy(5, context=""), TOKENIZER)
    assert [span.text for span in result.spans] == ["Aa bb cc.", "Dd ee."]
    assert contexts == ["", ""]


def test_list_items_and_table_rows_are_kept_whole() -> None:
    rows = "\n".join(f"| row {n} | value {n} |" for n in range(6))  # 9 tokens a row
    result, _ = chunk_structure(rows, policy(20, context=""), TOKENIZER)
    assert all(span.text.count("\n") == 1 for span in result.spans)
    assert "\n".join(span.text for span in result.spans) == rows


def test_sections_are_never_crossed_and_carry_their_heading_path() -> None:
    blocks = ["Guide", "Setup", "Install the package first.", "Usage", "Run it.", "Details", "More words here."]
    text = "\n\n".join(blocks)
    offsets = [text.index(block) for block in blocks]
    # title at 0 (level 1), Setup and Usage at level 2, Details at level 3 under Usage
    levels = {offsets[0]: 1, offsets[1]: 2, offsets[3]: 2, offsets[5]: 3}
    names = {offset: text[offset : text.index("\n", offset) if "\n" in text[offset:] else None] for offset in levels}

    def path(offset: int) -> list[str]:
        stack: list[tuple[int, str]] = []
        for start in sorted(levels):
            if start > offset:
                break
            while stack and stack[-1][0] >= levels[start]:
                stack.pop()
            stack.append((levels[start], names[start]))
        return [name for _, name in stack]

    result, contexts = chunk_structure(
        text, policy(200), TOKENIZER, section_starts=sorted(levels)[1:], heading_path=path, title=None
    )
    chunks = [span.text for span in result.spans]
    # The title has no text of its own and travels with Setup; no chunk spans two sections with text of their
    # own; a chunk's header is the path above it, less the heading it begins with.
    assert chunks == ["Guide\n\nSetup\n\nInstall the package first.", "Usage\n\nRun it.", "Details\n\nMore words here."]
    assert contexts == ["", "Guide", f"Guide{PATH_SEPARATOR}Usage"]


def test_contextual_header_drops_the_heading_the_chunk_begins_with() -> None:
    assert contextual_header(["Doc", "Part"], "Part\n\ntext") == "Doc"
    assert contextual_header(["Doc", "Part"], "Partial text") == f"Doc{PATH_SEPARATOR}Part"
    assert contextual_header(["Doc"], "Doc") == ""
    assert embedding_input("Doc › Part", "text") == "Doc › Part\n\ntext"
    assert embedding_input(None, "text") == embedding_input("", "text") == "text"


def test_the_header_counts_against_the_window() -> None:
    title = "Short title here"  # 5 tokens: within a quarter of the window, and short enough to lead a chunk
    text = f"{title}\n\n" + " ".join(f"w{n}" for n in range(60))  # 60 tokens
    result, contexts = chunk_structure(text, policy(48), TOKENIZER, title=title)
    assert len(result.spans) == 2 and contexts == ["", title]
    check_guarantees(text, [(s.start, s.end) for s in result.spans], 48, contexts)
    for span, context in zip(result.spans, contexts, strict=True):
        assert TOKENIZER.count([context])[0] + TOKENIZER.count([span.text])[0] <= 48
    # A header longer than a quarter of the window is left out rather than crowd out the text.
    _, contexts = chunk_structure(text, policy(16), TOKENIZER, title=title)
    assert set(contexts) == {""}


def test_a_word_longer_than_the_window_is_cut_at_token_boundaries() -> None:
    word = "x" * 50  # 13 tokens of at most four characters
    result, _ = chunk_structure(f"short {word} end", policy(5, context=""), TOKENIZER)
    pieces = [span.text for span in result.spans]
    # "short", then 20 characters (5 tokens) at a time, and the word's last 10 packed with "end"
    assert pieces == ["short", "x" * 20, "x" * 20, "x" * 10 + " end"]
    assert all(TOKENIZER.count([piece])[0] <= 5 for piece in pieces)


@pytest.mark.parametrize("seed", range(40))
def test_guarantees_hold_on_random_structured_text(seed: int) -> None:
    rng = random.Random(seed)
    vocabulary = ["a", "bb", "word", "longerword", "x" * 30, "end.", "stop!", "(aside)", "“quoted.”", "1.5", "e.g."]
    blocks: list[str] = []
    heading_offsets: list[int] = []
    offset = 0
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.2:
            block = f"Heading {rng.randint(0, 99)}"
            heading_offsets.append(offset)
        elif kind < 0.5:
            block = "\n".join(f"- {' '.join(rng.choices(vocabulary, k=rng.randint(1, 8)))}" for _ in range(4))
        else:
            block = " ".join(rng.choices(vocabulary, k=rng.randint(1, 80)))
        blocks.append(block)
        offset += len(block) + 2
    text = "\n\n".join(blocks) + rng.choice(["", " ", "\n"])
    budget = rng.randint(1, 40)

    def chunked() -> tuple[ChunkingResult, list[str]]:
        return chunk_structure(
            text,
            policy(budget),
            TOKENIZER,
            section_starts=heading_offsets,
            heading_path=lambda at: [f"H{sum(1 for h in heading_offsets if h <= at)}"],
            title="T",
        )

    result, contexts = chunked()
    assert result.total_windows == len(result.spans) and not result.dropped
    check_guarantees(text, [(s.start, s.end) for s in result.spans], budget, contexts)
    assert chunked() == (result, contexts)


def test_empty_and_blank_text_have_no_chunks() -> None:
    for text in ("", "   \n\n  "):
        result, contexts = chunk_structure(text, policy(10), TOKENIZER)
        assert result.spans == [] and contexts == [] and result.total_windows == 0


def test_the_cap_drops_chunks_and_counts_them() -> None:
    text = "\n\n".join(f"para {n} words" for n in range(10))
    capped = ChunkPolicy(chunk_size=4, overlap=0, max_chunks=4, algorithm="structure-v1", tokenizer=TOKENIZER.name)
    result, contexts = chunk_structure(text, capped, TOKENIZER)
    assert len(result.spans) == len(contexts) == 4 and result.total_windows == 10 and result.dropped == 6


def test_policy_version_names_tokenizer_size_and_context() -> None:
    with_path, without = policy(254), policy(254, context="")
    assert with_path.version == "structure-v1:254t:path:pieces-of-4"
    assert without.version == "structure-v1:254t:none:pieces-of-4"
    assert ChunkPolicy.from_json(with_path.to_json()) == with_path
    assert ChunkPolicy.structured(256, "tok").chunk_size == 254
    assert ChunkPolicy.structured(8192, "tok").chunk_size == 512
    with pytest.raises(ValueError, match="tokenizer"):
        ChunkPolicy(chunk_size=10, overlap=0, algorithm="structure-v1")
    with pytest.raises(ValueError, match="do not overlap"):
        ChunkPolicy(chunk_size=10, overlap=2, algorithm="structure-v1", tokenizer="t")
    with pytest.raises(ValueError, match="belong to structure-v1"):
        ChunkPolicy(chunk_size=10, overlap=2, tokenizer="t")
    with pytest.raises(ValueError, match="context"):
        ChunkPolicy(chunk_size=10, overlap=0, algorithm="structure-v1", tokenizer="t", context="title")
    with pytest.raises(ValueError, match="says version"):
        ChunkPolicy.from_json({**with_path.to_json(), "version": "structure-v1:254t:none:pieces-of-4"})


# --- The real model's tokenizer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider()


@pytest.mark.model
def test_real_tokenizer_every_chunk_fits_the_model_window(provider: LocalProvider) -> None:
    tokenizer = provider.tokenizer()
    window = provider.identity().max_input_tokens
    assert window is not None
    structured = ChunkPolicy.structured(window, tokenizer.name)
    documents = []
    with data_file("scifact/corpus.jsonl").open(encoding="utf-8") as handle:
        for line in list(handle)[:60]:
            record = json.loads(line)
            documents.append(extract("text", f"{record['title']}\n\n{record['text']}"))
    for name in ("trafilatura__en.wikipedia.org.tsne.html", "trafilatura__stardewvalleywiki.com.penny.html"):
        documents.append(extract("html", data_file(f"wiki-html/{name}").read_text(encoding="utf-8")))
    inputs: list[str] = []
    for document in documents:
        result, contexts = chunk_structure(
            document.text,
            structured,
            tokenizer,
            section_starts=[section.offset for section in document.sections],
            heading_path=lambda offset, d=document: section_path(d.sections, offset),  # type: ignore[misc]
            title=document.title,
        )
        covered = "".join(span.text for span in result.spans)
        assert "".join(document.text.split()) == "".join(covered.split()), document.title
        inputs.extend(embedding_input(context, span.text) for span, context in zip(result.spans, contexts, strict=True))
    counts = provider.count_tokens(inputs)  # with [CLS] and [SEP], as the model reads them
    assert max(counts) <= window, max(counts)
    # Full use of the window: most long documents' chunks are close to it, none truncated.
    assert sorted(counts)[len(counts) // 2] > window // 3


@pytest.mark.model
def test_structure_policy_end_to_end_embeds_the_header_and_reembeds_only_what_changed(
    db_url: str, tmp_path: Path, provider: LocalProvider
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    long = " ".join(f"Sentence {n} about the harbour of Wellington and its ferries." for n in range(40))
    page = folder / "guide.md"
    page.write_text(
        f"# City guide\n\n## Transport\n\n{long}\n\n## Food\n\nFish and chips by the sea.\n", encoding="utf-8"
    )
    other = folder / "other.md"
    other.write_text("# Other\n\nNothing to see here.\n", encoding="utf-8")
    settings = Settings(database_url=db_url, home=tmp_path / "home", chunk_policy="structure", embed_batch_size=16)
    with Holocron(settings, provider=provider) as holo:
        holo.ingest([folder])
        report = holo.index()
        assert not report.chunking.errors
        chunk = holo.db.t.chunk
        with holo.db.read() as tx:
            rows = tx.execute(select(chunk.c.chunk_id, chunk.c.content, chunk.c.context, chunk.c.policy_version)).all()
        assert {row.policy_version for row in rows} == {holo.chunk_policy().version}
        assert holo.chunk_policy().version.startswith("structure-v1:254t:path:sentence-transformers/all-MiniLM-L6-v2@")
        transport = [row for row in rows if "Sentence" in row.content]
        assert len(transport) > 1
        # The title heading has no text of its own: it leads the first chunk, which needs no header.
        assert transport[0].context is None and transport[0].content.startswith("City guide\n\nTransport")
        assert all(row.context == f"City guide{PATH_SEPARATOR}Transport" for row in transport[1:])
        inputs = [embedding_input(row.context, row.content) for row in rows]
        assert max(provider.count_tokens(inputs)) <= 256

        hit = holo.search("fish and chips", k=1).hits[0]
        assert hit.title == "City guide" and hit.heading_path == ["Food"]  # the title is shown on its own

        # Renaming a heading (same length: no offset moves) changes the first chunk's content and only the
        # header of the others: the section's chunks are embedded again, and nothing else is.
        page.write_text(page.read_text(encoding="utf-8").replace("## Transport", "## Transfers"), encoding="utf-8")
        holo.ingest([folder])
        texts_before = provider.stats.texts
        again = holo.index()
        assert again.embedding.chunks_embedded == len(transport) == provider.stats.texts - texts_before
        with holo.db.read() as tx:
            contexts = set(tx.execute(select(chunk.c.context)).scalars())
        assert f"City guide{PATH_SEPARATOR}Transfers" in contexts
        assert f"City guide{PATH_SEPARATOR}Transport" not in contexts


@pytest.mark.model
def test_reading_tokens_leaves_the_models_own_truncation_alone(provider: LocalProvider) -> None:
    long = "harbour ferries " * 400  # 800 tokens: the model reads the first 256
    before = provider.embed([long])
    ends = provider.tokenizer().token_ends(long)
    assert len(ends) == 800 and ends[-1] == len(long.rstrip())
    assert provider.tokenizer().count([long, ""]) == [800, 0]
    assert np.array_equal(provider.embed([long]), before)


def test_a_structure_policy_travels_in_job_payloads_and_a_window_policy_as_before() -> None:
    structured = policy(254)
    spec = ChunkPolicySpec.of(structured)
    assert ChunkPolicySpec.model_validate(spec.model_dump(mode="json")).to_policy() == structured
    window = ChunkPolicy(chunk_size=400, overlap=40)
    assert ChunkPolicySpec.of(window).model_dump(mode="json") == window.to_json()


def test_a_policy_is_only_used_with_the_tokenizer_it_names() -> None:
    class Remote:  # a server's provider: no tokenizer at hand
        pass

    class Local:
        def tokenizer(self) -> PieceTokenizer:
            return TOKENIZER

    assert tokenizer_for_policy(Remote(), ChunkPolicy()) is None  # a window policy needs none
    assert tokenizer_for_policy(Local(), policy(10)) is TOKENIZER
    with pytest.raises(EmbeddingError, match="no tokenizer at hand"):
        tokenizer_for_policy(Remote(), policy(10))
    other = ChunkPolicy(chunk_size=10, overlap=0, algorithm="structure-v1", tokenizer="another-model@0123")
    with pytest.raises(EmbeddingError, match="not this model's pieces-of-4"):
        tokenizer_for_policy(Local(), other)
