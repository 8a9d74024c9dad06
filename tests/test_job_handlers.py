"""The five handlers on the real model (a handful of short pages), and the drift metrics on their own.

What is checked: ``ingest`` + a worker indexes everything with no other step; every chunk, embedding, run and
artifact records its lineage; reruns call the model for nothing; re-embedding fills a second space while the
first keeps serving; the retrieval smoke test logs its retrievals; the drift test passes for an unchanged
model and catches a silently changed one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from sqlalchemy import func, select

from datafiles import write_pages
from holocron.config import Settings
from holocron.embedding.base import EmbeddingError, ModelIdentity, ProviderStats, Purpose
from holocron.embedding.local import LocalProvider
from holocron.jobs import JobQueue, JobStatus, JobType, Worker, WorkerOptions, WorkerReport, drift
from holocron.jobs.worker import fit_torch_threads, torch_threads_for_process
from holocron.service import Holocron
from holocron.vectors import Matrix

PAGES = {
    "kessel.md": "# Kessel\n\nKessel is a planet known for its spice mines. The Kessel Run is a hyperspace route "
    "that smugglers boast about; a fast ship makes it in under twelve parsecs.\n",
    "hoth.md": "# Hoth\n\nHoth is an ice planet at the edge of a remote system. Tauntauns and wampas live in its "
    "snow fields, and a hidden rebel base once stood in its glaciers.\n",
    "bread.md": "# Sourdough\n\nSourdough bread rises with a starter of wild yeast and lactic acid bacteria. "
    "The long fermentation gives the crumb its sour taste and open holes.\n",
    "tea.md": "# Green tea\n\nGreen tea is made from leaves that are steamed or pan-fired soon after picking, "
    "so they do not oxidise. Brew it below boiling, or it turns bitter.\n",
}


class TaggedProvider:
    """The same model under another identity: a second space whose vectors equal the first's."""

    def __init__(self, inner: LocalProvider, identity: ModelIdentity) -> None:
        self.inner = inner
        self._identity = identity
        self.stats = ProviderStats()

    def identity(self) -> ModelIdentity:
        return self._identity

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        self.stats.calls += 1
        self.stats.texts += len(texts)
        return self.inner.embed(texts, purpose)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def close(self) -> None:
        return None


class SilentlyChangedProvider(TaggedProvider):
    """Reports the old identity but returns different vectors: what a replaced model behind a tag does."""

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        vectors = super().embed(texts, purpose)
        noise = np.random.default_rng(len(texts)).normal(0, 0.08, vectors.shape).astype(np.float32)
        return vectors + noise


class FlakyProvider(TaggedProvider):
    """Fails its first call, like a model server that restarts."""

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        if self.stats.calls == 0:
            self.stats.calls += 1
            raise EmbeddingError("connection reset by the model server")
        return super().embed(texts, purpose)


@pytest.fixture(scope="session")
def provider() -> LocalProvider:
    return LocalProvider()


@pytest.fixture()
def pages(tmp_path: Path) -> Path:
    return write_pages(tmp_path / "pages", PAGES)


def make(db_url: str, tmp_path: Path, provider: Any) -> Holocron:
    settings = Settings(database_url=db_url, home=tmp_path / "home", embed_batch_size=2)  # type: ignore[call-arg]
    return Holocron(settings, provider=provider)


@pytest.fixture()
def holo(db_url: str, tmp_path: Path, provider: LocalProvider) -> Iterator[Holocron]:
    with make(db_url, tmp_path, provider) as instance:
        yield instance


def drain(holo: Holocron, queue: JobQueue | None = None) -> WorkerReport:
    return Worker(holo, WorkerOptions(worker_id="w", drain=True), queue=queue).run()


def rows(holo: Holocron, table: Any) -> list[Any]:
    with holo.db.read() as tx:
        return list(tx.execute(select(table)).all())


def source_ids(holo: Holocron) -> dict[str, str]:
    """File name -> source id, for the pages."""
    ids = [r.source_id for r in rows(holo, holo.db.t.source_registry)]
    return {source_id.rsplit("/", 1)[-1]: source_id for source_id in ids}


def run_types(holo: Holocron) -> dict[str, str]:
    return {r.run_id: r.run_type for r in rows(holo, holo.db.t.run)}


