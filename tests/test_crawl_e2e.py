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
    log_path = tmp_path / "crawl.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while sum(status(home).get(state, 0) for state in ("completed", "failed")) < 20:
            assert process.poll() is None and time.monotonic() < deadline, (
                f"the crawl never got going: {log_path.read_text()[-3000:]}"
            )
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


def test_crawlers_on_two_machines_share_one_crawl_and_obey_one_drain(
    pg_url: str, tmp_path: Path, replay: tuple[str, ReplayState]
) -> None:
    """Two crawler processes (two machines) on one PostgreSQL: every page asked once, both doing the work; a
    drain written by a third process stops both, and a later run finishes the crawl without duplicates."""
    base, state = replay
    state.reset()
    config = write_config(tmp_path, base, rate=10)  # 10 a second each: about 12 s for the two together
    env = {**os.environ, "HOLOCRON_EMBED_PROVIDER": "ollama", "HOLOCRON_DATABASE_URL": pg_url}
    homes = [tmp_path / f"machine-{n}" for n in range(3)]

    def cli(home: Path, *args: str) -> list[str]:
        return holocron_cli(home, *args)

    def pg_status() -> dict[str, int]:
        out = subprocess.run(cli(homes[2], "crawl", "status", "--json"), capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout)["items"])

    # One seeds; both crawl (the second's seeding finds every seed known: a no-op).
    crawl_args = ("crawl", "--config", str(config), "--no-index", "--max-workers", "2")
    logs = [tmp_path / f"crawler-{n}.log" for n in range(2)]
    processes = []
    for home, log_path in zip(homes[:2], logs, strict=True):
        with log_path.open("w") as log:
            processes.append(subprocess.Popen(cli(home, *crawl_args), stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        deadline = time.monotonic() + 60
        while sum(pg_status().get(s, 0) for s in ("completed", "failed")) < 40:
            assert all(p.poll() is None for p in processes), [log.read_text()[-2000:] for log in logs]
            assert time.monotonic() < deadline, "the crawl never got going"
            time.sleep(0.2)
        drained = subprocess.run(cli(homes[2], "crawl", "drain"), capture_output=True, text=True, env=env)
        assert drained.returncode == 0, drained.stderr
        for process in processes:
            process.wait(timeout=30)  # both machines obeyed the one drain
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    stopped = pg_status()
    assert stopped.get("pending", 0) > 0 and stopped.get("claimed", 0) == 0  # in the middle, nothing held
    assert subprocess.run(cli(homes[2], "crawl", "resume"), env=env, capture_output=True).returncode == 0
    finish = subprocess.run(cli(homes[2], *crawl_args), capture_output=True, text=True, env=env, timeout=120)
    assert finish.returncode == 2, finish.stderr  # the 231 pages never recorded failed, with their reason
    assert pg_status() == {"completed": 3, "failed": 231}

    requests = state.requests_to("/awoiaf.westeros.org/")
    asked = [(r.params.get("prop"), r.params["titles"]) for r in requests if "titles" in r.params]
    # Arya Stark's page and her links, then the 232 pages she links to: each request made once, by one machine.
    assert len(asked) == len(set(asked)) == 234
    settings = Settings(database_url=pg_url, home=homes[2])  # type: ignore[call-arg]
    with Holocron(settings, provider=local_provider()) as holo, holo.db.read() as tx:
        items, raw = tx.t.work_items, tx.t.ingest_records
        owners = set(tx.execute(select(items.c.locked_by).where(items.c.locked_by.is_not(None))).scalars())
        stored = tx.execute(select(raw.c.resource_id, func.count()).group_by(raw.c.resource_id)).all()
    assert len(owners) == 3  # items finished by each of the two crawlers, then by the third run
    assert sorted(stored) == [("Arya Stark", 1), ("Jon Snow", 1)]
