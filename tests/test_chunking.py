"""Chunking: no text lost, bounded windows cut at word boundaries, versioned policy, reported cap."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holocron.chunking import (
    CHARS_PER_TOKEN_DENSE,
    ChunkingResult,
    ChunkPolicy,
    ChunkSpan,
    chunk_text,
)
from holocron.chunking.policy import SPECIAL_TOKENS

# ---------------------------------------------------------------------------------------------------------
# Invariants, checked on every result


def _is_word_end(text: str, p: int) -> bool:
    return p > 0 and not text[p - 1].isspace() and (p == len(text) or text[p].isspace())


def _is_word_start(text: str, p: int) -> bool:
    return p < len(text) and not text[p].isspace() and (p == 0 or text[p - 1].isspace())


def _hard_split(span: ChunkSpan, text: str) -> bool:
    """A window cut inside a single word longer than the window."""
    return span.end < len(text) and not any(c.isspace() for c in text[span.start : span.end + 1])


def assert_invariants(text: str, policy: ChunkPolicy) -> ChunkingResult:
    """Check every guarantee of chunk_text on `text`; returns the capped result."""
    result = chunk_text(text, policy)
    everything = chunk_text(text, dataclasses.replace(policy, max_chunks=10**9))
    windows = everything.spans
    n = len(text)

    # Cap accounting: the kept spans are the first max_chunks of all windows, and the rest are counted.
    assert everything.total_windows == len(windows) and everything.dropped == 0
    assert result.total_windows == len(windows)
    assert len(result.spans) == min(result.total_windows, policy.max_chunks)
    assert result.dropped == result.total_windows - len(result.spans)
    assert result.spans == windows[: policy.max_chunks]

    # Coverage: every non-whitespace character lies in a window; only whitespace lies between windows.
    if not windows:
        assert text.strip() == ""
        return result
    assert text[: windows[0].start].strip() == ""
    assert text[windows[-1].end :].strip() == ""
    covered = [False] * n
    for w in windows:
        covered[w.start : w.end] = [True] * (w.end - w.start)
    assert all(covered[i] or text[i].isspace() for i in range(n))

    for i, w in enumerate(windows):
        assert w.index == i
        assert 0 <= w.start < w.end <= n
        assert w.text == text[w.start : w.end]
        assert len(w.text) <= policy.chunk_size
        # No leading/trailing whitespace, hence never whitespace only.
        assert not w.text[0].isspace() and not w.text[-1].isspace()
        # Ends at a word end unless the window is one word too long for it.
        assert _is_word_end(text, w.end) or _hard_split(w, text)
        if not _hard_split(w, text):
            # ...and at the last word end the window could reach.
            reach = min(w.start + policy.chunk_size, n)
            assert not any(_is_word_end(text, p) for p in range(w.end + 1, reach + 1))

    for prev, nxt in itertools.pairwise(windows):
        # Progress, and no gap except whitespace.
        assert nxt.start > prev.start and nxt.end > prev.end
        assert nxt.start <= prev.end or text[prev.end : nxt.start].strip() == ""
        # Starts at a word start, except right where the previous window hard-split a long word.
        if _hard_split(prev, text):
            assert nxt.start == prev.end
        else:
            assert _is_word_start(text, nxt.start)
            # Overlap: at most policy.overlap, at the first word start at or after end - overlap.
            assert prev.end - nxt.start <= policy.overlap
            if nxt.start < prev.end:
                low = max(prev.end - policy.overlap, prev.start + 1)
                assert not any(_is_word_start(text, p) for p in range(low, nxt.start))
    assert windows[0].start == 0 or _is_word_start(text, windows[0].start)

    # Deterministic.
    assert chunk_text(text, policy) == result
    return result


# ---------------------------------------------------------------------------------------------------------
# Generated texts and policies

_LETTERS = st.sampled_from([*"abcxyzÉéßøжж中文日本🙂", "e\u0301", "a\u0308\u0323"])
_SEPARATORS = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \n ", "\u00a0", "\u3000", "\u2029", "\r\n"])


@st.composite
def _word(draw: st.DrawFn) -> str:
    letter = draw(_LETTERS)
    length = draw(st.one_of(st.integers(1, 12), st.integers(13, 80), st.integers(200, 700)))
    return letter * length if draw(st.booleans()) else "".join(draw(st.lists(_LETTERS, min_size=1, max_size=20)))


@st.composite
def _texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(_word(), _SEPARATORS), max_size=60))
    return "".join(parts)


@st.composite
def _policies(draw: st.DrawFn) -> ChunkPolicy:
    size = draw(st.one_of(st.integers(1, 8), st.integers(9, 120), st.integers(121, 800)))
    overlap = draw(st.integers(0, size - 1))
    return ChunkPolicy(chunk_size=size, overlap=overlap, max_chunks=draw(st.integers(1, 40)))


@settings(max_examples=400, deadline=None)
@given(text=_texts(), policy=_policies())
def test_invariants_on_generated_text(text: str, policy: ChunkPolicy) -> None:
    assert_invariants(text, policy)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), policy=_policies())
def test_invariants_on_arbitrary_unicode(text: str, policy: ChunkPolicy) -> None:
    assert_invariants(text, policy)


# ---------------------------------------------------------------------------------------------------------
# Examples


def test_text_cut_short_at_a_space_loses_nothing() -> None:
    """A window cut back to a space must not make the next window skip what the cut left out."""
    text = "x" * 1100 + " " + "y" * 1500 + " " + "z" * 900
    result = assert_invariants(text, ChunkPolicy(2000, 200))
    assert [(s.start, s.end) for s in result.spans] == [(0, 1100), (1101, 2601), (2602, 3502)]
    assert "".join(s.text for s in result.spans) == text.replace(" ", "")


def test_empty_and_whitespace_only_text_give_no_chunks() -> None:
    for text in ("", " ", "\n\n\t  \u3000"):
        result = chunk_text(text, ChunkPolicy())
        assert result == ChunkingResult(spans=[], total_windows=0, dropped=0)


def test_short_text_is_one_stripped_chunk() -> None:
    result = assert_invariants("  Hello,   world.\n", ChunkPolicy())
    assert result.spans == [ChunkSpan(index=0, start=2, end=17, text="Hello,   world.")]


@pytest.mark.parametrize(("overlap", "second_start"), [(14, 35), (13, 40), (9, 40), (8, 45), (4, 45), (3, 50), (0, 50)])
def test_overlap_starts_at_the_first_word_at_or_after_end_minus_overlap(overlap: int, second_start: int) -> None:
    text = " ".join(f"w{i:03d}" for i in range(40))  # words of 4 chars start at 0, 5, 10, ...; 199 chars
    result = assert_invariants(text, ChunkPolicy(chunk_size=50, overlap=overlap))
    assert (result.spans[0].start, result.spans[0].end) == (0, 49)
    assert result.spans[1].start == second_start  # 49 - overlap, rounded up to a word start; else touching


def test_word_longer_than_the_window_is_hard_split_with_touching_windows() -> None:
    text = "intro " + "x" * 5000 + " outro"
    result = assert_invariants(text, ChunkPolicy(2000, 200))
    assert [(s.start, s.end) for s in result.spans] == [(0, 5), (6, 2006), (2006, 4006), (4006, 5012)]


def test_hard_split_keeps_combining_marks_with_their_base() -> None:
    text = "e\u0301" * 10  # 20 code points, no whitespace
    result = assert_invariants(text, ChunkPolicy(chunk_size=5, overlap=0))
    assert all(s.text[0] == "e" for s in result.spans)
    assert "".join(s.text for s in result.spans) == text


def test_cap_drops_and_reports_windows() -> None:
    text = " ".join(["word"] * 1000)
    policy = ChunkPolicy(chunk_size=100, overlap=0, max_chunks=3)
    result = assert_invariants(text, policy)
    assert len(result.spans) == 3 and result.total_windows == 50 and result.dropped == 47
    assert result.truncated
    assert not chunk_text("short", policy).truncated


@pytest.mark.parametrize(
    ("policy", "windows"),
    [(ChunkPolicy(), 538), (ChunkPolicy.fitted_to_model(256), 1344), (ChunkPolicy(2000, 1999), 538)],
    ids=["default", "fitted-256", "overlap-1999"],
)
def test_one_megabyte_text(policy: ChunkPolicy, windows: int) -> None:
    """Every guarantee holds on a megabyte of text with words longer than a window, and the number of windows is
    the known one. How fast chunking goes is measured by ``bench/index.py`` (chunking is part of the time it
    reports outside the model), not asserted by a test."""
    text = ("lorem ipsum dolor " * 40 + "x" * 3000 + "\n\n") * 400
    text = text[:1_000_000]
    result = assert_invariants(text, policy)
    assert result.total_windows == windows
    assert result.dropped == max(0, windows - policy.max_chunks)


# ---------------------------------------------------------------------------------------------------------
# Policy


def test_version_names_everything_that_moves_boundaries() -> None:
    base = ChunkPolicy()
    assert base.version == "window-v1:2000/200"
    assert ChunkPolicy(chunk_size=1000).version != base.version
    assert ChunkPolicy(overlap=100).version != base.version
    assert dataclasses.replace(base, max_chunks=5).version == base.version  # the cap moves no boundary
    assert ChunkPolicy(chunk_size=200, overlap=20).version != ChunkPolicy(chunk_size=2002, overlap=0).version


def test_version_changes_with_the_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ChunkPolicy, "ALGORITHMS", ("window-v1", "window-v2"))
    assert ChunkPolicy(algorithm="window-v2").version == "window-v2:2000/200"
    with pytest.raises(ValueError, match="window-v1"):
        chunk_text("text", ChunkPolicy(algorithm="window-v2"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": -5, "overlap": 0}, "chunk_size"),
        ({"overlap": -1}, "overlap"),
        ({"chunk_size": 100, "overlap": 100}, "overlap"),
        ({"chunk_size": 100, "overlap": 150}, "overlap"),
        ({"max_chunks": 0}, "max_chunks"),
        ({"chunk_size": True}, "chunk_size"),
        ({"algorithm": "sentences-v9"}, "algorithm"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkPolicy(**kwargs)  # type: ignore[arg-type]


def test_to_json_reproduces_the_policy() -> None:
    policy = ChunkPolicy(1234, 56, max_chunks=7)
    data = policy.to_json()
    assert data == {
        "algorithm": "window-v1",
        "chunk_size": 1234,
        "overlap": 56,
        "max_chunks": 7,
        "version": "window-v1:1234/56",
    }
    assert ChunkPolicy.from_json(data) == policy
    with pytest.raises(ValueError, match="version"):
        ChunkPolicy.from_json({**data, "version": "window-v1:2000/200"})


def test_fitted_policy_fits_the_model_window() -> None:
    fitted = ChunkPolicy.fitted_to_model(256)
    assert fitted.chunk_size / CHARS_PER_TOKEN_DENSE <= 256 - SPECIAL_TOKENS
    assert fitted.chunk_size > 0.9 * (256 - SPECIAL_TOKENS) * CHARS_PER_TOKEN_DENSE  # and uses most of it
    assert fitted.overlap == round(fitted.chunk_size / 10)
    assert fitted.token_fit_warning(256) is None
    assert ChunkPolicy.fitted_to_model(256, max_chunks=9).max_chunks == 9


def test_unknown_or_large_model_windows_keep_the_default() -> None:
    assert ChunkPolicy.fitted_to_model(None) == ChunkPolicy(2000, 200)
    assert ChunkPolicy.fitted_to_model(8192) == ChunkPolicy(2000, 200)
    with pytest.raises(ValueError, match="max_input_tokens"):
        ChunkPolicy.fitted_to_model(2)


def test_oversized_windows_warn_loudly() -> None:
    warning = ChunkPolicy(2000, 200).token_fit_warning(256)
    assert warning is not None
    assert "2000 chars" in warning and "256 tokens" in warning and "only the start" in warning
    assert ChunkPolicy(2000, 200).token_fit_warning(None) is None
    assert ChunkPolicy(2000, 200).token_fit_warning(1024) is None


def test_chunking_does_not_load_the_model() -> None:
    code = "import sys, holocron.chunking; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
