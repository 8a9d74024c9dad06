"""Structured logs: context on every line about a run, JSON for machines, causes without tracebacks, no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from holocron.api import create_app
from holocron.config import Settings
from holocron.observability.logs import configure_logging, log_context
from holocron.service import Holocron
from test_api import HashProvider

log = logging.getLogger("holocron.test")
SECRET = "tok-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_key_value_and_json_carry_context_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    with log_context(job_id=42, worker_id="w-1"), log_context(run_id="r-1", space="s/1"):
        log.info("claimed", extra={"fields": {"source_id": "files:a b.md"}})
    log.info("outside")
    first, second = lines(capsys)
    assert "info    claimed" in first
    assert 'job_id=42 worker_id=w-1 run_id=r-1 space=s/1 source_id="files:a b.md"' in first
    assert "job_id" not in second

    configure_logging("json", "INFO")
    with log_context(job_id=7, run_id="r-2", worker_id="w-2", space="sp"):
        log.warning("slow batch", extra={"fields": {"source_id": "x"}})
    (line,) = lines(capsys)
    record = json.loads(line)
    assert record["message"] == "slow batch" and record["level"] == "warning"
    assert {k: record[k] for k in ("job_id", "run_id", "worker_id", "space", "source_id")} == {
        "job_id": 7,
        "run_id": "r-2",
        "worker_id": "w-2",
        "space": "sp",
        "source_id": "x",
    }


def test_expected_failures_say_why_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "INFO")
    try:
        raise ValueError("the page has no readable text")
    except ValueError:
        log.error("source not indexed: the page has no readable text", exc_info=True)
    out = capsys.readouterr().err
    assert "source not indexed: the page has no readable text" in out
    assert "Traceback" not in out
    configure_logging("text", "DEBUG")  # --verbose: the traceback is there for whoever asks
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("failed", exc_info=True)
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_reach_a_line(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt, "DEBUG")
    settings = Settings(api_token=SecretStr(SECRET), openai_api_key=SecretStr(SECRET))
    log.info("settings %s", settings)
    log.info("calling with Authorization: Bearer %s", SECRET)
    log.info('%s - "GET /?token=%s HTTP/1.1" 200', "127.0.0.1:5555", SECRET)
    log.info("connecting to postgresql://holo:%s@db:5432/holo", SECRET)
    log.info("request", extra={"fields": {"api_token": SECRET, "password": SECRET, "note": f"key={SECRET}"}})
    with log_context(authorization=f"Bearer {SECRET}", job_id=1):
        log.info("with context")
    try:
        raise RuntimeError(f"upstream refused token={SECRET}")
    except RuntimeError:
        log.exception("provider call failed")
    out = capsys.readouterr().err
    assert SECRET not in out
    assert out.count("[redacted]") >= 7
    if fmt == "json":
        for line in out.splitlines():
            if line.startswith("{"):
                json.loads(line)


def test_index_lines_carry_run_space_and_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "good.md").write_text("# Good\n\nSome readable text about kettles.\n")
    (pages / "blank.html").write_text("<html><body></body></html>")
    configure_logging("json", "INFO")

    class Chatty(HashProvider):
        def embed(self, texts, purpose=None):  # type: ignore[no-untyped-def]
            logging.getLogger("holocron.test.provider").info("embedding %d texts", len(texts))
            return super().embed(texts)

    with Holocron(Settings(home=tmp_path / "home"), provider=Chatty()) as holo:
        holo.ingest([pages])
        capsys.readouterr()
        report = holo.index()
        space = holo.space.name
    records = [json.loads(line) for line in lines(capsys)]
    about_run = [r for r in records if r["message"].startswith(("embedding", "source not indexed"))]
    assert len(about_run) >= 2
    for record in about_run:
        assert record["run_id"] == report.run_id and record["space"] == space
    (failed,) = [r for r in records if r["message"].startswith("source not indexed")]
    assert failed["source_id"].endswith("blank.html") and "no readable text" in failed["message"]
    assert failed["level"] == "warning" and "error" not in failed  # a cause, not a traceback


def test_server_logs_no_query_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "DEBUG")
    settings = Settings(home=tmp_path / "home", api_token=SecretStr(SECRET))
    with TestClient(create_app(settings, host="0.0.0.0")) as client:
        assert client.get(f"/?token={SECRET}", follow_redirects=False).status_code == 303
        assert client.get("/api/status", headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
    out = capsys.readouterr().err
    assert "GET / -> 303" in out and SECRET not in out
