"""The command line through Typer's CliRunner: every command, its ``--json`` output and its exit codes.

Embedding goes to the scripted Ollama-compatible server of ``servers.py`` (deterministic 8-dimensional vectors,
no model to load), so indexing, search, evidence, the worker and ``spaces probe`` take milliseconds. The commands
that only read share one indexed home (module scope); the ones that change it get a home of their own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.core import TyperArgument, TyperOption
from typer.testing import CliRunner, Result

from chat_servers import ChatScript, scripted_chat_server
from holocron.api import create_app
from holocron.api.models import HitOut, RunOut, SearchResponse, SpaceOut
from holocron.cli.app import app, version
from holocron.cli.running_server import find_server
from holocron.config import Settings
from holocron.vocabulary import JOB_STATUSES, JOB_TYPES
from servers import Misbehaviour, misbehaving_server

MODEL = "fake-embed"
LONG_NAME = "a-page-whose-file-name-is-long-enough-that-its-source-id-alone-is-wider-than-eighty-columns.md"
PAGES = {
    "tea.md": "# Tea\n\nGreen tea is steamed or pan-fired soon after picking, which keeps it from oxidising.\n",
    "rust.md": "# Iron\n\nRust forms when iron reacts with oxygen and water over time.\n",
    LONG_NAME: "# Bees\n\nHoney bees dance to tell the hive where the flowers are.\n",
}
runner = CliRunner()
SERVER: dict[str, Misbehaviour] = {}


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fake embedding server, and an environment with nothing of the developer's in it."""
    with misbehaving_server() as (url, script), pytest.MonkeyPatch.context() as env:
        SERVER["script"] = script
        for name in list(os.environ):
            if name.startswith(("HOLOCRON_", "OLLAMA_", "OPENAI_")) and name != "HOLOCRON_TEST_PG_URL":
                env.delenv(name)
        env.delenv("COLUMNS", raising=False)
        env.setenv("HOLOCRON_CONFIG", str(tmp_path_factory.mktemp("config") / "absent.toml"))
        env.setenv("HOLOCRON_EMBED_PROVIDER", "ollama")
        env.setenv("HOLOCRON_OLLAMA_BASE_URL", url)
        env.setenv("HOLOCRON_EMBED_MODEL", MODEL)
        env.chdir(tmp_path_factory.mktemp("cwd"))
        yield url


