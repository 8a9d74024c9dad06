"""A crawl feeds the index, on both engines; a crawler killed mid-run is finished by the next one.

The replay server answers with real recordings: Arya Stark's plain-text extract, the 232 pages she links to
(Jon Snow's extract is recorded; the other 231 were not, and are answered 404).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from holocron.api import create_app
from holocron.config import Settings
from holocron.crawl.config import load_config
from holocron.embedding.local import LocalProvider
from holocron.hashing import source_id_for
from holocron.jobs.worker import Worker, WorkerOptions
from holocron.service import Holocron
from replay_server import ReplayState, replay_server, site_url
from servers import local_provider

SOURCES = """\
[crawl]
contact = "crawl-tests@example.org"
rate = {rate}
host_rate = {rate}
lease_s = {lease}
retry_base_s = 0.05
retry_cap_s = 0.5

[[sources]]
kind = "mediawiki"
name = "awoiaf"
api = "{api}"
pages = ["Arya Stark"]
variant = "extracts"
follow = ["links"]
"""


@pytest.fixture(scope="module")
def replay() -> Iterator[tuple[str, ReplayState]]:
    with replay_server() as served:
        yield served


def write_config(folder: Path, base: str, *, rate: float = 1000, lease: float = 30) -> Path:
    path = folder / "sources.toml"
    path.write_text(SOURCES.format(api=site_url(base, "awoiaf.westeros.org"), rate=rate, lease=lease))
    return path


@pytest.mark.model
def test_a_crawl_is_indexed_by_the_workers_and_found_by_search(
    db_url: str, tmp_path: Path, replay: tuple[str, ReplayState]
) -> None:
    base, state = replay
    state.reset()
    provider: LocalProvider = local_provider()
    settings = Settings(database_url=db_url, home=tmp_path / "home")  # type: ignore[call-arg]
    with Holocron(settings, provider=provider) as holo:
        crawler = holo.crawler(load_config(write_config(tmp_path, base)), max_workers=4)
        crawler.seed()
        stats = crawler.run()
        assert stats.stored == 2 and stats.failed == 231
        assert holo.overview()["crawl"]["items"] == {"completed": 3, "failed": 231}
        with TestClient(create_app(holo)) as client:
            assert 'data-testid="crawl-failed">231<' in client.get("/").text
        report = Worker(holo, WorkerOptions(worker_id="w", drain=True, handle_signals=False)).run()
        assert report.failed == 0
        hits = holo.search("Jon Snow, Lord Commander of the Night's Watch", k=3, log=False).hits
        assert hits and hits[0].source_id == source_id_for("awoiaf", "Jon Snow")
        assert {s["status"] for s in holo.sources().items} == {"indexed"}


def holocron_cli(home: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("holocron")), "--home", str(home), *args]


def status(home: Path) -> dict[str, int]:
    out = subprocess.run(holocron_cli(home, "crawl", "status", "--json"), capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)["items"])


def test_a_crawler_killed_mid_run_is_finished_by_the_next_without_duplicates(
    tmp_path: Path, replay: tuple[str, ReplayState]
) -> None:
    base, state = replay
    state.reset()
    home = tmp_path / "home"
    config = write_config(tmp_path, base, rate=10, lease=2)  # 234 items: about 23 s
    env = {**os.environ, "HOLOCRON_EMBED_PROVIDER": "ollama"}  # --no-index: no model is needed
    command = holocron_cli(home, "crawl", "--config", str(config), "--no-index", "--max-workers", "2")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while sum(status(home).get(state, 0) for state in ("completed", "failed")) < 20:
            assert process.poll() is None and time.monotonic() < deadline, "the crawl never got going"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    killed = status(home)
    assert killed.get("pending", 0) + killed.get("claimed", 0) > 0  # stopped in the middle
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 2, again.stderr  # 231 pages were never recorded: failed, with the reason
    assert status(home) == {"completed": 3, "failed": 231}
    overview = json.loads(
        subprocess.run(holocron_cli(home, "crawl", "status", "--json"), capture_output=True, text=True).stdout
    )
    assert [r["status"] for r in overview["runs"][:2]] == ["SUCCEEDED", "FAILED"]
    assert "has exited" in overview["runs"][1]["error"]
    settings = Settings(home=home)  # type: ignore[call-arg]
    with Holocron(settings, provider=local_provider()) as holo, holo.db.read() as tx:
        raw = tx.t.ingest_records
        rows = tx.execute(select(raw.c.resource_id, func.count()).group_by(raw.c.resource_id)).all()
    assert sorted(rows) == [("Arya Stark", 1), ("Jon Snow", 1)]
