"""The interrogation runtime with the real bundled chat model: in process (the embedded default), and behind
``holocron serve-models`` through the Ollama and OpenAI-compatible clients.

Decoding under the answer's JSON schema makes every answer parse and validate on its first attempt, whatever the
small model thinks of the page; its labels are not judged here (a 135M model is no classifier to trust).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chat_servers import chat_model, model_server
from holocron.chat.base import ChatProvider
from holocron.chat.ollama import OllamaChatProvider
from holocron.chat.openai import OpenAIChatProvider
from holocron.llm.interrogations import PAGE_TYPES
from test_llm_runtime import SUCCESS_ARTIFACTS, drain, make_holo, pages_folder, source_id_of

pytestmark = pytest.mark.model


def ask_every_page(db_url: str, tmp_path: Path, provider: ChatProvider, **settings: Any) -> list[dict[str, Any]]:
    """page_classification of the two test pages; the runs, each checked to have answered on attempt one."""
    with make_holo(db_url, tmp_path / "home", provider, **settings) as holo:
        holo.ingest([pages_folder(tmp_path)])
        holo.index()
        holo.llm_enqueue("page_classification", all_sources=True)
        report = drain(holo)
        assert (report.succeeded, report.failed, report.deadlettered) == (2, 0, 0)
        runs = holo.llm_runs().items
        for run in runs:
            assert run["metrics_json"]["valid_on_attempt"] == 1 and run["metrics_json"]["constrained"]
            assert {a["artifact_type"] for a in holo.llm_artifacts(run["run_id"])} == SUCCESS_ARTIFACTS
        pages = holo.source_pages()
        assert {p["page_id"] for p in pages} == {run["input_json"]["source_id"] for run in runs}
        assert all(p["primary_type"] in PAGE_TYPES and 0 <= p["confidence"] <= 1 for p in pages)
        return runs


def test_the_local_model_answers_every_page_on_its_first_attempt(db_url: str, tmp_path: Path) -> None:
    model = chat_model()
    runs = ask_every_page(db_url, tmp_path, model, chat_provider="local")
    assert {run["provider"] for run in runs} == {"local"}
    assert {run["model_digest"] for run in runs} == {model.identity().model_digest}
    # The prompt was counted with the model's own tokenizer, and fitted to its window.
    assert all(run["metrics_json"]["context"]["context_length"] == model.identity().context_length for run in runs)


def test_found_entities_cite_only_their_bundle_under_constrained_decoding(sqlite_url_path: str, tmp_path: Path) -> None:
    with make_holo(sqlite_url_path, tmp_path / "home", chat_model(), chat_provider="local") as holo:
        holo.ingest([pages_folder(tmp_path)])
        holo.index()
        holo.llm_enqueue("entity_extraction_droid", source_ids=[source_id_of(holo, "penny.html")])
        assert drain(holo).succeeded == 1
        [run] = holo.llm_runs().items
        assert run["metrics_json"]["valid_on_attempt"] == 1
        shown = holo.llm_run(run["run_id"])
        assert shown is not None
        allowed = {item["evidence_id"] for item in shown["evidence"]}
        cited = {cited for entity in shown["parsed_output"]["entities"] for cited in entity["evidence_ids"]}
        assert cited <= allowed


@pytest.fixture()
def sqlite_url_path(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'holocron.db'}"


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_the_local_model_server_answers_through_both_clients(sqlite_url_path: str, tmp_path: Path, api: str) -> None:
    server = model_server()
    name = chat_model().model_name
    provider: ChatProvider = (
        OllamaChatProvider(name, server.url) if api == "ollama" else OpenAIChatProvider(name, f"{server.url}/v1")
    )
    runs = ask_every_page(sqlite_url_path, tmp_path, provider, chat_provider=api, chat_model=name)
    assert {run["provider"] for run in runs} == {api}
    assert {run["model_digest"] for run in runs} == {chat_model().identity().model_digest}