def assert_artifacts_match(holo: Holocron) -> list[Any]:
    artifacts = rows(holo, holo.db.t.run_artifact)
    for artifact in artifacts:
        path = Path(unquote(urlparse(artifact.uri).path))
        assert path.parent.parent.name == artifact.run_id and path.parent.name == "artifacts"
        assert path.parent.parent.parent.name == "vector_runs"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact.content_sha256 and len(data) == artifact.byte_count
    return artifacts


# --- the pipeline through the queue ----------------------------------------------------------------------------


@pytest.mark.model
def test_ingest_then_a_worker_indexes_everything_with_lineage(
    holo: Holocron, pages: Path, provider: LocalProvider
) -> None:
    report = holo.ingest([pages], enqueue=True)
    assert len(report.registered.new) == 4 and len(report.enqueued) == 1
    worker = drain(holo)
    assert worker.failed == worker.deadlettered == 0 and worker.succeeded == worker.claimed >= 3

    queue = JobQueue(holo.db)
    jobs = queue.list(limit=100)
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
    assert {j.job_type for j in jobs} == {JobType.CHUNK_SOURCE, JobType.EMBED_CHUNKS}
    chunks, embeddings = rows(holo, holo.db.t.chunk), rows(holo, holo.db.t.embedding)
    assert len(chunks) >= 4 and sorted(e.chunk_id for e in embeddings) == sorted(c.chunk_id for c in chunks)

    # Lineage: each row names the run that made it; each run its job, worker and model; artifacts match.
    types = run_types(holo)
    assert {types[c.run_id] for c in chunks} == {"CHUNK_SOURCE"}
    assert {types[e.run_id] for e in embeddings} == {"EMBED_CHUNKS"}
    for run in rows(holo, holo.db.t.run):
        assert run.status == "SUCCEEDED" and run.worker_id == "w" and run.job_id is not None
        assert (
            run.model_name == provider.identity().model_name and run.embedding_space_id == holo.space.embedding_space_id
        )
        assert run.metrics_json["job_seconds"] >= 0
    artifacts = assert_artifacts_match(holo)
    assert {a.artifact_type for a in artifacts} == {"chunk_manifest", "embedding_manifest"}
    assert len(artifacts) == len(jobs)
    assert "spice mines" in holo.search("Where are the spice mines?", k=1).hits[0].text

    # Everything again, three ways: nothing new is written and the model is not called.
    calls = provider.stats.calls
    assert holo.ingest([pages], enqueue=True).enqueued == []
    again = queue.enqueue(
        JobType.EMBED_CHUNKS, {"space_id": holo.space.embedding_space_id, "chunk_ids": [c.chunk_id for c in chunks]}
    )
    assert again.created  # the earlier embedding jobs succeeded, which freed their keys
    rechunk = holo.enqueue_indexing()
    assert rechunk == []  # nothing is stale
    rechunk = holo.enqueue_indexing([c.source_id for c in chunks])
    assert [r.created for r in rechunk] == [True]
    drain(holo)
    assert queue.get(again.job.job_id).result["model_calls"] == 0  # type: ignore[union-attr]
    chunk_job = queue.get(rechunk[0].job.job_id)
    assert chunk_job is not None and chunk_job.result is not None
    assert chunk_job.result["sources_skipped"] == 4 and chunk_job.result["embed_job_ids"] == []
    assert holo.index().model_calls == 0  # the single-process path finds nothing left either
    assert provider.stats.calls == calls
    assert len(rows(holo, holo.db.t.embedding)) == len(embeddings)


@pytest.mark.model
def test_an_embedding_error_is_retried_and_writes_no_duplicates(
    db_url: str, tmp_path: Path, pages: Path, provider: LocalProvider
) -> None:
    flaky = FlakyProvider(provider, provider.identity())
    with make(db_url, tmp_path, flaky) as holo:
        holo.ingest([pages / "hoth.md"], enqueue=True)
        queue = JobQueue(holo.db, retry_base_s=0)
        report = drain(holo, queue)
        assert report.failed == 1 and report.deadlettered == 0
        jobs = {j.job_type: j for j in queue.list()}
        embed = jobs[JobType.EMBED_CHUNKS]
        assert embed.status is JobStatus.SUCCEEDED and embed.attempt_count == 2
        assert embed.last_error is not None and "connection reset" in embed.last_error
        with holo.db.read() as tx:
            e = tx.t.embedding
            per_chunk = tx.execute(select(e.c.chunk_id, func.count()).group_by(e.c.chunk_id)).all()
        assert per_chunk and {n for _, n in per_chunk} == {1}


