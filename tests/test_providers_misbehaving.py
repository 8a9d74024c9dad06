"""Both HTTP providers against a deliberately misbehaving local server: retried or failed exactly as specified.

Dropped connections, timeouts, 429 (with Retry-After) and 5xx are retried with backoff; other 4xx are not; the
circuit opens after N consecutive failures and then fails without touching the network; a response with the
wrong count, wrong dimensions, NaN or a zero vector fails its batch, naming the chunk ids, and nothing is stored.
Also the pure parts: the backoff formula, Retry-After parsing, token-budget batching and model-name parsing.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from holocron.backoff import backoff_delay, parse_retry_after
from holocron.config import Settings
from holocron.embedding.base import EmbeddingError, Purpose
from holocron.embedding.batching import embed_batched, estimate_tokens, plan_batches
from holocron.embedding.catalog import parse_model_ref
from holocron.embedding.http import (
    CircuitBreaker,
    CircuitOpenError,
    ModelNotFoundError,
    ProviderRequestError,
    ProviderUnavailableError,
    RetryPolicy,
)
from holocron.embedding.ollama import OllamaProvider
from holocron.embedding.openai import OpenAIProvider
from holocron.service import Holocron
from holocron.store.embeddings import count_embeddings
from servers import Misbehaviour, fake_vector, misbehaving_server

KINDS = ["ollama", "openai"]
FAST = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_cap_s=0.05)
Provider = OllamaProvider | OpenAIProvider


@pytest.fixture()
def server() -> Iterator[tuple[str, Misbehaviour]]:
    with misbehaving_server() as running:
        yield running


def make(
    kind: str,
    url: str,
    *,
    retry: RetryPolicy = FAST,
    circuit: CircuitBreaker | None = None,
    timeout_s: float = 5.0,
    **more: object,
) -> Provider:
    """A provider on the misbehaving server with its identity already resolved (identity calls are not scripted)."""
    common: dict[str, object] = {
        "retry": retry,
        "circuit": circuit or CircuitBreaker(100, 30.0),
        "timeout_s": timeout_s,
        **more,
    }
    provider: Provider
    if kind == "ollama":
        provider = OllamaProvider("fake-embed", url, **common)  # type: ignore[arg-type]
    else:
        provider = OpenAIProvider("fake-embed", f"{url}/v1", **common)  # type: ignore[arg-type]
    provider.identity()
    return provider


TEXTS = ["first text", "second text", "third text"]


def expected(texts: list[str], dims: int = 8) -> np.ndarray:
    return np.asarray([fake_vector(t, dims) for t in texts], dtype=np.float32)


# --- retried ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_dropped_connection_is_retried(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url)
    script.set("drop")
    vectors = provider.embed(TEXTS)
    assert np.allclose(vectors, expected(TEXTS))
    assert len(script.embed_requests) == 2
    assert provider.http.retries == 1


class Sleeps:
    """A provider's ``sleep``: records each requested pause, with how many requests the server had seen by then,
    and returns at once (what a test checks is the pause asked for, not the time that went by)."""

    def __init__(self, script: Misbehaviour) -> None:
        self.script = script
        self.calls: list[tuple[float, int]] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append((seconds, len(self.script.embed_requests)))


@pytest.mark.parametrize("kind", KINDS)
def test_429_waits_for_retry_after(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    sleeps = Sleeps(script)
    provider = make(kind, url, sleep=sleeps)
    script.set("429:1")
    vectors = provider.embed(TEXTS)
    assert np.allclose(vectors, expected(TEXTS))
    assert len(script.embed_requests) == 2
    # One pause, between the two requests, of what the header said (the backoff alone is at most 50 ms).
    assert sleeps.calls == [(pytest.approx(1.0), 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_503_with_an_http_date_retry_after(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    sleeps = Sleeps(script)
    provider = make(kind, url, sleep=sleeps)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script.set(f"503:{when}")
    provider.embed(TEXTS)
    assert len(script.embed_requests) == 2
    # HTTP dates have whole seconds, and the request took a moment: between 25 and 30 of the 30 s remain (the
    # backoff alone is at most 50 ms).
    [(seconds, requests_before)] = sleeps.calls
    assert 25.0 <= seconds <= 30.0 and requests_before == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_after_beyond_the_limit_fails_at_once(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url, retry=RetryPolicy(max_retries=3, backoff_base_s=0.01, max_retry_after_s=5))
    script.set("429:3600")
    with pytest.raises(ProviderUnavailableError, match="retry after 3600s"):
        provider.embed(TEXTS)
    assert len(script.embed_requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_500_then_success(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url)
    script.set("status:500", "status:502")
    assert np.allclose(provider.embed(TEXTS), expected(TEXTS))
    assert len(script.embed_requests) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_5xx_gives_up_after_max_retries(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url)
    script.set(then="status:500")
    with pytest.raises(ProviderUnavailableError, match="gave up after 3 attempts") as raised:
        provider.embed(TEXTS)
    assert not isinstance(raised.value, CircuitOpenError)
    assert len(script.embed_requests) == 3  # one attempt and max_retries=2 retries, exactly


@pytest.mark.parametrize("kind", KINDS)
def test_slow_response_past_the_timeout_is_retried(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url, timeout_s=0.3)
    script.set("slow:1.0")
    assert np.allclose(provider.embed(TEXTS), expected(TEXTS))
    assert len(script.embed_requests) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_timeouts_every_time_fail_with_a_clear_error(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url, timeout_s=0.2, retry=RetryPolicy(max_retries=1, backoff_base_s=0.01))
    script.set(then="slow:0.6")
    with pytest.raises(ProviderUnavailableError, match=r"no answer within 0\.2s"):
        provider.embed(TEXTS)
    assert len(script.embed_requests) == 2


def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OllamaProvider("fake-embed", f"http://127.0.0.1:{port}", retry=FAST)
    with pytest.raises(ProviderUnavailableError, match=r"connection failed.*gave up after 3 attempts"):
        provider.identity()
    assert provider.http.attempts == 3


# --- not retried ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_4xx_is_not_retried(kind: str, status: int, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url)
    script.set(f"status:{status}")
    with pytest.raises(ProviderRequestError) as raised:
        provider.embed(TEXTS)
    assert raised.value.status == status
    assert f"scripted error {status}" in str(raised.value)
    assert len(script.embed_requests) == 1


def test_ollama_model_not_found_says_how_to_pull_it(server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make("ollama", url)
    script.set("notfound")
    with pytest.raises(ModelNotFoundError, match=r"ollama pull fake-embed:latest"):
        provider.embed(TEXTS)
    assert len(script.embed_requests) == 1
    missing = OllamaProvider("nomic-embed-text:v1.5", url, retry=FAST)
    with pytest.raises(ModelNotFoundError, match=r"run `ollama pull nomic-embed-text:v1.5`"):
        missing.identity()


def test_openai_model_not_found(server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make("openai", url)
    script.set("notfound")
    with pytest.raises(ModelNotFoundError, match="not served"):
        provider.embed(TEXTS)
    assert len(script.embed_requests) == 1
    with pytest.raises(ModelNotFoundError, match=r"it serves: fake-embed"):
        OpenAIProvider("text-embedding-3-small", f"{url}/v1", retry=FAST).identity()


# --- the circuit ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_circuit_opens_after_repeated_failures_and_fails_fast(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    now = [0.0]
    circuit = CircuitBreaker(failure_threshold=3, reset_after_s=30.0, clock=lambda: now[0])
    sleeps: list[float] = []
    provider = make(
        kind, url, retry=RetryPolicy(max_retries=1, backoff_base_s=0.01), circuit=circuit, sleep=sleeps.append
    )
    script.set(then="status:500")

    with pytest.raises(ProviderUnavailableError) as first:  # attempts 1 and 2: retries exhausted
        provider.embed(TEXTS)
    assert not isinstance(first.value, CircuitOpenError)
    assert len(script.embed_requests) == 2

    with pytest.raises(CircuitOpenError):  # attempt 3 is the third consecutive failure: the circuit opens
        provider.embed(TEXTS)
    assert len(script.embed_requests) == 3
    assert circuit.state == "open"

    for _ in range(5):  # open: no request reaches the server
        with pytest.raises(CircuitOpenError, match="failing fast"):
            provider.embed(TEXTS)
    assert len(script.embed_requests) == 3
    assert len(sleeps) == 1  # the one retry of the first call; failing fast never waits

    script.set(then="ok")
    now[0] = 29.9  # just before the reset time: still open
    with pytest.raises(CircuitOpenError, match="failing fast"):
        provider.embed(TEXTS)
    assert not script.embed_requests and circuit.state == "open"  # (set() cleared the record)
    now[0] = 30.0  # the reset time: half-open, one trial call goes through and closes the circuit
    assert circuit.state == "half-open"
    assert np.allclose(provider.embed(TEXTS), expected(TEXTS))
    assert circuit.state == "closed"
    assert len(script.embed_requests) == 1


def test_a_failed_trial_reopens_the_circuit() -> None:
    now = [0.0]
    circuit = CircuitBreaker(2, reset_after_s=10, clock=lambda: now[0])
    circuit.record_failure()
    assert circuit.record_failure()
    with pytest.raises(CircuitOpenError):
        circuit.before_call("x")
    now[0] = 10.0
    circuit.before_call("x")  # the trial
    with pytest.raises(CircuitOpenError):
        circuit.before_call("x")  # only one trial at a time
    assert circuit.record_failure()
    with pytest.raises(CircuitOpenError):
        circuit.before_call("x")
    now[0] = 20.0
    circuit.before_call("x")
    circuit.record_success()
    assert circuit.state == "closed"


# --- validation: nothing stored ---------------------------------------------------------------------------------


PAGE = "\n\n".join(
    f"Section {i}. The lighthouse keeper recorded the tides, the weather and passing ships in a ledger "
    f"for the harbour office, entry number {i}, with a note on the state of the lamp." * 3
    for i in range(6)
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("count:-1", "vectors for"),
        ("count:+1", "vectors for"),
        ("dims:5", "5-dimensional vectors, the space has 8"),
        ("nan", "NaN or infinite"),
        ("zero", "zero-norm"),
    ],
)
def test_a_batch_failing_validation_stores_nothing(
    kind: str, step: str, message: str, server: tuple[str, Misbehaviour], tmp_path: Path
) -> None:
    url, script = server
    provider = make(kind, url)
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "ledger.txt").write_text(PAGE)
    with Holocron(Settings(home=tmp_path / "home", embed_batch_size=64), provider=provider) as holo:
        holo.ingest([pages])
        script.set(step)
        report = holo.index()
        with holo.db.read() as tx:
            chunk_ids = [row[0] for row in tx.execute(select(holo.db.t.chunk.c.chunk_id)).all()]
            stored = count_embeddings(tx)
        assert len(chunk_ids) > 1
        assert stored == 0
        assert report.embedding.failed_batches == 1
        assert report.embedding.embeddings_written == 0
        [error] = report.embedding.errors
        assert message in error
        assert any(chunk_id in error for chunk_id in chunk_ids)  # the error names the chunks
        assert len(script.embed_requests) == 1  # a bad answer is not a transient failure: no retry

        script.set()  # the server behaves again: the same chunks are embedded on the next run
        again = holo.index()
        assert again.embedding.embeddings_written == len(chunk_ids)


# --- order and batching -----------------------------------------------------------------------------------------


def test_openai_results_are_put_back_in_index_order(server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make("openai", url)
    script.set("shuffle")
    assert np.allclose(provider.embed(TEXTS), expected(TEXTS))


@pytest.mark.parametrize("kind", KINDS)
def test_batches_by_count_and_tokens_keep_input_order(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    texts = [f"text number {i} " + "word " * (i * 7 % 50) for i in range(23)]
    provider = make(kind, url, batch_size=5, batch_tokens=120)
    script.set()
    vectors = provider.embed(texts)
    assert np.allclose(vectors, expected(texts))
    requests = script.embed_requests
    assert len(requests) > 5
    sent = [text for request in requests for text in request.body["input"]]
    assert sent == texts
    for request in requests:
        inputs = request.body["input"]
        assert len(inputs) <= 5
        assert len(inputs) == 1 or sum(estimate_tokens(inputs)) <= 120
    assert provider.stats.calls == len(requests)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_count_in_one_of_several_batches_fails_the_call(kind: str, server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make(kind, url, batch_size=2)
    script.set("ok", "count:-1")
    with pytest.raises(EmbeddingError, match=r"inputs 2\.\.3"):
        provider.embed(["a", "b", "c", "d", "e"])


@given(
    counts=st.lists(st.integers(min_value=1, max_value=400), max_size=60),
    max_items=st.integers(min_value=1, max_value=10),
    max_tokens=st.integers(min_value=1, max_value=1000),
)
def test_plan_batches_covers_every_input_once_in_order(counts: list[int], max_items: int, max_tokens: int) -> None:
    batches = plan_batches(counts, max_items=max_items, max_tokens=max_tokens)
    covered = [i for batch in batches for i in range(batch.start, batch.stop)]
    assert covered == list(range(len(counts)))
    for batch in batches:
        size = batch.stop - batch.start
        assert 1 <= size <= max_items
        assert size == 1 or sum(counts[batch]) <= max_tokens


def test_embed_batched_concatenates_in_order() -> None:
    texts = [str(i) for i in range(10)]
    calls: list[list[str]] = []

    def one(batch: list[str]) -> np.ndarray:
        calls.append(batch)
        return np.asarray([[float(t), 1.0] for t in batch], dtype=np.float32)

    result = embed_batched(texts, [1] * 10, one, max_items=3, max_tokens=100, dimensions=2)
    assert result[:, 0].tolist() == list(range(10))
    assert [len(c) for c in calls] == [3, 3, 3, 1]


# --- the secret -------------------------------------------------------------------------------------------------


def test_the_api_key_is_sent_but_never_logged_or_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = "sk-test-SECRET-0123456789"
    state = Misbehaviour(api_key=key, echo_key_in_errors=True)
    caplog.set_level(logging.DEBUG)
    with misbehaving_server(state) as (url, script):
        provider = make("openai", url, api_key=key)
        script.set("status:500")
        provider.embed(TEXTS)
        assert script.embed_requests[-1].headers["Authorization"] == f"Bearer {key}"

        wrong = OpenAIProvider("fake-embed", f"{url}/v1", api_key=key[::-1], retry=FAST)
        with pytest.raises(ProviderRequestError) as raised:
            wrong.identity()
        assert raised.value.status == 401
        assert "you sent Bearer ***" in str(raised.value)  # the server echoed it; the message masks it

    shown = [str(raised.value), repr(provider), repr(provider.http), repr(wrong), caplog.text]
    settings = Settings(home=tmp_path, openai_api_key=key)  # type: ignore[arg-type]
    shown += [repr(settings), str(settings), settings.model_dump_json()]
    for text in shown:
        assert key not in text
        assert key[::-1] not in text


# --- the pure parts ---------------------------------------------------------------------------------------------


def test_backoff_doubles_is_capped_and_jitter_stays_below_the_nominal_delay() -> None:
    rng = random.Random(7)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 10.0), (200, 10.0)]:
        for _ in range(50):
            delay = backoff_delay(attempt, base=0.5, cap=10.0, jitter=0.5, rng=rng)
            assert nominal * 0.5 <= delay <= nominal
    assert backoff_delay(3, base=1.0, cap=60.0, jitter=0.0) == 4.0
    with pytest.raises(ValueError):
        backoff_delay(0, base=1.0, cap=1.0)


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0  # in the past: retry now
    for bad in (None, "", "soon", "-1", "nan"):
        assert parse_retry_after(bad, now=now) is None


def test_retry_policy_waits_at_least_retry_after() -> None:
    policy = RetryPolicy(backoff_base_s=0.1, backoff_cap_s=1.0)
    assert policy.delay(1, 5.0) == 5.0
    assert 0.05 <= policy.delay(1, None) <= 0.1


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("nomic-embed-text", ("nomic-embed-text", "latest")),
        ("nomic-embed-text:v1.5", ("nomic-embed-text", "v1.5")),
        ("nomic-embed-text:", ("nomic-embed-text", "latest")),
        ("library/all-minilm:33m", ("library/all-minilm", "33m")),
        ("registry.local:5000/team/model", ("registry.local:5000/team/model", "latest")),
        ("registry.local:5000/team/model:q4", ("registry.local:5000/team/model", "q4")),
        ("sentence-transformers/all-MiniLM-L6-v2", ("sentence-transformers/all-MiniLM-L6-v2", "latest")),
    ],
)
def test_model_tag_parsing(ref: str, parsed: tuple[str, str]) -> None:
    assert parse_model_ref(ref) == parsed


def test_query_purpose_reaches_the_server_with_its_prefix(server: tuple[str, Misbehaviour]) -> None:
    url, script = server
    provider = make("ollama", url)
    provider.preprocess = type(provider.preprocess)(document_prefix="passage: ", query_prefix="query: ")
    script.set()
    provider.embed(["a"], Purpose.QUERY)
    provider.embed(["b"], Purpose.DOCUMENT)
    assert [r.body["input"] for r in script.embed_requests] == [["query: a"], ["passage: b"]]
