"""The LLM runtime over HTTP: interrogations, the llm.job queue, runs with artifacts and lineage, classified pages,
and the dashboard's LLM section, on both engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from holocron.api import create_app
from test_llm_runtime import SUCCESS_ARTIFACTS, World, drain, source_id_of, world

__all__ = ["world"]

pytestmark = pytest.mark.model


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.holo)) as c:
        yield c


def test_enqueue_run_and_read_the_answers_over_http(world: World, client: TestClient) -> None:
    keys = {i["key"] for i in client.get("/api/llm/interrogations").json()}
    assert {"page_classification", "sw_entity_facts", "entity_extraction_droid"} <= keys

    made = client.post("/api/llm/jobs", json={"interrogation": "page_classification", "all_sources": True})
    assert made.status_code == 201 and [j["created"] for j in made.json()["jobs"]] == [True, True]
    again = client.post("/api/llm/jobs", json={"interrogation": "page_classification", "all_sources": True})
    assert [j["created"] for j in again.json()["jobs"]] == [False, False]
    jobs = client.get("/api/llm/jobs", params={"status": "NEW"}).json()
    assert jobs["total"] == 2 and {j["interrogation_key"] for j in jobs["items"]} == {"page_classification"}
    job_id = jobs["items"][0]["job_id"]
    assert client.get(f"/api/llm/jobs/{job_id}").json()["status"] == "NEW"

    assert drain(world.holo).succeeded == 2
    stats = client.get("/api/llm/stats").json()
    assert stats["queue"]["totals"]["SUCCEEDED"] == 2 and stats["runs"]["SUCCEEDED"] == 2

    runs = client.get("/api/llm/runs", params={"interrogation": "page_classification"}).json()
    assert runs["total"] == 2 and {r["status"] for r in runs["items"]} == {"SUCCEEDED"}
    run_id = runs["items"][0]["run_id"]
    shown = client.get(f"/api/llm/runs/{run_id}").json()
    assert shown["parsed_output"]["primary_type"] == "fictional_character"
    assert shown["evidence"] and all(item["chunk_exists"] for item in shown["evidence"])
    artifacts = client.get(f"/api/llm/runs/{run_id}/artifacts").json()
    assert {a["artifact_type"] for a in artifacts} == SUCCESS_ARTIFACTS
    pages = client.get("/api/llm/pages").json()
    assert len(pages) == 2 and all(p["primary_type"] == "fictional_character" for p in pages)
    assert client.post("/api/llm/refresh").json() == {"jobs": []}

    page = client.get("/")
    assert page.status_code == 200
    assert 'data-testid="llm-pages">2<' in page.text and "page_classification" in page.text
    overview = client.get("/api/status").json()["llm"]
    assert overview["pages_classified"] == 2 and len(overview["runs"]) == 2


def test_bad_requests_are_refused_with_the_reason_and_store_nothing(world: World, client: TestClient) -> None:
    penny = source_id_of(world.holo, "penny.html")
    refused = [
        ({"interrogation": "no_such_question", "source_ids": [penny]}, "unknown interrogation"),
        ({"interrogation": "sw_entity_facts", "source_ids": [penny]}, "entity"),
        ({"interrogation": "page_classification", "source_ids": ["file:nope"]}, "file:nope"),
        ({"interrogation": "page_classification"}, "name the sources"),
    ]
    for body, reason in refused:
        response = client.post("/api/llm/jobs", json=body)
        assert response.status_code == 422 and reason in response.text, body
    assert client.post("/api/llm/jobs", json={"interrogation": "x", "colour": 1}).status_code == 422
    assert client.get("/api/llm/jobs").json()["total"] == 0
    assert client.get("/api/llm/jobs/999").status_code == 404
    assert client.post("/api/llm/jobs/999/retry").status_code == 404
    assert client.get("/api/llm/runs/0000-0000").status_code == 404
    assert client.get("/api/llm/runs/not-a-run-id").status_code == 422
    assert client.get("/api/llm/runs/../../etc").status_code == 404
    assert client.get("/api/llm/runs", params={"status": "BOGUS"}).status_code == 422


def test_a_dead_letter_is_shown_and_retried_from_the_api(world: World, client: TestClient) -> None:
    penny = source_id_of(world.holo, "penny.html")
    client.post("/api/llm/jobs", json={"interrogation": "page_classification", "source_ids": [penny]})
    world.script.set("text", "text", "text")
    assert drain(world.holo).deadlettered == 1
    overview = client.get("/api/status").json()["llm"]
    [dead] = overview["dead_letters"]["items"]
    assert dead["job_type"] == "page_classification" and "no valid answer" in dead["reason"]
    assert f'data-queue="llm" data-job-id="{dead["job_id"]}"' in client.get("/").text
    assert client.post(f"/api/llm/jobs/{dead['job_id']}/retry").json() == {"job_ids": [dead["job_id"]]}
    assert client.post(f"/api/llm/jobs/{dead['job_id']}/retry").status_code == 409
    assert drain(world.holo).succeeded == 1