# --- settings travel with the job -----------------------------------------------------------------------------

LONG_PAGES = {
    f"long-{n}.md": f"# Page {n}\n\n"
    + " ".join(f"Sentence {i} of page {n} tells of the spice mines and the ice fields." for i in range(80))
    for n in range(2)
}


def make_with(db_url: str, home: Path, provider: Any, **settings: Any) -> Holocron:
    return Holocron(Settings(database_url=db_url, home=home, **settings), provider=provider)  # type: ignore[call-arg]


@pytest.mark.model
def test_chunk_source_chunks_with_the_policy_it_was_queued_with(
    db_url: str, tmp_path: Path, provider: LocalProvider
) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    for name, text in LONG_PAGES.items():
        (folder / name).write_text(text)
    with make_with(db_url, tmp_path / "a", provider, chunk_size=400, chunk_overlap=40) as enqueuer:
        report = enqueuer.ingest([folder], enqueue=True)
        policy_a = enqueuer.chunk_policy()
    assert len(report.enqueued) == 1
    queued = JobQueue(enqueuer.db).get(report.enqueued[0])
    assert queued is not None and queued.input["chunk_policy"] == policy_a.to_json()

    # A worker configured otherwise chunks exactly as the enqueuer asked, and never re-chunks it its own way.
    with make_with(db_url, tmp_path / "b", provider, chunk_size=900, chunk_overlap=90) as worker:
        policy_b = worker.chunk_policy()
        assert policy_b.version != policy_a.version
        options = WorkerOptions(worker_id="w", types=[JobType.CHUNK_SOURCE], drain=True)
        assert Worker(worker, options).run().succeeded == 1
        chunks = rows(worker, worker.db.t.chunk)
        assert chunks and {c.policy_version for c in chunks} == {policy_a.version}
        registry = rows(worker, worker.db.t.source_registry)
        assert {r.chunk_policy_version for r in registry} == {policy_a.version}
        manifests = [a for a in assert_artifacts_match(worker) if a.artifact_type == "chunk_manifest"]
        assert [json.loads(Path(unquote(urlparse(a.uri).path)).read_text())["policy"] for a in manifests] == [
            policy_a.to_json()
        ]

        # A payload from before policies travelled (none in it) falls back to the worker's own.
        old = JobQueue(worker.db).enqueue(
            JobType.CHUNK_SOURCE,
            {"space_id": worker.space.embedding_space_id, "source_ids": [r.source_id for r in registry]},
        )
        assert "chunk_policy" not in {k for k, v in old.job.input.items() if v is not None}
        assert Worker(worker, options).run().succeeded == 1
        assert {c.policy_version for c in rows(worker, worker.db.t.chunk)} == {policy_b.version}


