"""The LLM interrogation runtime on both engines: enqueue -> claim -> evidence -> prompt -> model -> validation ->
one transaction of run, artifacts, run-evidence link, parsed output and derived rows.

The model here is a local HTTP server speaking Ollama's and OpenAI's chat APIs with scripted answers (tests on
the real local model are in ``test_llm_local.py``); the pages, their chunks and their embeddings are real.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from chat_servers import ChatScript, scripted_chat_server
from datafiles import data_file
from holocron.chat.base import ChatOptions
from holocron.chat.ollama import OllamaChatProvider
from holocron.chat.openai import OpenAIChatProvider
from holocron.config import Settings
from holocron.httpclient import RetryPolicy
from holocron.jobs.models import InvalidPayloadError, JobStatus
from holocron.jobs.worker import Worker, WorkerOptions, WorkerReport
from holocron.service import Holocron
from servers import local_provider

pytestmark = pytest.mark.model

FAST = RetryPolicy(max_retries=1, backoff_base_s=0.01, backoff_cap_s=0.02)
CLASSIFIED = '{"primary_type": "fictional_character", "confidence": 87}'
SUCCESS_ARTIFACTS = {"request_json", "response_json", "evidence_bundle", "prompt_text", "parsed_output", "raw_response"}
FAILURE_ARTIFACTS = {"request_json", "response_json", "evidence_bundle", "prompt_text", "raw_response"} | {
    "invalid_json_response",
    "error_manifest",
}


@dataclass
class World:
    holo: Holocron
    script: ChatScript
    url: str
    pages: Path

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.script.chat_requests]


def pages_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(data_file("wiki-html/trafilatura__stardewvalleywiki.com.penny.html"), folder / "penny.html")
    shutil.copy(data_file("openalex/papers__work.json"), folder / "work.json")
    return folder


def make_holo(db_url: str, home: Path, provider: Any, **settings: Any) -> Holocron:
    values: dict[str, Any] = {
        "database_url": db_url,
        "home": home,
        "embed_batch_size": 32,
        "chat_provider": "ollama",
        "chat_model": "fake-chat",
        "llm_retry_backoff_s": 0.0,
        **settings,
    }
    return Holocron(Settings(**values), provider=local_provider(), chat_provider=provider)


@pytest.fixture()
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """Two real pages indexed, and a chat server answering a classification unless told otherwise."""
    pages = pages_folder(tmp_path)
    with scripted_chat_server(ChatScript(model="fake-chat", answer=CLASSIFIED)) as (url, script):
        provider = OllamaChatProvider("fake-chat", url, retry=FAST, timeout_s=5)
        with make_holo(db_url, tmp_path / "home", provider) as holo:
            holo.ingest([pages])
            assert not holo.index().chunking.errors
            yield World(holo, script, url, pages)


def drain(holo: Holocron, **options: Any) -> WorkerReport:
    """One worker serving the LLM queue until nothing is ready."""
    return Worker(holo, WorkerOptions(worker_id="w1", drain=True, **options), lanes=[holo.llm_lane()]).run()


def make_ready(holo: Holocron) -> None:
    """Jobs waiting out their retry backoff: ready now (the attempt count is kept)."""
    j = holo.db.t.llm_job
    with holo.db.write() as tx:
        tx.execute(
            update(j)
            .where(j.c.status == JobStatus.FAILED.value)
            .values(available_utc=datetime.now(UTC) - timedelta(seconds=1))
        )


def source_id_of(holo: Holocron, name: str) -> str:
    s = holo.db.t.source_registry
    with holo.db.read() as tx:
        return str(tx.execute(select(s.c.source_id).where(s.c.source_id.like(f"%{name}"))).scalar_one())


def table_count(holo: Holocron, name: str) -> int:
    with holo.db.read() as tx:
        return int(tx.execute(select(func.count()).select_from(getattr(holo.db.t, name))).scalar_one())


# --- answers, artifacts, lineage ---------------------------------------------------------------------------------


def test_an_answer_writes_its_run_every_artifact_its_lineage_and_the_page_row(world: World) -> None:
    holo = world.holo
    enqueued = holo.llm_enqueue("page_classification", all_sources=True)
    assert len(enqueued) == 2 and all(e.created for e in enqueued)
    report = drain(holo)
    assert (report.succeeded, report.failed, report.deadlettered) == (2, 0, 0)

    runs = holo.llm_runs().items
    assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCEEDED"}
    for listed in runs:
        run = holo.llm_run(listed["run_id"])
        assert run is not None and run["parsed_output"] == {"primary_type": "fictional_character", "confidence": 87}
        assert run["model_name"] == "fake-chat" and run["model_digest"] == "sha256:" + "cd" * 32
        metrics = run["metrics_json"]
        assert metrics["prompt_eval_count"] == 7 and metrics["eval_count"] == 5 and metrics["valid_on_attempt"] == 1
        assert metrics["model_seconds"] > 0 and metrics["outside_model_seconds"] >= 0

        # Every artifact is in the database and in the lake, with the file's own sha256.
        artifacts = holo.llm_artifacts(run["run_id"])
        assert {a["artifact_type"] for a in artifacts} == SUCCESS_ARTIFACTS
        for artifact in artifacts:
            path = holo.settings.resolved_lake_dir / artifact["content_ref"]
            assert path.is_relative_to(holo.settings.resolved_lake_dir / "llm_runs" / run["run_id"] / "artifacts")
            data = path.read_bytes()
            assert (
                hashlib.sha256(data).hexdigest() == artifact["content_sha256"] and len(data) == artifact["byte_count"]
            )
        by_type = {a["artifact_type"]: a["content_json"] for a in artifacts}
        assert by_type["request_json"]["schema"]["properties"]["primary_type"]["enum"]
        assert by_type["raw_response"] == CLASSIFIED

        # Lineage: the answer -> its run's bundle -> the chunks of the page it was asked about.
        source_id = listed["input_json"]["source_id"]
        with holo.db.read() as tx:
            c = tx.t.chunk
            page_chunks = set(tx.execute(select(c.c.chunk_id).where(c.c.source_id == source_id)).scalars())
        assert run["evidence"] and all(item["chunk_exists"] for item in run["evidence"])
        assert {item["chunk_id"] for item in run["evidence"]} <= page_chunks
        assert {item["source_id"] for item in run["evidence"]} == {source_id}
        bundle_ids = {item["evidence_id"] for item in by_type["evidence_bundle"]["items"]}
        assert bundle_ids == {item["evidence_id"] for item in run["evidence"]}

    # What the model was sent: the schema as Ollama's `format`, the evidence in the prompt, the options.
    sent = world.chat_requests[0]
    assert sent["format"]["properties"]["confidence"] and sent["options"]["num_predict"] == 48
    assert "Evidence:" in sent["messages"][1]["content"] and sent["stream"] is False

    pages = holo.source_pages()
    assert {p["page_id"] for p in pages} == {r["input_json"]["source_id"] for r in runs}
    assert all(p["primary_type"] == "fictional_character" and p["confidence"] == pytest.approx(0.87) for p in pages)
    assert not any(p["stale"] for p in pages)
    assert holo.llm_jobs.count(statuses=[JobStatus.SUCCEEDED]) == 2


def test_a_source_edit_marks_its_answers_stale_and_refresh_asks_exactly_those_once(world: World) -> None:
    holo = world.holo
    holo.llm_enqueue("page_classification", all_sources=True)
    assert drain(holo).succeeded == 2
    penny = source_id_of(holo, "penny.html")

    page = world.pages / "penny.html"
    page.write_text(page.read_text(encoding="utf-8").replace("Penny", "Penelope"), encoding="utf-8")
    holo.ingest([world.pages])
    assert not holo.index().chunking.errors

    stale = holo.llm_runs(stale=True).items
    assert [r["input_json"]["source_id"] for r in stale] == [penny]
    assert {p["page_id"]: p["stale"] for p in holo.source_pages()}[penny] is True

    first = holo.llm_refresh()
    again = holo.llm_refresh()
    assert [e.job.parsed_input().source_id for e in first] == [penny] and first[0].created
    assert [e.job.job_id for e in again] == [first[0].job.job_id] and not again[0].created
    assert drain(holo).succeeded == 1
    assert holo.llm_refresh() == []  # the current answer is fresh; the old one stays on record, stale
    assert [r["run_id"] for r in holo.llm_runs(stale=True).items] == [stale[0]["run_id"]]
    assert not any(p["stale"] for p in holo.source_pages())
    # The new answer's evidence is the page's current chunks.
    current = holo.llm_runs(interrogation="page_classification", status="SUCCEEDED", limit=1).items[0]
    run = holo.llm_run(current["run_id"])
    assert run is not None and all(item["chunk_exists"] for item in run["evidence"])


# --- invalid answers -----------------------------------------------------------------------------------------------


def test_invalid_answers_are_fed_back_then_dead_letter_with_the_error_artifacts(world: World) -> None:
    holo = world.holo
    penny = source_id_of(holo, "penny.html")
    [enqueued] = holo.llm_enqueue("page_classification", source_ids=[penny])
    world.script.set("text", 'say:{"primary_type": "robot", "confidence": 50}', "empty")
    report = drain(holo)
    assert (report.succeeded, report.deadlettered) == (0, 1)

    job = holo.llm_jobs.get(enqueued.job.job_id)
    assert (
        job is not None
        and job.status is JobStatus.DEADLETTER
        and "no valid answer in 3 attempts" in str(job.last_error)
    )
    requests = world.chat_requests
    assert len(requests) == 3
    assert "not JSON" in requests[1]["messages"][-1]["content"]
    assert "does not match the schema" in requests[2]["messages"][-1]["content"]

    [run] = holo.llm_runs().items
    assert run["status"] == "FAILED" and run["metrics_json"]["valid_on_attempt"] is None
    artifacts = {a["artifact_type"]: a["content_json"] for a in holo.llm_artifacts(run["run_id"])}
    assert set(artifacts) == FAILURE_ARTIFACTS
    assert artifacts["invalid_json_response"] == ""
    manifest = artifacts["error_manifest"]
    assert [a["raw_response"] for a in manifest["attempts"]] == [
        "this is not JSON",
        '{"primary_type": "robot", "confidence": 50}',
        "",
    ]
    assert all(a["error"] for a in manifest["attempts"]) and manifest["job_id"] == job.job_id
    lake = holo.settings.resolved_lake_dir / "llm_runs" / run["run_id"] / "artifacts"
    assert {p.stem for p in lake.iterdir()} == FAILURE_ARTIFACTS
    assert (lake / "invalid_json_response.txt").read_text() == "" and json.loads(
        (lake / "error_manifest.json").read_text()
    ) == manifest
    assert holo.source_pages() == []


def test_an_answer_valid_on_the_second_attempt_is_kept(world: World) -> None:
    holo = world.holo
    holo.llm_enqueue("page_classification", source_ids=[source_id_of(holo, "work.json")])
    world.script.set('say:{"primary_type": "scholarly_work", "confidence": 140}')
    assert drain(holo).succeeded == 1
    [run] = holo.llm_runs().items
    assert run["metrics_json"]["valid_on_attempt"] == 2
    assert "confidence" in run["metrics_json"]["attempt_errors"][0]
    assert holo.source_pages()[0]["primary_type"] == "fictional_character"


def cite(ids_from: dict[str, Any], cited: str | None = None) -> str:
    """A facts answer citing the first evidence id the request's schema allows (or ``cited``)."""
    allowed = ids_from["format"]["$defs"]["Fact"]["properties"]["evidence_ids"]["items"]["enum"]
    fact = {
        "subject": "Penny",
        "predicate": "lives in",
        "object": "Pelican Town",
        "evidence_ids": [cited or allowed[0]],
    }
    return json.dumps({"entity": "Penny", "facts": [fact]})