def write_pages(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in PAGES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def indexed(model_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One home with the pages ingested (tagged, not queued) and indexed: for the commands that only read."""
    home = tmp_path_factory.mktemp("indexed")
    pages = write_pages(home / "pages")
    ingested = cli_json(home, "ingest", "--tag", "demo", "--no-enqueue", str(pages))
    report = cli_json(home, "index")
    return {"home": home, "pages": pages, "ingest": ingested, "index": report}


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def api_client(home: Path, model_url: str) -> TestClient:
    settings = Settings(home=home, embed_provider="ollama", ollama_base_url=model_url, embed_model=MODEL)
    return TestClient(create_app(settings))


# --- helpers ------------------------------------------------------------------------------------------------


def cli(home: Path | None, *args: str, code: int = 0) -> Result:
    argv = ["--home", str(home), *args] if home is not None else list(args)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = runner.invoke(app, argv)
    finally:  # the command pointed the root logger at CliRunner's stderr, closed by now
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code}) for {argv}:\n{result.output}"
    return result


def cli_json(home: Path | None, *args: str) -> Any:
    return json.loads(cli(home, *args, "--json").stdout)


def cli_error(home: Path | None, *args: str, code: int = 1) -> str:
    """The one line an expected failure prints on stderr."""
    result = cli(home, *args, code=code)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


def assert_one_vocabulary(value: Any) -> None:
    """No database column names and none of the words that have a better-named twin elsewhere."""
    keys = all_keys(value)
    assert not {k for k in keys if k.endswith("_json")}, keys
    assert not keys & {"start", "end", "all", "totals", "counts", "ready", "oldest_ready_seconds"}, keys


def command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the command tree: version, help, choices -------------------------------------------------------------------


def test_version() -> None:
    import holocron

    assert cli(None, "--version").stdout == f"holocron {holocron.__version__}\n" == f"holocron {version()}\n"
    assert cli(None, "--version", "status").stdout.startswith("holocron ")  # eager: nothing else runs


def test_no_arguments_prints_help() -> None:
    assert "Usage: holocron" in cli(None).stdout


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "holocron")
def test_every_option_has_help_and_no_raw_type_names(path: list[str]) -> None:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    assert command.help, f"{path}: no help"
    rendered = cli(None, *path, "--help").stdout
    for param in command.params:
        if isinstance(param, TyperOption | TyperArgument):
            assert (param.help or "").strip(), f"{path} {param.name}: no help"
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
        for envvar in envvars:
            assert envvar in rendered, f"{path} {param.name}: {envvar} not named in help"
    assert "list[" not in rendered and "<" not in rendered, rendered


def test_settings_options_name_their_environment_variables() -> None:
    assert "HOLOCRON_DATABASE_URL" in cli(None, "--help").stdout
    assert "HOLOCRON_HOME" in cli(None, "--help").stdout
    index_help = cli(None, "index", "--help").stdout
    for name in ("HOLOCRON_EMBED_MODEL", "HOLOCRON_EMBED_PROVIDER", "OLLAMA_BASE_URL", "HOLOCRON_CHUNK_SIZE"):
        assert name in index_help
    assert "HOLOCRON_API_PORT" in cli(None, "serve", "--help").stdout
    assert "HOLOCRON_SEARCH_MODE" in cli(None, "search", "--help").stdout


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["sources", "list", "--status", "bogus"], "pending, chunked, indexed, stale, error"),
        (["jobs", "list", "--status", "bogus"], ", ".join(JOB_STATUSES)),
        (["jobs", "list", "--status", "NEW,bogus"], ", ".join(JOB_STATUSES)),
        (["jobs", "list", "--type", "NAP"], ", ".join(JOB_TYPES)),
        (["jobs", "retry", "--all-deadletter", "--type", "NAP"], ", ".join(JOB_TYPES)),
        (["jobs", "enqueue", "NAP"], ", ".join(JOB_TYPES)),
        (["worker", "--types", "CHUNK_SOURCE,NAP"], ", ".join(JOB_TYPES)),
        (["index", "--mode", "sideways"], "incremental, full"),
        (["index", "sideways"], "rebuild"),
        (["search", "tea", "--mode", "psychic"], "vector, keyword, hybrid"),
        (["evidence", "tea", "--mode", "psychic"], "vector, keyword, hybrid"),
        (["search", "tea", "--source-type", "pdf"], "html, mediawiki, openalex, text, markdown"),
        (["models", "--provider", "pigeon"], "local, ollama, openai"),
        (["spaces", "create", "--embed-provider", "pigeon"], "local, ollama, openai"),
        (["spaces", "probe", "--embed-provider", "pigeon"], "local, ollama, openai"),
        (["--log-format", "xml", "status"], "text, json"),
        (["sources", "list", "--limit", "0"], "between 1 and 10000"),
        (["jobs", "list", "--offset", "-1"], "less than 0"),
        (["serve", "--port", "0"], "between 1 and 65535"),
        (["search", "tea", "-k", "many"], "not a whole number"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_invalid_values_are_one_line_usage_errors(home: Path, args: list[str], choices: str) -> None:
    line = cli_error(home, *args, code=2)
    assert choices in line, line
    assert "--help" in line
    assert not home.exists(), "a usage error must not open the store"


def test_an_invalid_value_from_the_environment_names_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOCRON_SEARCH_MODE", "psychic")
    line = cli_error(home, "search", "tea", code=2)  # read as the --mode option: a usage error
    assert "HOLOCRON_SEARCH_MODE" in line and "'psychic' is not one of vector, keyword, hybrid" in line
    line = cli_error(home, "sources", "list")  # read as a setting by a command without that option
    assert "HOLOCRON_SEARCH_MODE" in line and "'vector', 'keyword' or 'hybrid', not 'psychic'" in line
    monkeypatch.setenv("HOLOCRON_API_PORT", "eighty")
    assert "HOLOCRON_API_PORT" in cli_error(home, "serve", code=2)


def test_choices_are_case_insensitive_and_comma_separated(home: Path) -> None:
    assert cli_json(home, "jobs", "list", "--status", "new,failed", "--type", "chunk_source") == []


def test_an_unexpected_failure_is_one_line(home: Path) -> None:
    line = cli_error(None, "--database-url", "nonsense://", "db", "status")
    assert "--verbose" in line


# --- ingest, extract, index --------------------------------------------------------------------------------


def test_ingest_json(indexed: dict[str, Any], tmp_path: Path) -> None:
    assert indexed["ingest"] == {
        "new": 3,
        "changed": 0,
        "unchanged": 0,
        "retagged": 0,
        "rejected": [],
        "skipped": [],
        "missing": [],
        "pruned": [],
        "jobs_enqueued": 0,
    }
    again = cli_json(indexed["home"], "ingest", "--tag", "demo", "--no-enqueue", str(indexed["pages"]))
    assert again["unchanged"] == 3 and again["new"] == 0
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "blob.bin").write_bytes(bytes(range(256)) * 4)
    result = cli(tmp_path / "home", "ingest", "--no-enqueue", str(odd), "--json", code=1)
    rejected = json.loads(result.stdout)["rejected"]
    assert len(rejected) == 1 and set(rejected[0]) == {"source_id", "reason"}
    assert rejected[0]["source_id"] == "files:odd/blob.bin"


def test_ingest_of_a_missing_path_fails(home: Path) -> None:
    assert "no such file or folder" in cli_error(home, "ingest", str(home / "nowhere"))


def test_ingest_queues_indexing_jobs(home: Path, tmp_path: Path) -> None:
    summary = cli_json(home, "ingest", str(write_pages(tmp_path / "pages")))
    assert summary["new"] == 3 and summary["jobs_enqueued"] == 1


def test_extract_json_and_a_missing_file(tmp_path: Path) -> None:
    page = write_pages(tmp_path / "pages") / "tea.md"
    data = cli_json(None, "extract", str(page))
    assert set(data) == {"source_type", "title", "metadata", "text"}
    assert data["source_type"] == "markdown" and data["title"] == "Tea" and "Green tea" in data["text"]
    assert "Green tea" in cli(None, "extract", str(page)).stdout
    assert "does not exist" in cli_error(None, "extract", str(tmp_path / "missing.md"), code=2)


def test_index_json(indexed: dict[str, Any]) -> None:
    report = indexed["index"]
    assert report["space"].startswith(f"ollama/{MODEL}")
    assert report["sources_chunked"] == 3 and report["chunks_written"] == 3 and report["embeddings_written"] == 3
    assert report["errors"] == [] and report["warnings"] == []
    sources = cli_json(indexed["home"], "sources", "list")
    assert {s["chunk_policy_version"] for s in sources} == {report["chunk_policy_version"]}
    assert_one_vocabulary(report)
    again = cli_json(indexed["home"], "index")
    assert again["chunks_written"] == 0 and again["embeddings_written"] == 0


def test_index_with_a_manifest(home: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "sources": []}))
    assert cli_json(home, "index", "--source-manifest", str(manifest))["errors"] == []
    assert "no such manifest" in cli_error(home, "index", "--source-manifest", str(tmp_path / "none.json"))


def test_index_rebuild_json(indexed: dict[str, Any]) -> None:
    for args in (["index", "rebuild"], ["index-rebuild"]):
        report = cli_json(indexed["home"], *args)
        assert report["space"] == indexed["index"]["space"]
        assert report["size"] == 3 and report["rebuilt"] is True


# --- search and evidence --------------------------------------------------------------------------------------


def test_search_json_has_the_api_fields(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    body = cli_json(home, "search", "green tea picking", "--mode", "keyword", "-k", "2")
    assert set(body) == set(SearchResponse.model_fields)
    assert body["mode"] == "keyword" and body["query"] == "green tea picking" and body["filters"] == {}
    top = body["hits"][0]
    assert set(top) == set(HitOut.model_fields)
    assert top["title"] == "Tea" and top["start_offset"] == 0 and top["end_offset"] > 0
    assert isinstance(top["source_ref"], dict) and top["evidence_id"].startswith("ev_")
    assert_one_vocabulary(body)
    with api_client(home, model_url) as client:
        api = client.post("/api/search", json={"query": "green tea picking", "mode": "keyword", "k": 2}).json()
    assert set(api) == set(body) and set(api["hits"][0]) == set(top)
    for key in ("chunk_id", "source_id", "start_offset", "end_offset", "evidence_id", "score"):
        assert api["hits"][0][key] == top[key], key
    # The API shows file locations relative to the data home, the CLI as stored.
    assert api["hits"][0]["source_ref"] == {**top["source_ref"], "uri": "pages/tea.md"}


def test_search_filters_and_an_empty_result(indexed: dict[str, Any]) -> None:
    home = indexed["home"]
    only = cli_json(home, "search", "tea", "--mode", "vector", "--tag", "demo", "--source-type", "markdown")
    assert only["filters"] == {"source_types": ["markdown"], "tags": ["demo"]} and len(only["hits"]) == 3
    none = cli_json(home, "search", "tea", "--tag", "nope")
    assert none["hits"] == []
    assert "no hits" in cli(home, "search", "tea", "--tag", "nope").stdout
    assert "not an ISO date" in cli_error(home, "search", "tea", "--since", "yesterday")


def test_search_table(indexed: dict[str, Any]) -> None:
    out = cli(indexed["home"], "search", "honey bees", "--mode", "keyword").stdout
    assert "Bees" in out and "Honey bees dance" in out
    assert "bm25: keyword relevance" in out  # the score column says what its numbers are


def test_search_explain_shows_every_stage(indexed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    home = indexed["home"]
    out = cli(home, "search", "how do honey bees talk", "--explain").stdout
    header = next(line for line in out.splitlines() if "rank" in line and "snippet" in line)
    assert [word for word in ("rank", "convex", "vector", "keyword", "title", "snippet") if word in header] == [
        "rank",
        "convex",
        "vector",
        "keyword",
        "title",
        "snippet",
    ]
    assert "convex: a weighted mix of the vector and keyword scores" in out
    monkeypatch.setenv("HOLOCRON_SEARCH_FUSION", "rrf")
    assert "rrf: reciprocal-rank fusion" in cli(home, "search", "how do honey bees talk").stdout
    assert "0.0328 is first in both" in cli(home, "search", "how do honey bees talk").stdout
    body = cli_json(home, "search", "how do honey bees talk", "-k", "1")
    top = body["hits"][0]
    assert re.search(r"#\d+ \d\.\d{3}", out)  # a stage's rank and score
    # The snippet shows the matching sentence with its words marked.
    marked = {top["snippet"][a:b].casefold() for a, b in top["highlights"]}
    assert marked and marked <= {"honey", "bees", "bee", "talk"}


def test_evidence_json_and_text(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    bundle = json.loads(cli(home, "evidence", "how do bees talk", "--max-items", "2").stdout)
    assert bundle["bundle_id"] and 1 <= len(bundle["items"]) <= 2 and bundle["policy"]["max_items"] == 2
    assert cli_json(home, "evidence", "how do bees talk").keys() == bundle.keys()
    text = cli(home, "evidence", "how do bees talk", "--text").stdout
    assert f"[{bundle['items'][0]['evidence_id']}]" in text
    assert "exclude each other" in cli_error(home, "evidence", "x", "--text", "--json")
    with api_client(home, model_url) as client:
        api = client.post("/api/evidence", json={"question": "how do bees talk", "max_items": 2}).json()
    assert set(api) == set(bundle) and set(api["items"][0]) == set(bundle["items"][0])


# --- catalog: sources, spaces, runs, status, db -------------------------------------------------------------


def test_sources_list_json(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    rows = cli_json(home, "sources", "list")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"indexed"}
    assert all(r["tags"] == ["demo"] and isinstance(r["source_ref"], dict) for r in rows)
    assert_one_vocabulary(rows)
    assert cli_json(home, "sources", "list", "--status", "error") == []
    assert len(cli_json(home, "sources", "list", "--limit", "2", "--offset", "2")) == 1
    with api_client(home, model_url) as client:
        api = client.get("/api/sources").json()
    assert api["total"] == 3 and set(api["items"][0]) == set(rows[0])
    assert [r["source_id"] for r in api["items"]] == [r["source_id"] for r in rows]


def test_piped_tables_keep_each_row_on_one_line(indexed: dict[str, Any]) -> None:
    out = cli(indexed["home"], "sources", "list").stdout
    long_id = next(r["source_id"] for r in cli_json(indexed["home"], "sources", "list") if LONG_NAME in r["source_id"])
    assert len(long_id) > 80
    row = next(line for line in out.splitlines() if long_id in line)
    assert "indexed" in row and "Bees" in row
    assert len([line for line in out.splitlines() if "indexed" in line]) == 3


def test_spaces_list_show_create_and_probe(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    spaces = cli_json(home, "spaces", "list")
    assert len(spaces) == 1
    space = spaces[0]
    assert set(SpaceOut.model_fields) <= set(space)
    assert space["embeddings"] == 3 and space["coverage"] == 1.0 and space["dimensions"] == 8
    with api_client(home, model_url) as client:
        api = client.get("/api/spaces").json()["items"][0]
    assert {k: space[k] for k in api} == api
    by_name = cli_json(home, "spaces", "show", space["name"])
    assert by_name == cli_json(home, "spaces", "show", str(space["embedding_space_id"]))
    assert by_name["model_digest"] == space["model_digest"]
    assert "no embedding space" in cli_error(home, "spaces", "show", "nope")
    created = cli_json(home, "spaces", "create")
    assert created["created"] is False and created["space"] == space["name"]
    assert created["embedding_space_id"] == space["embedding_space_id"]
    probe = cli_json(home, "spaces", "probe", "--text", "hello")
    assert probe["dimensions"] == 8 and probe["space"] == space["name"] and probe["provider"] == "ollama"
    assert "probe of" in cli(home, "spaces", "probe").stdout


def test_models_json(home: Path, model_url: str) -> None:
    rows = cli_json(home, "models", "--provider", "ollama", "--timeout", "5")
    assert [(r["provider"], r["model"], r["configured"]) for r in rows] == [("ollama", f"{MODEL}:latest", True)]
    assert rows[0]["status"].startswith("ok")
    unreachable = cli_json(home, "models", "--provider", "openai", "--openai-url", "http://127.0.0.1:9/v1")
    assert unreachable[0]["status"].startswith("unreachable")


def test_runs_list_and_show_json(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    runs = cli_json(home, "runs", "list")
    assert runs and all(set(r) == set(RunOut.model_fields) for r in runs)
    first = runs[-1]
    assert first["run_type"] == "INDEX" and first["metrics"]["chunks_written"] == 3
    assert isinstance(first["options"], dict) and isinstance(first["metrics"], dict)
    assert_one_vocabulary(runs)
    shown = cli_json(home, "runs", "show", first["run_id"])
    assert {a["artifact_type"] for a in shown["artifacts"]} >= {"chunk_manifest", "embedding_manifest"}
    assert_one_vocabulary(shown)
    with api_client(home, model_url) as client:
        api = client.get(f"/api/runs/{first['run_id']}").json()
    relative = [{**a, "uri": a["uri"].removeprefix(home.resolve().as_uri() + "/")} for a in shown["artifacts"]]
    assert api == {**shown, "artifacts": relative}  # the API shows file locations relative to the data home
    assert cli_json(home, "runs", "list", "--job", "999") == []
    assert "no run" in cli_error(home, "runs", "show", "nope")
    table = cli(home, "runs", "show", first["run_id"]).stdout
    assert first["run_id"] in table and "chunks_written" in table


def test_status_json_is_the_api_overview(indexed: dict[str, Any], model_url: str) -> None:
    home = indexed["home"]
    overview = cli_json(home, "status")
    with api_client(home, model_url) as client:
        api = client.get("/api/status").json()
    assert set(overview) == set(api)
    for key in ("queue", "sources", "dead_letters", "throughput"):
        assert set(overview[key]) == set(api[key]), key
    assert overview["sources"]["total"] == 3 and overview["queue"]["total"] == 0
    assert_one_vocabulary(overview)
    text = cli(home, "status").stdout
    assert "Embedding spaces" in text
    assert any(line.startswith("│ total ") for line in text.splitlines()), text


def test_db_status_and_upgrade_json(home: Path) -> None:
    upgraded = cli_json(home, "db", "upgrade")
    assert upgraded["up_to_date"] is True and upgraded["current"] == upgraded["head"]
    status = cli_json(home, "db", "status")
    assert status == upgraded and status["database"].startswith("sqlite")
    assert "schema" in cli(home, "db", "status").stdout


# --- the queue: worker, jobs, runs of jobs --------------------------------------------------------------------


def test_llm_enqueue_worker_runs_show_artifacts_and_pages(
    home: Path, tmp_path: Path, model_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = '{"primary_type":"concept_or_method","confidence":70}'
    with scripted_chat_server(ChatScript(model="fake-chat", answer=answer)) as (chat_url, script):
        monkeypatch.setenv("HOLOCRON_CHAT_PROVIDER", "ollama")
        monkeypatch.setenv("HOLOCRON_CHAT_BASE_URL", chat_url)
        monkeypatch.setenv("HOLOCRON_CHAT_MODEL", "fake-chat")
        cli_json(home, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
        cli_json(home, "index")
        keys = {t["key"] for t in cli_json(home, "llm", "types")}
        assert {"page_classification", "sw_entity_facts", "entity_extraction_droid"} <= keys
        assert "unknown interrogation" in cli_error(home, "llm", "enqueue", "no_such_question", "--all")
        assert "entity" in cli_error(home, "llm", "enqueue", "sw_entity_facts", "--all")
        assert cli_json(home, "llm", "jobs") == []

        made = cli_json(home, "llm", "enqueue", "page_classification", "--all")
        assert len(made["job_ids"]) == len(PAGES) and made["existing_job_ids"] == []
        again = cli_json(home, "llm", "enqueue", "page_classification", "--all")
        assert again == {"job_ids": [], "existing_job_ids": made["job_ids"]}
        dry = cli_json(home, "worker", "--dry-run", "--queues", "llm")
        assert {j["queue"] for j in dry} == {"llm"} and len(dry) == len(PAGES)
        report = cli_json(home, "worker", "--once", "--queues", "llm")
        assert report["succeeded"] == len(PAGES) and report["failed"] == 0
        assert len(script.chat_requests) == len(PAGES)

        runs = cli_json(home, "llm", "runs")
        assert len(runs) == len(PAGES) and {r["status"] for r in runs} == {"SUCCEEDED"}
        run_id = runs[0]["run_id"]
        shown = cli_json(home, "llm", "show", run_id[:8])
        assert shown["run_id"] == run_id and shown["parsed_output"]["primary_type"] == "concept_or_method"
        assert shown["evidence"] and "llm show" not in cli(home, "llm", "show", run_id).stdout
        listed = cli_json(home, "llm", "artifacts", run_id)
        assert "raw_response" in {a["artifact_type"] for a in listed}
        assert cli(home, "llm", "artifacts", run_id, "--type", "raw_response").stdout.strip() == answer
        pages = cli_json(home, "llm", "pages")
        assert len(pages) == len(PAGES) and {p["primary_type"] for p in pages} == {"concept_or_method"}
        assert cli_json(home, "llm", "refresh") == {"job_ids": [], "existing_job_ids": []}
        assert "no run" in cli_error(home, "llm", "show", "ffffffff")


def test_jobs_worker_and_runs(home: Path, tmp_path: Path, model_url: str) -> None:
    assert cli_json(home, "ingest", str(write_pages(tmp_path / "pages")))["jobs_enqueued"] == 1
    jobs = cli_json(home, "jobs", "list")
    assert [(j["job_type"], j["status"]) for j in jobs] == [("CHUNK_SOURCE", "NEW")]
    job_id = jobs[0]["job_id"]
    with api_client(home, model_url) as client:
        assert set(client.get("/api/jobs").json()["items"][0]) == set(jobs[0])
    shown = cli_json(home, "jobs", "show", str(job_id))
    assert shown["runs"] == [] and shown["job_id"] == job_id and shown["input"]["source_ids"]
    assert [j["job_id"] for j in cli_json(home, "worker", "--dry-run")] == [job_id]
    types = cli_json(home, "worker", "--list-types")
    assert {t["job_type"] for t in types if t["queue"] == "vector"} == set(JOB_TYPES)
    assert {"page_classification", "sw_entity_facts", "entity_extraction_droid"} <= {
        t["job_type"] for t in types if t["queue"] == "llm"
    }
    assert all({"description", "fields"} <= set(t) for t in types)

    report = cli_json(home, "worker", "--once", "--max-jobs", "10")
    assert report["succeeded"] == 2 and report["failed"] == 0
    assert {j["status"] for j in cli_json(home, "jobs", "list")} == {"SUCCEEDED"}
    runs = cli_json(home, "jobs", "show", str(job_id))["runs"]
    assert len(runs) == 1 and set(runs[0]) == set(RunOut.model_fields) and runs[0]["status"] == "SUCCEEDED"
    assert [r["run_id"] for r in cli_json(home, "runs", "list", "--job", str(job_id))] == [runs[0]["run_id"]]

    stats = cli_json(home, "jobs", "stats")
    overview_queue = cli_json(home, "status")["queue"]
    assert {"by_status", "by_type", "total", "available", "oldest_available_age_s"} <= set(stats)
    for key in ("by_status", "by_type", "total", "available"):
        assert stats[key] == overview_queue[key], key
    assert stats["by_status"]["SUCCEEDED"] == 2 and stats["succeeded_last_hour"] == 2
    assert_one_vocabulary(stats)
    table = cli(home, "jobs", "list").stdout
    lines = [line for line in table.splitlines() if "SUCCEEDED" in line]
    assert len(lines) == 2 and all(report["worker_id"] in line for line in lines)
    assert cli_json(home, "jobs", "enqueue-pending") == {"job_ids": [], "existing_job_ids": []}
    assert "total" in cli(home, "jobs", "stats").stdout


def test_jobs_enqueue_cancel_retry(home: Path) -> None:
    made = cli_json(home, "jobs", "enqueue", "retrieve_test", "--query", "tea", "--dedupe-key", "k1")
    assert set(made) == {"job", "created"} and made["created"] is True
    job = made["job"]
    assert job["job_type"] == "RETRIEVE_TEST" and job["status"] == "NEW" and job["input"]["queries"] == ["tea"]
    again = cli_json(home, "jobs", "enqueue", "RETRIEVE_TEST", "--query", "tea", "--dedupe-key", "k1")
    assert again["created"] is False and again["job"]["job_id"] == job["job_id"]
    job_id = str(job["job_id"])
    assert cli_json(home, "jobs", "cancel", job_id) == {"job_ids": [job["job_id"]], "skipped": []}
    line = cli_error(home, "jobs", "cancel", job_id)
    assert f"not cancelled: job {job_id}: it is CANCELLED" in line
    assert cli_json(home, "jobs", "retry", job_id) == {"job_ids": [job["job_id"]], "skipped": []}
    assert cli_json(home, "jobs", "show", job_id)["status"] == "NEW"
    partial = cli(home, "jobs", "retry", job_id, "999", "--json", code=1)
    assert json.loads(partial.stdout) == {
        "job_ids": [],
        "skipped": [
            {"job_id": job["job_id"], "reason": "it is NEW, not DEADLETTER, FAILED or CANCELLED"},
            {"job_id": 999, "reason": "no such job"},
        ],
    }
    assert cli_json(home, "jobs", "retry", "--all-deadletter", "--type", "chunk_source") == {
        "job_ids": [],
        "skipped": [],
    }


def test_jobs_user_errors_on_an_empty_database(home: Path, tmp_path: Path) -> None:
    assert cli_error(home, "jobs", "retry", "999") == "error: not retried: job 999: no such job"
    assert cli_error(home, "jobs", "cancel", "999") == "error: not cancelled: job 999: no such job"
    assert "name job ids" in cli_error(home, "jobs", "retry")
    assert cli_error(home, "jobs", "show", "999") == "error: no job 999"
    assert "JOB_ID" in cli_error(home, "jobs", "show", "x", code=2)
    assert "payload" in cli_error(home, "jobs", "enqueue", "CHUNK_SOURCE", "--payload", "{not json")
    assert "source_ids" in cli_error(home, "jobs", "enqueue", "CHUNK_SOURCE", "--payload", '{"space_id": 1}')
    assert "no such file" in cli_error(home, "jobs", "enqueue", "DRIFT_TEST", "--queries-file", str(tmp_path / "q"))
    assert cli_json(home, "jobs", "list") == [] and cli_json(home, "runs", "list") == []
    assert "exclude each other" in cli_error(home, "worker", "--once", "--loop")


def test_ingest_index_search_and_lists_on_each_engine(db_url: str, tmp_path: Path) -> None:
    home, url = tmp_path / "home", ["--database-url", db_url]
    cli(home, *url, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
    assert cli_json(home, *url, "index")["embeddings_written"] == 3
    sources = {r["source_id"] for r in cli_json(home, *url, "sources", "list")}
    assert len(sources) == 3
    hits = cli_json(home, *url, "search", "honey bees", "--mode", "hybrid")["hits"]
    assert hits and {h["source_id"] for h in hits} <= sources
    assert cli_json(home, *url, "db", "status")["up_to_date"] is True
    assert cli_json(home, *url, "status")["sources"]["total"] == 3


# --- eval -----------------------------------------------------------------------------------------------------


def test_eval_json(tmp_path: Path) -> None:
    corpus, queries, qrels = tmp_path / "corpus.jsonl", tmp_path / "queries.jsonl", tmp_path / "qrels.tsv"
    documents = [("d1", "Tea", "Green tea is steamed after picking."), ("d2", "Bees", "Honey bees dance.")]
    corpus.write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in documents))
    queries.write_text(json.dumps({"_id": "q1", "text": "green tea"}) + "\n")
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    args = ["eval", "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels), "--mode", "keyword"]
    report = cli_json(None, *args, "--folder", str(tmp_path / "store"))
    assert report["documents"] == 2 and [r["mode"] for r in report["results"]] == ["keyword"]
    assert report["results"][0]["ndcg@10"] == 1.0
    assert "does not exist" in cli_error(None, "eval", "--corpus", str(tmp_path / "no"), code=2)


# --- servers -----------------------------------------------------------------------------------------------


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(home: Path) -> None:
    assert "HOLOCRON_API_TOKEN" in cli_error(home, "serve", "--host", "0.0.0.0")


@contextmanager
def serving(home: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """``holocron serve`` in its own process on ``port``, answering /health; stopped afterwards."""
    env = {**os.environ, "HOLOCRON_HOME": str(home)}
    command = [str(Path(sys.executable).with_name("holocron")), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        yield process
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_serve_answers_http(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path / "home", port):
        assert httpx.get(f"http://127.0.0.1:{port}/api/status").json()["queue"]["total"] == 0


def test_search_asks_a_running_server_of_the_same_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    cli(home, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
    cli(home, "index")
    monkeypatch.setenv("HOLOCRON_SEARCH_VIA_SERVER", "false")
    in_process = cli_json(home, "search", "green tea", "-k", "3")
    monkeypatch.delenv("HOLOCRON_SEARCH_VIA_SERVER")
    port = free_port()
    with serving(home, port) as server:
        announced = json.loads((home / "serve.json").read_text())
        assert announced["url"] == f"http://127.0.0.1:{port}" and announced["pid"] == server.pid
        table = cli(home, "search", "green tea", "-k", "3").stdout
        assert f"via http://127.0.0.1:{port}" in table and "Tea" in table
        served = cli_json(home, "search", "green tea", "-k", "3")
        assert [h["chunk_id"] for h in served["hits"]] == [h["chunk_id"] for h in in_process["hits"]]
        ranked_by = [{k: v for k, v in answer["policy"].items() if k != "timing_ms"} for answer in (served, in_process)]
        assert ranked_by[0] == ranked_by[1] and served["retrieval_id"] != in_process["retrieval_id"]
        assert find_server(Settings(home=home)) is not None
        assert find_server(Settings(home=home, embed_model="another-model")) is None  # not this server's space
        other_store = f"sqlite:///{tmp_path / 'other.db'}"
        assert find_server(Settings(home=home, database_url=other_store)) is None  # nor its store
    assert not (home / "serve.json").exists()  # withdrawn when the server stops
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (home / "serve.json").write_text(json.dumps({**announced, "pid": int(dead.stdout)}))
    stale = cli(home, "search", "green tea", "-k", "3").stdout  # a stale announcement: searched in process
    assert "via http" not in stale and "Tea" in stale


def test_serve_embeddings_validates_its_arguments(home: Path, tmp_path: Path) -> None:
    assert "no such folder" in cli_error(home, "serve-embeddings", "--model-path", str(tmp_path / "none"))
    assert "is not set" in cli_error(home, "serve-embeddings", "--api-key-env", "HOLOCRON_TEST_UNSET_KEY")
    assert "between 1 and 65535" in cli_error(home, "serve-embeddings", "--port", "70000", code=2)


# --- runs that fail say so ------------------------------------------------------------------------------------


@pytest.fixture()
def script() -> Iterator[Misbehaviour]:
    """The embedding server's script for one test, put back to always answering afterwards."""
    yield SERVER["script"]
    SERVER["script"].set()


def test_index_exits_1_with_status_failed_when_nothing_embeds(
    home: Path, tmp_path: Path, script: Misbehaviour, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLOCRON_MAX_RETRIES", "0")
    cli(home, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
    script.set(then="status:500")
    report = json.loads(cli(home, "index", "--json", code=1).stdout)
    assert report["status"] == "failed" and report["embeddings_written"] == 0
    assert report["errors"] and all(e["reason"] for e in report["errors"])
    run = cli_json(home, "runs", "show", report["run_id"])
    assert run["status"] == "FAILED" and run["error"].startswith("failed:")
    statuses = {s["status"] for s in cli_json(home, "sources", "list")}
    assert statuses == {"chunked"}  # chunked, not embedded: not "indexed"


def test_index_exits_2_when_the_run_is_partial(
    home: Path, tmp_path: Path, script: Misbehaviour, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLOCRON_MAX_RETRIES", "0")
    cli(home, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
    script.set("status:400")  # one batch refused, the rest answered
    result = cli(home, "index", "--batch-size", "1", code=2)
    assert "run partial" in result.stderr
    report = json.loads(cli(home, "index", "--json").stdout)  # the rest is embedded by the next run
    assert report["status"] == "succeeded" and report["embeddings_written"] == 1


def test_a_killed_index_run_is_closed_as_failed(home: Path, tmp_path: Path, script: Misbehaviour) -> None:
    cli(home, "ingest", "--no-enqueue", str(write_pages(tmp_path / "pages")))
    script.set(then="slow:60")
    command = [str(Path(sys.executable).with_name("holocron")), "--home", str(home), "index"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not [r for r in cli_json(home, "runs", "list") if r["status"] == "RUNNING"]:
            assert process.poll() is None and time.monotonic() < deadline, "the index run never started"
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
    script.set()
    runs = cli_json(home, "runs", "list")
    assert [(r["run_type"], r["status"]) for r in runs] == [("INDEX", "FAILED")]
    assert "exited" in runs[0]["error"]