@pytest.mark.model
def test_jobs_enqueue_fixes_the_configured_policy_in_a_chunk_source_payload(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from holocron.cli.app import app

    for name in [n for n in os.environ if n.startswith("HOLOCRON_") and n != "HOLOCRON_TEST_PG_URL"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOLOCRON_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("HOLOCRON_CHUNK_SIZE", "500")
    monkeypatch.setenv("HOLOCRON_CHUNK_OVERLAP", "50")
    home = tmp_path / "home"
    args = ["--database-url", db_url, "--home", str(home), "jobs", "enqueue", "CHUNK_SOURCE", "--json"]
    done = CliRunner().invoke(app, [*args, "--payload", json.dumps({"source_ids": ["files:a.md"]})])
    assert done.exit_code == 0, done.output
    queued = json.loads(done.stdout)["job"]["input"]
    assert queued["chunk_policy"] == {
        "algorithm": "window-v1",
        "chunk_size": 500,
        "overlap": 50,
        "max_chunks": 1000,
        "version": "window-v1:500/50",
    }


def test_a_chunk_policy_in_a_payload_is_checked_when_queued(holo: Holocron) -> None:
    from holocron.jobs import InvalidPayloadError

    payload = {"space_id": 1, "source_ids": ["files:a.md"]}
    queue = JobQueue(holo.db)
    bad = {"algorithm": "window-v1", "chunk_size": 100, "overlap": 100, "max_chunks": 10}
    with pytest.raises(InvalidPayloadError, match="chunk_policy"):
        queue.enqueue(JobType.CHUNK_SOURCE, {**payload, "chunk_policy": bad})
    lying = {"algorithm": "window-v1", "chunk_size": 100, "overlap": 10, "max_chunks": 10, "version": "window-v1:5/1"}
    with pytest.raises(InvalidPayloadError, match="version"):
        queue.enqueue(JobType.CHUNK_SOURCE, {**payload, "chunk_policy": lying})


@pytest.mark.model
def test_retrieve_test_searches_with_the_workers_settings_and_matches_ids_exactly(
    db_url: str, tmp_path: Path, holo: Holocron, pages: Path, provider: LocalProvider
) -> None:
    holo.ingest([pages])
    holo.index()
    space = holo.space.embedding_space_id
    kessel = source_ids(holo)["kessel.md"]
    query = "Where are the spice mines?"
    queue = JobQueue(holo.db)
    suffix = queue.enqueue(
        JobType.RETRIEVE_TEST, {"space_id": space, "queries": [query], "expect": {query: "kessel.md"}}
    )
    exact = queue.enqueue(JobType.RETRIEVE_TEST, {"space_id": space, "queries": [query], "expect": {query: kessel}})
    with make_with(db_url, tmp_path / "keyword", provider, search_mode="keyword", rrf_k=7) as worker:
        assert Worker(worker, WorkerOptions(worker_id="w", drain=True)).run().succeeded == 2
    by_suffix, by_id = queue.get(suffix.job.job_id), queue.get(exact.job.job_id)
    assert by_suffix is not None and by_suffix.result is not None and by_id is not None and by_id.result is not None
    assert by_suffix.result["expectations_met"] == 0 and by_suffix.result["passed"] is False  # a suffix is no id
    assert by_id.result["expectations_met"] == 1 and by_id.result["passed"] is True
    retrievals = rows(holo, holo.db.t.retrieval)
    assert len(retrievals) == 2 and {r.mode for r in retrievals} == {"keyword"}  # the worker's search mode


# --- torch threads ---------------------------------------------------------------------------------------------


def test_a_worker_sets_torch_threads_once_for_the_process(db_url: str, tmp_path: Path) -> None:
    local = LocalProvider()  # not loaded: the threads apply when it loads
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        with make(db_url, tmp_path, local) as instance:
            Worker(instance, WorkerOptions(worker_id="w", drain=True, concurrency=2)).run()
        assert local.threads == torch_threads_for_process() == len(os.sched_getaffinity(0))
        if torch is not None:  # a model loaded earlier in this process: set at once
            assert torch.get_num_threads() == torch_threads_for_process()
        assert fit_torch_threads(object()) is None  # not a local model: nothing to set
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)


# --- re-embedding, retrieval smoke test and drift --------------------------------------------------------------


@pytest.mark.model
def test_reembed_fills_a_second_space_and_drift_between_them_passes(
    db_url: str, tmp_path: Path, holo: Holocron, pages: Path, provider: LocalProvider
) -> None:
    holo.ingest([pages])
    holo.index()
    old = holo.space
    queries = ["Where are the spice mines?", "How does sourdough rise?"]
    ids = source_ids(holo)
    expect = {queries[0]: ids["kessel.md"], queries[1]: ids["bread.md"]}
    queue = JobQueue(holo.db)
    smoke = queue.enqueue(
        JobType.RETRIEVE_TEST, {"space_id": old.embedding_space_id, "queries": queries, "k": 3, "expect": expect}
    ).job
    drain(holo)
    result = queue.get(smoke.job_id)
    assert result is not None and result.result is not None
    assert result.result["passed"] and result.result["expectations_met"] == 2
    retrievals = rows(holo, holo.db.t.retrieval)
    assert len(retrievals) == 2 and {r.run_id for r in retrievals} == {result.result["run_id"]}

    copy = TaggedProvider(provider, dataclasses.replace(provider.identity(), model_tag="copy"))
    with make(db_url, tmp_path, copy) as new_holo:
        new = new_holo.space
        assert new.embedding_space_id != old.embedding_space_id
        job = queue.enqueue(
            JobType.REEMBED_SPACE,
            {"source_space_id": old.embedding_space_id, "target_space_id": new.embedding_space_id, "page_size": 2},
        ).job
        drain(new_holo)
        reembed = queue.get(job.job_id)
        assert reembed is not None and reembed.status is JobStatus.SUCCEEDED and reembed.result is not None
        total = reembed.result["chunks_total"]
        assert reembed.result["complete"] and reembed.result["covered"] == total == len(rows(holo, holo.db.t.chunk))
        assert holo.search(queries[0], k=1).hits[0].source_id.endswith("kessel.md")  # the old space still serves

        test = queue.enqueue(
            JobType.DRIFT_TEST,
            {
                "space_id": new.embedding_space_id,
                "baseline_space_id": old.embedding_space_id,
                "queries": queries,
                "k": 3,
            },
        ).job
        drain(new_holo)
        finished = queue.get(test.job_id)
        assert finished is not None and finished.result is not None, finished
        report = finished.result
        assert report["passed"] and report["mode"] == "spaces" and report["chunks_compared"] == total
        assert report["min_cosine"] > 0.9999 and report["mean_jaccard"] == 1.0 and report["queries_compared"] == 2
        with holo.db.read() as tx:
            run = tx.execute(select(tx.t.run).where(tx.t.run.c.run_id == report["run_id"])).one()
        assert run.metrics_json["passed"] is True and run.metrics_json["mean_spearman"] == 1.0
        types = {a.artifact_type for a in assert_artifacts_match(holo) if a.run_id == report["run_id"]}
        assert types == {"drift_report"}


@pytest.mark.model
def test_drift_against_itself_passes_and_catches_a_silently_changed_model(
    db_url: str, tmp_path: Path, holo: Holocron, pages: Path, provider: LocalProvider
) -> None:
    holo.ingest([pages])
    holo.index()
    space = holo.space.embedding_space_id
    payload = {"space_id": space, "queries": ["ice planet", "bitter tea"], "k": 2, "fail_on_drift": True}
    queue = JobQueue(holo.db)
    same = queue.enqueue(JobType.DRIFT_TEST, payload).job
    drain(holo)
    result = queue.get(same.job_id)
    assert result is not None and result.status is JobStatus.SUCCEEDED and result.result is not None
    assert result.result["mode"] == "reembed" and result.result["min_cosine"] > 0.999

    changed = SilentlyChangedProvider(provider, provider.identity())
    with make(db_url, tmp_path, changed) as silent:
        assert silent.space.embedding_space_id == space  # same identity: nothing else would notice
        job = queue.enqueue(JobType.DRIFT_TEST, payload).job
        drain(silent)
    caught = queue.get(job.job_id)
    assert caught is not None and caught.status is JobStatus.DEADLETTER and caught.attempt_count == 1
    assert caught.last_error is not None and "drift test failed: minimum cosine" in caught.last_error
    with holo.db.read() as tx:
        run = tx.execute(select(tx.t.run).where(tx.t.run.c.job_id == job.job_id)).one()
    assert run.status == "FAILED" and run.metrics_json["passed"] is False
    assert run.metrics_json["min_cosine"] < 0.99
    assert any(a.run_id == run.run_id and a.artifact_type == "drift_report" for a in assert_artifacts_match(holo))


# --- drift metrics, pure ---------------------------------------------------------------------------------------


def test_paired_cosines() -> None:
    old = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    new = np.array([[2, 0], [0, -1], [1, 0], [1, 0]], dtype=np.float32)
    assert drift.paired_cosines(old, new) == pytest.approx([1.0, -1.0, 2**-0.5, 0.0])
    summary = drift.summarize_cosines(drift.paired_cosines(old, new))
    assert summary.n == 4 and summary.minimum == pytest.approx(-1.0)
    assert drift.summarize_cosines([]).mean is None
    with pytest.raises(ValueError, match="shapes differ"):
        drift.paired_cosines(old, new[:2])


def test_rank_overlap_metrics() -> None:
    assert drift.jaccard(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert drift.jaccard(["a", "b"], ["c", "d"]) == 0.0
    assert drift.jaccard(["a", "b", "c"], ["b", "c", "d"]) == pytest.approx(0.5)
    assert drift.jaccard([], []) == 1.0
    assert drift.spearman(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert drift.spearman(["a", "b", "c"], ["c", "b", "a"]) == pytest.approx(-1.0)
    assert drift.kendall(["a", "b", "c"], ["c", "b", "a"]) == pytest.approx(-1.0)
    assert 0 < drift.spearman(["a", "b", "c", "d"], ["a", "b", "d", "c"]) < 1
    assert drift.kendall(["a"], ["b"]) <= 0  # one item each, different: no agreement


def test_top_k_is_deterministic_on_ties() -> None:
    documents = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert drift.top_k(np.array([[1, 0]]), documents, 2) == [[0, 1]]
    assert drift.top_k(np.array([[0, 1]]), documents, 5) == [[2, 0, 1]]
    assert drift.top_k(np.array([[0, 1]]), np.zeros((0, 2)), 3) == [[]]


def test_verdict_names_each_missed_threshold() -> None:
    cosines = drift.CosineSummary(n=10, mean=0.95, minimum=0.5, p01=0.5)
    rankings = drift.RankingSummary(n=2, mean_jaccard=0.5, min_jaccard=0.2, mean_spearman=0.1, mean_kendall=0.1)
    failures = drift.verdict(cosines, rankings, drift.Thresholds(0.9, 0.99, 0.8))
    assert [f.split(" ")[0] + " " + f.split(" ")[1] for f in failures] == [
        "minimum cosine",
        "mean cosine",
        "mean top-k",
    ]
    assert drift.verdict(cosines, rankings, drift.Thresholds()) == []
    empty = drift.RankingSummary(0, None, None, None, None)
    assert drift.verdict(drift.summarize_cosines([]), empty, drift.Thresholds(0.9, 0.9, 0.9)) == []


# --- progress survives a kill ----------------------------------------------------------------------------------


class KilledMidJob(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (not an Exception, so no retry logic)."""


class DiesOnCall(TaggedProvider):
    """Answers ``calls_before_death`` model calls, then the process 'dies' in the next one."""

    def __init__(self, inner: LocalProvider, calls_before_death: int) -> None:
        super().__init__(inner, inner.identity())
        self.calls_before_death = calls_before_death

    def embed(self, texts: Sequence[str], purpose: Purpose = Purpose.DOCUMENT) -> Matrix:
        if self.stats.calls == self.calls_before_death:
            raise KilledMidJob
        return super().embed(texts, purpose)


def test_a_killed_embed_job_keeps_every_finished_model_call(
    db_url: str, tmp_path: Path, provider: LocalProvider
) -> None:
    from holocron.indexer import chunk_sources
    from holocron.jobs.handlers import COMMIT_EVERY_CHUNKS

    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(40):
        (folder / f"note{number:02}.txt").write_text(f"Note {number}: the {number}th planet has {number} moons.")
    dying = DiesOnCall(provider, calls_before_death=2)
    with make(db_url, tmp_path, dying) as holo:
        holo.ingest([folder])
        chunk_sources(holo.db, holo.chunk_policy())
        chunk_ids = [r.chunk_id for r in rows(holo, holo.db.t.chunk)]
        assert len(chunk_ids) == 40
        space_id = holo.space.embedding_space_id
        holo.jobs.enqueue(JobType.EMBED_CHUNKS, {"space_id": space_id, "chunk_ids": chunk_ids, "batch_size": 64})
        with pytest.raises(KilledMidJob):
            drain(holo)
        # Two model calls finished before the "kill": both are committed, not lost with the job.
        assert len(rows(holo, holo.db.t.embedding)) == 2 * COMMIT_EVERY_CHUNKS
    survivor = TaggedProvider(provider, provider.identity())
    with make(db_url, tmp_path, survivor) as holo:
        assert drain(holo).succeeded == 1
        assert len(rows(holo, holo.db.t.embedding)) == 40
        assert survivor.stats.calls == 1  # only the 8 chunks that were left