def test_a_fact_citing_evidence_outside_its_bundle_is_rejected(world: World) -> None:
    holo = world.holo
    answers = iter([lambda body: cite(body, "e-not-in-the-bundle"), cite])
    world.script.respond = lambda body: next(answers)(body)
    [enqueued] = holo.llm_enqueue("sw_entity_facts", params={"entity": "Penny"})
    assert enqueued.job.parsed_input().params == {"entity": "Penny"}
    assert drain(holo).succeeded == 1

    [run] = holo.llm_runs().items
    assert "not an evidence id of the bundle" in run["metrics_json"]["attempt_errors"][0]
    assert run["metrics_json"]["valid_on_attempt"] == 2
    shown = holo.llm_run(run["run_id"])
    assert shown is not None
    [fact] = shown["parsed_output"]["facts"]
    assert fact["evidence_ids"][0] in {item["evidence_id"] for item in shown["evidence"]}
    # The schema sent limits citations to the bundle's ids: a constrained model cannot cite anything else.
    sent = world.chat_requests[0]["format"]["$defs"]["Fact"]["properties"]["evidence_ids"]["items"]["enum"]
    assert sorted(sent) == sorted(item["evidence_id"] for item in shown["evidence"])


# --- the model server failing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["status:500", "drop", "slow:8"])
def test_a_failing_model_server_fails_the_attempt_and_the_job_runs_again(world: World, fault: str) -> None:
    holo = world.holo
    [enqueued] = holo.llm_enqueue("page_classification", source_ids=[source_id_of(holo, "penny.html")])
    world.script.set(fault, fault)  # the provider's one retry fails too
    report = drain(holo)
    assert (report.failed, report.succeeded, report.deadlettered) == (1, 0, 0)
    job = holo.llm_jobs.get(enqueued.job.job_id)
    assert job is not None and job.status is JobStatus.FAILED and "the chat model failed" in str(job.last_error)
    [failed_run] = holo.llm_runs().items
    assert failed_run["status"] == "FAILED" and "chat model failed" in failed_run["error"]
    assert holo.llm_artifacts(failed_run["run_id"]) == []

    world.script.set()  # the server recovers
    make_ready(holo)
    assert drain(holo).succeeded == 1
    job = holo.llm_jobs.get(enqueued.job.job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED and job.attempt_count == 2
    statuses = sorted(r["status"] for r in holo.llm_runs().items)
    assert statuses == ["FAILED", "SUCCEEDED"] and len(holo.source_pages()) == 1
    assert table_count(holo, "llm_artifact") == len(SUCCESS_ARTIFACTS)


# --- the context window ------------------------------------------------------------------------------------------


def test_a_prompt_over_the_window_is_cut_by_the_bounding_policy_and_the_cut_recorded(
    db_url: str, tmp_path: Path
) -> None:
    pages = pages_folder(tmp_path)
    with scripted_chat_server(ChatScript(model="fake-chat", answer=CLASSIFIED)) as (url, script):
        small = OllamaChatProvider("fake-chat", url, options=ChatOptions(num_ctx=420), retry=FAST)
        with make_holo(db_url, tmp_path / "home", small) as holo:
            holo.ingest([pages])
            holo.index()
            holo.llm_enqueue("page_classification", source_ids=[source_id_of(holo, "penny.html")])
            assert drain(holo).succeeded == 1
            [run] = holo.llm_runs().items
            fit = run["metrics_json"]["context"]
            assert fit["cut_for_window"] and fit["context_length"] == 420
            assert fit["prompt_tokens"] <= fit["prompt_budget_tokens"] < fit["prompt_tokens_before_cut"]
            bundle = {a["artifact_type"]: a["content_json"] for a in holo.llm_artifacts(run["run_id"])}[
                "evidence_bundle"
            ]
            assert any(cut["reason"] == "context_window" for cut in bundle["stats"]["cut"])
            sent = "".join(m["content"] for m in script.chat_requests[0].body["messages"])
            assert len(sent.encode()) / 3 <= fit["prompt_budget_tokens"] + 16


def test_a_prompt_that_cannot_fit_is_never_sent_and_dead_letters(db_url: str, tmp_path: Path) -> None:
    pages = pages_folder(tmp_path)
    with scripted_chat_server(ChatScript(model="fake-chat", answer=CLASSIFIED)) as (url, script):
        tiny = OllamaChatProvider("fake-chat", url, options=ChatOptions(num_ctx=120), retry=FAST)
        with make_holo(db_url, tmp_path / "home", tiny) as holo:
            holo.ingest([pages])
            holo.index()
            [enqueued] = holo.llm_enqueue("page_classification", source_ids=[source_id_of(holo, "penny.html")])
            assert drain(holo).deadlettered == 1
            job = holo.llm_jobs.get(enqueued.job.job_id)
            assert job is not None and job.status is JobStatus.DEADLETTER
            assert "without evidence" in str(job.last_error) and "window of 120" in str(job.last_error)
            assert script.chat_requests == []


# --- enqueue ------------------------------------------------------------------------------------------------------


def test_bad_enqueues_are_rejected_and_store_nothing(world: World) -> None:
    holo = world.holo
    penny = source_id_of(holo, "penny.html")
    with pytest.raises(InvalidPayloadError, match=r"unknown interrogation .no_such_question"):
        holo.llm_enqueue("no_such_question", source_ids=[penny])
    with pytest.raises(InvalidPayloadError, match="entity"):
        holo.llm_enqueue("sw_entity_facts", source_ids=[penny])  # its required parameter is missing
    with pytest.raises(InvalidPayloadError, match="colour"):
        holo.llm_enqueue("page_classification", source_ids=[penny], params={"colour": "red"})
    with pytest.raises(InvalidPayloadError, match="does-not-exist"):
        holo.llm_enqueue("page_classification", source_ids=[penny, "file:does-not-exist"])
    with pytest.raises(InvalidPayloadError, match="name the sources"):
        holo.llm_enqueue("page_classification")
    assert table_count(holo, "llm_job") == 0 and table_count(holo, "llm_run") == 0


def test_a_subject_waiting_for_its_answer_is_queued_once(world: World) -> None:
    holo = world.holo
    first = holo.llm_enqueue("page_classification", all_sources=True)
    again = holo.llm_enqueue("page_classification", all_sources=True)
    assert [e.job.job_id for e in again] == [e.job.job_id for e in first] and not any(e.created for e in again)
    other = holo.llm_enqueue("entity_extraction_droid", all_sources=True)
    assert all(e.created for e in other) and table_count(holo, "llm_job") == 4
    assert drain(holo).claimed == 4
    # Answered: asking again is a new job.
    assert all(e.created for e in holo.llm_enqueue("page_classification", all_sources=True))


# --- user interrogations and the OpenAI-compatible API ---------------------------------------------------------------


def test_a_toml_interrogation_runs_like_a_builtin_through_the_openai_api(db_url: str, tmp_path: Path) -> None:
    pages = pages_folder(tmp_path)
    definitions = tmp_path / "interrogations.toml"
    definitions.write_text(
        """
[interrogations.audience]
version = "2"
description = "Who a page is written for."
prompt = "Who is this page ({title}) written for?\\n\\n{evidence}"
options = { num_predict = 40 }
evidence = { scope = "source", max_items = 1 }

[interrogations.audience.output]
audience = ["players", "researchers", "general"]
""",
        encoding="utf-8",
    )
    with scripted_chat_server(ChatScript(model="fake-chat", answer='{"audience": "players"}')) as (url, script):
        provider = OpenAIChatProvider("fake-chat", f"{url}/v1", retry=FAST)
        with make_holo(
            db_url, tmp_path / "home", provider, chat_provider="openai", interrogations_file=definitions
        ) as holo:
            assert holo.interrogations.get("audience").origin == str(definitions)
            holo.ingest([pages])
            holo.index()
            holo.llm_enqueue("audience", source_ids=[source_id_of(holo, "penny.html")])
            assert drain(holo).succeeded == 1
            [run] = holo.llm_runs().items
            assert run["interrogation_version"] == "2" and run["provider"] == "openai"
            shown = holo.llm_run(run["run_id"])
            assert shown is not None and shown["parsed_output"] == {"audience": "players"}
            body = script.chat_requests[0].body
            assert body["response_format"]["type"] == "json_schema" and body["max_tokens"] == 40
            enum = body["response_format"]["json_schema"]["schema"]["properties"]["audience"]["enum"]
            assert enum == ["players", "researchers", "general"]
