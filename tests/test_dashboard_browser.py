"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright).

It opens the page on a database with jobs in every state, checks the numbers shown against the database,
retries a dead-lettered job with its button, watches the page refresh without a reload, runs a search and saves
a screenshot. Without Chromium or Playwright it skips when pytest is run by hand, and fails under CI and ``make test``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import func, select

from conftest import strict_run
from holocron.api import create_app
from holocron.config import Settings
from holocron.service import Holocron
from holocron.vocabulary import JOB_STATUSES
from test_api import PAGES, HashProvider, add_jobs

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _need(reason: str) -> None:
    if strict_run():
        pytest.fail(f"{reason}: the browser test must run under CI and make test")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_api() -> Any:
    if not CHROMIUM.exists():
        _need(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        _need("playwright is not installed (pip install playwright==1.65.2; never `playwright install`)")
    return sync_api


@pytest.fixture()
def holo(tmp_path: Path) -> Iterator[Holocron]:
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, text in PAGES.items():
        (pages / name).write_text(text)
    with Holocron(Settings(home=tmp_path / "home", embed_batch_size=8), provider=HashProvider()) as h:
        h.ingest([pages])
        h.index()
        yield h


@pytest.fixture()
def server(holo: Holocron) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(holo), host="127.0.0.1", port=port, log_level="warning", log_config=None)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def db_counts(holo: Holocron) -> dict[str, int]:
    j = holo.db.t.job
    with holo.db.read() as tx:
        found = dict(tx.execute(select(j.c.status, func.count()).group_by(j.c.status)).all())
    return {status: int(found.get(status, 0)) for status in JOB_STATUSES}


def test_dashboard_in_chromium(sync_api: Any, holo: Holocron, server: str, tmp_path: Path) -> None:
    ids = add_jobs(holo, holo.space.embedding_space_id)
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server + "/")

            # Every number on the page is the database's.
            counts = db_counts(holo)
            assert counts["DEADLETTER"] == 2 and all(counts.values())
            for status, n in counts.items():
                expect(page.get_by_test_id(f"queue-status-{status}")).to_have_text(str(n))
            expect(page.get_by_test_id("queue-depth")).to_have_text(str(counts["NEW"] + counts["FAILED"]))
            expect(page.get_by_test_id("deadletter-total")).to_have_text("2")
            expect(page.get_by_test_id("coverage-count")).to_have_text("3 / 3")
            expect(page.get_by_test_id("sources-total")).to_have_text("3")
            expect(page.get_by_test_id("chunks-total")).to_have_text("3")
            expect(page.locator("#deadletters")).to_contain_text("extraction failed")
            expect(page.locator("#runs-body")).to_contain_text("SUCCEEDED")

            # Retry a dead letter with its button: the database changes and so does the page.
            dead = ids["DEADLETTER"]
            page.locator(f'#deadletters button.retry[data-job-id="{dead}"]').click()
            expect(page.get_by_test_id("deadletter-total")).to_have_text("1")
            expect(page.get_by_test_id("queue-status-NEW")).to_have_text(str(counts["NEW"] + 1))
            assert db_counts(holo)["DEADLETTER"] == 1
            with holo.db.read() as tx:
                assert (
                    tx.execute(select(holo.db.t.job.c.status).where(holo.db.t.job.c.job_id == dead)).scalar() == "NEW"
                )

            # Work done elsewhere shows up without a reload (the page polls /api/status).
            page.evaluate("window.__marker = 'same page'")
            now = datetime.now(UTC)
            with holo.db.write() as tx:
                tx.execute(
                    holo.db.t.job.insert().values(
                        job_type="RETRIEVE_TEST",
                        status="CANCELLED",
                        input_json={},
                        max_attempts=1,
                        available_utc=now,
                        created_utc=now,
                        updated_utc=now,
                        completed_utc=now,
                    )
                )
            expect(page.get_by_test_id("queue-status-CANCELLED")).to_have_text(
                str(counts["CANCELLED"] + 1), timeout=10_000
            )
            expect(page.get_by_test_id("queue-type-RETRIEVE_TEST")).to_be_visible()
            assert page.evaluate("window.__marker") == "same page"

            # Search: hits with scores and links to their sources.
            page.fill("#search-query", "green tea picking")
            page.click("#search-form button[type=submit]")
            first = page.locator("#search-results li").first
            expect(first).to_contain_text("Tea")
            score = float(first.locator(".score").inner_text())
            assert 0 < score <= 1.0001
            link = first.locator("a")
            assert link.get_attribute("href").startswith("/api/sources/")
            expect(page.locator("#search-status")).to_contain_text("hits in")

            assert not errors, errors
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            out = REPO / "test-output"
            out.mkdir(exist_ok=True)
            shutil.copy(shot, out / "dashboard.png")
        finally:
            browser.close()
