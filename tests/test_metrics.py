"""``/metrics`` scraped around a real indexing run: the counters move by exactly what the database gained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from holocron.api import create_app
from holocron.config import Settings
from holocron.embedding.local import LocalProvider
from holocron.service import Holocron

PAGES = {
    "kettle.md": "# Kettles\n\nA kettle boils water for tea. Electric kettles switch off when the water boils.\n",
    "lighthouse.md": "# Lighthouses\n\nA lighthouse warns ships at night with a rotating lamp and a foghorn.\n",
}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture()
def holo(tmp_path: Path) -> Iterator[Holocron]:
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, text in PAGES.items():
        (pages / name).write_text(text)
    with Holocron(Settings(home=tmp_path / "home", embed_batch_size=1), provider=LocalProvider()) as h:
        h.ingest([pages])
        yield h


@pytest.mark.model
def test_metrics_move_by_what_an_index_run_wrote(holo: Holocron) -> None:
    with TestClient(create_app(holo)) as client:
        before = scrape(client)
        report = holo.index()
        after = scrape(client)
        t = holo.db.t
        with holo.db.read() as tx:
            chunks = int(tx.execute(select(func.count()).select_from(t.chunk)).scalar_one())
            embeddings = int(tx.execute(select(func.count()).select_from(t.embedding)).scalar_one())
        space = holo.space.name
        identity = holo.space

        assert chunks >= 2 and embeddings == chunks
        assert report.chunking.chunks_written == chunks
        assert value(after, "holocron_chunks_written_total") - value(before, "holocron_chunks_written_total") == chunks
        delta_embeddings = value(after, "holocron_embeddings_written_total", space=space) - value(
            before, "holocron_embeddings_written_total", space=space
        )
        assert delta_embeddings == embeddings
        labels = {"provider": identity.provider, "model": identity.model_name}
        calls = value(after, "holocron_provider_request_seconds_count", **labels) - value(
            before, "holocron_provider_request_seconds_count", **labels
        )
        assert calls == report.embedding.batches == chunks  # batch size 1: one call per chunk
        assert value(after, "holocron_provider_request_seconds_sum", **labels) > value(
            before, "holocron_provider_request_seconds_sum", **labels
        )
        assert value(after, "holocron_provider_errors_total", **labels) == value(
            before, "holocron_provider_errors_total", **labels
        )
        # Read from the database at scrape time.
        assert value(after, "holocron_index_vectors", space=space) == embeddings
        assert value(after, "holocron_chunks") == chunks
        assert value(after, "holocron_sources", status="indexed") == len(PAGES)
        assert value(after, "holocron_database_up") == 1.0

        searched = client.post("/api/search", json={"query": "boiling water", "k": 1, "mode": "vector"})
        assert searched.status_code == 200 and searched.json()["hits"][0]["title"] == "Kettles"
        later = scrape(client)
        assert (
            value(later, "holocron_search_seconds_count", mode="vector")
            - value(after, "holocron_search_seconds_count", mode="vector")
            == 1
        )
        # A rerun with nothing changed writes nothing and calls the model zero times.
        holo.index()
        rerun = scrape(client)
        assert value(rerun, "holocron_chunks_written_total") == value(later, "holocron_chunks_written_total")
        assert value(rerun, "holocron_provider_request_seconds_count", **labels) == value(
            later, "holocron_provider_request_seconds_count", **labels
        )


def test_queue_gauges_and_job_counters(tmp_path: Path) -> None:
    """Queue depth and the oldest available job's age come from the table; an API retry counts as a retry."""
    from datetime import UTC, datetime, timedelta

    from holocron.observability import metrics

    with Holocron(Settings(home=tmp_path / "home")) as holo, TestClient(create_app(holo)) as client:
        now = datetime.now(UTC)
        with holo.db.write() as tx:
            for status, age in [("NEW", 120), ("NEW", 10), ("FAILED", 50), ("DEADLETTER", 5), ("RUNNING", 1)]:
                tx.execute(
                    tx.t.job.insert().values(
                        job_type="RETRIEVE_TEST",
                        status=status,
                        input_json={},
                        max_attempts=3,
                        available_utc=now - timedelta(seconds=age),
                        created_utc=now,
                        updated_utc=now,
                    )
                )
            dead = tx.execute(select(tx.t.job.c.job_id).where(tx.t.job.c.status == "DEADLETTER")).scalar_one()
        before = scrape(client)
        assert value(before, "holocron_queue_depth", job_type="RETRIEVE_TEST") == 3
        assert value(before, "holocron_queue_available") == 3
        assert value(before, "holocron_queue_oldest_available_age_seconds") >= 120
        assert value(before, "holocron_jobs", job_type="RETRIEVE_TEST", status="DEADLETTER") == 1
        assert client.post(f"/api/jobs/{dead}/retry").status_code == 200
        after = scrape(client)
        assert (
            value(after, "holocron_job_retries_total", job_type="RETRIEVE_TEST")
            - value(before, "holocron_job_retries_total", job_type="RETRIEVE_TEST")
            == 1
        )
        assert value(after, "holocron_queue_depth", job_type="RETRIEVE_TEST") == 4
        metrics.record_job_claimed("RETRIEVE_TEST")
        metrics.record_job_deadletter("RETRIEVE_TEST")
        metrics.record_job_finished("RETRIEVE_TEST", "SUCCEEDED", 0.5)
        last = scrape(client)
        for name, labels in [
            ("holocron_job_claims_total", {"job_type": "RETRIEVE_TEST"}),
            ("holocron_job_deadletters_total", {"job_type": "RETRIEVE_TEST"}),
            ("holocron_jobs_finished_total", {"job_type": "RETRIEVE_TEST", "status": "SUCCEEDED"}),
            ("holocron_job_duration_seconds_count", {"job_type": "RETRIEVE_TEST"}),
        ]:
            assert value(last, name, **labels) - value(after, name, **labels) == 1, name


def test_worker_metrics_server(tmp_path: Path) -> None:
    """A worker's own port serves the same metrics, database gauges included."""
    import socket

    import httpx

    from holocron.observability.metrics import start_metrics_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Holocron(Settings(home=tmp_path / "home")) as holo:
        start_metrics_server(port, holo.db)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "holocron_chunks_written_total" in text and "holocron_queue_available 0.0" in text
