"""The lake exchange: an installation's raw pages and LLM records exported, and imported into another, idempotently.

Two installations per test (A, filled through the store's own write functions, no model loaded; B, empty), on
each engine. What is checked: B gets A's raw records with identical hashes; importing twice adds nothing; one
changed page is exactly one new version; a bad line is rejected with its number while the rest is imported; and
a round trip (A to B, then B to A) adds nothing to A.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from holocron.cli.app import app
from holocron.hashing import sha256_text
from holocron.lake.exchange import (
    PARQUET_HINT,
    ExchangeError,
    ParquetUnavailableError,
    export_records,
    import_records,
    payload_sha256,
    snapshot,
)
from holocron.store.database import Database
from holocron.store.exchange import exchange_counts
from holocron.store.llm import add_artifacts_in, finish_llm_run_in, start_llm_run
from holocron.store.sources import RawRecord, register_records

FETCHED = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
PAGES = {
    ("files", "notes/tea.md", "file:///srv/notes/tea.md"): "# Tea\n\nGreen tea is steamed soon after picking.\n",
    ("mediawiki:en.wikipedia.org", "Chess", "https://en.wikipedia.org/w/api.php?page=Chess"): (
        '{"parse": {"title": "Chess", "text": "Chess is a board game for two players."}}'
    ),
    ("web", "example.org/bees", "https://example.org/bees"): "<html><p>Honey bees dance.</p></html>",
}


# --- installations -------------------------------------------------------------------------------------------


def raw(system: str, resource_id: str, uri: str, text: str, *, at: datetime = FETCHED) -> RawRecord:
    return RawRecord(
        source_system=system,
        resource_id=resource_id,
        request_uri=uri,
        source_type="text",
        content_type="text/plain",
        payload=text,
        content_sha256=sha256_text(text),
        fetched_at_utc=at,
    )


def add_llm_run(db: Database) -> str:
    run_id = start_llm_run(
        db,
        job_id=None,
        interrogation_key="page_classification",
        interrogation_version="1",
        worker_id="w1",
        options={"temperature": 0},
    )
    answer = {"primary_type": "game", "confidence": 0.9}
    with db.write() as tx:
        add_artifacts_in(
            tx,
            run_id,
            [
                {
                    "artifact_type": "prompt_text",
                    "content_json": None,
                    "content_ref": "file:///lake/llm_runs/x/prompt.txt",
                    "content_sha256": sha256_text("the prompt"),
                    "byte_count": 10,
                },
                {
                    "artifact_type": "parsed_output",
                    "content_json": answer,
                    "content_ref": None,
                    "content_sha256": payload_sha256(answer),
                    "byte_count": 40,
                },
            ],
        )
        finish_llm_run_in(
            tx,
            run_id,
            status="SUCCEEDED",
            model={"provider": "local", "model_name": "smollm2", "model_tag": "q8", "model_digest": "abc"},
            metrics={"tokens": 12},
            error=None,
        )
    return run_id


def fill(db: Database) -> None:
    register_records(db, [raw(*key, text) for key, text in PAGES.items()])
    add_llm_run(db)


@pytest.fixture()
def other_url(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:  # a second, empty database on the same engine
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'b' / 'holocron.db'}"
        return
    new_database: Callable[..., AbstractContextManager[str]] = request.getfixturevalue("new_pg_database")
    with new_database() as url:
        yield url


@pytest.fixture()
def a(db: Database) -> Database:
    fill(db)
    return db


@pytest.fixture()
def b(other_url: str) -> Iterator[Database]:
    database = Database(other_url)
    database.upgrade()
    yield database
    database.dispose()


def raw_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as tx:
        r = tx.t.ingest_records
        query = select(
            r.c.source_system,
            r.c.resource_id,
            r.c.hash_sha256,
            r.c.payload,
            r.c.content_type,
            r.c.content_length,
            r.c.request_uri,
            r.c.fetched_at_utc,
        ).order_by(r.c.source_system, r.c.resource_id, r.c.hash_sha256)
        return [tuple(row) for row in tx.execute(query)]


def lake_rows(db: Database) -> int:
    with db.read() as tx:
        return int(tx.execute(select(func.count()).select_from(tx.t.raw_exchange_record)).scalar_one())


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- tests ---------------------------------------------------------------------------------------------------


def test_the_snapshot_names_every_record_by_its_natural_key(a: Database) -> None:
    records = list(snapshot(a, batch_size=2))
    kinds = {r.natural_key: r.exchange_type for r in records}
    assert {k: v for k, v in kinds.items() if not k.startswith("llm")} == {
        "files:notes/tea.md": "file",
        "mediawiki:en.wikipedia.org:Chess": "mediawiki",
        "web:example.org/bees": "http",
    }
    with a.read() as tx:
        run_id = tx.execute(select(tx.t.llm_run.c.run_id)).scalar_one()
    assert {k: v for k, v in kinds.items() if k.startswith("llm")} == {
        f"llm:{run_id}:prompt_text": "llm",
        f"llm:{run_id}:parsed_output": "llm",
        f"llm-run:{run_id}": "llm",
    }
    artifact = next(r for r in records if r.natural_key.endswith(":parsed_output"))
    assert artifact.payload["content_json"] == {"primary_type": "game", "confidence": 0.9}
    assert artifact.payload["interrogation_key"] == "page_classification"
    assert artifact.payload["model_name"] == "smollm2"
    assert all(r.content_sha256 == payload_sha256(r.payload) for r in records)
    assert [r.exchange_type for r in snapshot(a, types=["llm"])] == ["llm"] * 3
    with pytest.raises(ExchangeError, match="unknown exchange type bogus"):
        list(snapshot(a, types=["bogus"]))


def test_an_empty_installation_gets_the_raw_pages_and_importing_twice_adds_nothing(
    a: Database, b: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "a.jsonl"
    exported = export_records(a, path)
    assert exported.exported == 6 and exported.recorded == 6
    assert exported.by_type == {"file": 1, "mediawiki": 1, "http": 1, "llm": 3}
    assert len(lines(path)) == 6 and set(lines(path)[0]) == {
        "exchange_type",
        "natural_key",
        "content_sha256",
        "source_entity",
        "observed_at_utc",
        "payload",
    }
    assert lake_rows(a) == 6
    assert export_records(a, path).recorded == 0 and lake_rows(a) == 6  # same snapshot: recorded once
    assert [p.name for p in folder.iterdir()] == ["a.jsonl"]  # no temporary file left behind

    first = import_records(b, path)
    assert (first.read, first.new, first.new_versions, first.unchanged, first.rejected) == (6, 6, 0, 0, 0)
    assert first.ingest_records_created == 3
    assert raw_rows(b) == raw_rows(a)  # identical hashes, payloads and fetch times
    assert lake_rows(b) == 6

    again = import_records(b, path)
    assert (again.imported, again.unchanged, again.ingest_records_created) == (0, 6, 0)
    assert raw_rows(b) == raw_rows(a) and lake_rows(b) == 6  # zero duplicates
    with b.read() as tx:
        assert exchange_counts(tx) == {"file": 1, "mediawiki": 1, "http": 1, "llm": 3}
        assert tx.execute(select(func.count()).select_from(tx.t.llm_run)).scalar_one() == 0  # lake rows only


def test_a_changed_page_is_exactly_one_new_version(a: Database, b: Database, tmp_path: Path) -> None:
    import_records(b, export_records(a, tmp_path / "first.jsonl").path)
    key = ("web", "example.org/bees", "https://example.org/bees")
    changed = register_records(a, [raw(*key, "<html><p>Bees dance, then sleep.</p></html>", at=FETCHED + timedelta(1))])
    assert changed.changed == ["web:example.org/bees"]

    second = export_records(a, tmp_path / "second.jsonl")
    assert (second.exported, second.recorded, second.already_recorded) == (7, 1, 6)
    report = import_records(b, tmp_path / "second.jsonl")
    assert (report.new, report.new_versions, report.unchanged) == (0, 1, 6)
    assert report.ingest_records_created == 1
    assert raw_rows(b) == raw_rows(a) and len(raw_rows(b)) == 4
    assert lake_rows(b) == 7


def test_a_bad_line_is_rejected_with_its_number_and_the_rest_is_imported(
    a: Database, b: Database, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    export_records(a, path)
    text = path.read_text(encoding="utf-8").splitlines()
    edited = json.loads(text[3])
    edited["payload"]["extra"] = "tampered"  # its hash no longer matches
    text[1] = text[1][: len(text[1]) // 2]  # cut short
    text[3] = json.dumps(edited)
    text.append('{"exchange_type": "ftp", "natural_key": "x"}')
    path.write_text("\n".join(text) + "\n\n", encoding="utf-8")

    report = import_records(b, path)
    assert report.rejected == 3 and report.read == 4 and report.new == 4
    reasons = {r.line: r.reason for r in report.rejections}
    assert set(reasons) == {2, 4, 7}
    assert reasons[2].startswith("not JSON")
    assert "content_sha256 does not match the payload" in reasons[4]
    assert "missing" in reasons[7] or "unknown exchange_type" in reasons[7]
    assert report.as_json()["rejections"][0] == {"line": 2, "reason": reasons[2]}
    assert lake_rows(b) == 4


def test_a_round_trip_adds_nothing(a: Database, b: Database, tmp_path: Path) -> None:
    import_records(b, export_records(a, tmp_path / "a.jsonl").path)
    before = (raw_rows(a), lake_rows(a))
    back = export_records(b, tmp_path / "b.jsonl")
    assert back.exported == 6 and back.recorded == 0  # B's own snapshot is what it imported
    report = import_records(a, tmp_path / "b.jsonl")
    assert (report.imported, report.unchanged, report.ingest_records_created, report.rejected) == (0, 6, 0, 0)
    assert (raw_rows(a), lake_rows(a)) == before


def test_exchange_errors_are_clear(a: Database, tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match="no such file"):
        import_records(a, tmp_path / "absent.jsonl")
    with pytest.raises(ExchangeError, match="a folder"):
        import_records(a, tmp_path)
    with pytest.raises(ExchangeError, match="no such folder"):
        export_records(a, tmp_path / "missing" / "a.jsonl")
    with pytest.raises(ExchangeError, match="unknown format"):
        export_records(a, tmp_path / "a.csv", fmt="csv")


def test_parquet_round_trips(a: Database, b: Database, tmp_path: Path) -> None:
    """pyarrow is installed with the test extras (``parquet``): the format is exercised, never skipped."""
    path = tmp_path / "a.parquet"
    assert export_records(a, path, fmt="parquet").exported == 6
    report = import_records(b, path)
    assert (report.format, report.new, report.rejected) == ("parquet", 6, 0)
    assert raw_rows(b) == raw_rows(a)
    assert import_records(b, path).new == 0


def test_parquet_without_its_extra_is_refused_with_the_install_line(
    a: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed: importing it fails
    path = tmp_path / "a.parquet"
    with pytest.raises(ParquetUnavailableError) as caught:
        export_records(a, path, fmt="parquet")
    assert PARQUET_HINT in str(caught.value) and "pyarrow" in str(caught.value)
    assert not path.exists() and lake_rows(a) == 0  # refused before anything was read or written


# --- the command line ----------------------------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("HOLOCRON_", "OLLAMA_", "OPENAI_")) and name != "HOLOCRON_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOLOCRON_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(tmp_path)


def run_cli(url: str, home: Path, *args: str, code: int = 0) -> Any:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, ["--database-url", url, "--home", str(home), *args])
    finally:  # the command pointed the root logger at CliRunner's stderr
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == code, f"exit {result.exit_code} (wanted {code}):\n{result.output}"
    return result


@pytest.mark.usefixtures("clean_env")
def test_cli_export_and_import(a: Database, db_url: str, other_url: str, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    exported = json.loads(run_cli(db_url, tmp_path / "ha", "lake", "export", str(path), "--json").stdout)
    assert exported["exported"] == 6 and exported["recorded"] == 6 and exported["format"] == "jsonl"
    only_llm = tmp_path / "llm.jsonl"
    run_cli(db_url, tmp_path / "ha", "lake", "export", str(only_llm), "--type", "llm")
    assert {line["exchange_type"] for line in lines(only_llm)} == {"llm"}

    imported = json.loads(run_cli(other_url, tmp_path / "hb", "lake", "import", str(path), "--json").stdout)
    assert (imported["new"], imported["ingest_records_created"], imported["rejected"]) == (6, 3, 0)
    again = json.loads(run_cli(other_url, tmp_path / "hb", "lake", "import", str(path), "--json").stdout)
    assert (again["imported"], again["unchanged"]) == (0, 6)
    human = run_cli(other_url, tmp_path / "hb", "lake", "import", str(path)).stdout
    assert "imported 0 of 6 records" in human

    missing = run_cli(other_url, tmp_path / "hb", "lake", "import", str(tmp_path / "absent.jsonl"), code=1)
    error_lines = missing.stderr.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("error: ") and "no such file" in error_lines[0]
    bad_type = run_cli(db_url, tmp_path / "ha", "lake", "export", str(path), "--type", "ftp", code=2)
    assert "ftp" in bad_type.stderr
