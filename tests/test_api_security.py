"""The API's defences, through the real app (TestClient) and real uvicorn: Host and Origin checks, security
headers and the page's Content-Security-Policy in Chromium, the body size limit, tokens (strength, rate-limited
failures), no local paths in responses, and 4xx (never 500) for unknown runs, odd bodies, huge integers and NUL.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from holocron.api import create_app
from holocron.api.auth import AuthConfigError, LoginLimiter
from holocron.api.models import LocalPaths
from holocron.cli.app import app as cli_app
from holocron.service import Holocron
from servers import UvicornThread
from test_api import add_jobs, indexed_holocron
from test_dashboard_browser import CHROMIUM, LAUNCH_ARGS, _need

BASE = "http://127.0.0.1:8765"
TOKEN = "a-token-that-is-long-enough"
JSON = {"Content-Type": "application/json"}


@pytest.fixture()
def holo(tmp_path: Path) -> Iterator[Holocron]:
    with indexed_holocron(tmp_path) as h:
        yield h


@pytest.fixture()
def engine_holo(db_url: str, tmp_path: Path) -> Iterator[Holocron]:
    """The indexed pages on each engine in turn."""
    with indexed_holocron(tmp_path, db_url) as h:
        yield h


@pytest.fixture(scope="module")
def playwright() -> Any:
    """Playwright's sync API over Debian's Chromium (as the dashboard's own browser test)."""
    if not CHROMIUM.exists():
        _need(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        _need("playwright is not installed (pip install playwright==1.65.2; never `playwright install`)")
    return sync_api


@pytest.fixture()
def client(holo: Holocron) -> Iterator[TestClient]:
    with TestClient(create_app(holo), base_url=BASE) as c:
        yield c


@pytest.fixture()
def engine_client(engine_holo: Holocron) -> Iterator[TestClient]:
    with TestClient(create_app(engine_holo), base_url=BASE) as c:
        yield c


def with_settings(holo: Holocron, **changes: Any) -> Holocron:
    holo.settings = holo.settings.model_copy(update=changes)
    return holo


def job_status(client: TestClient, job_id: int) -> str:
    status: str = client.get(f"/api/jobs/{job_id}").json()["status"]
    return status


# --- Host: DNS rebinding ----------------------------------------------------------------------------------------


def test_foreign_host_is_refused(client: TestClient, holo: Holocron) -> None:
    ids = add_jobs(holo, holo.space.embedding_space_id)
    evil = {"Host": "attacker.example:8765"}
    refused = client.get("/api/status", headers=evil)
    assert refused.status_code == 421
    assert "attacker.example" in refused.json()["detail"] and "127.0.0.1:8765" in refused.json()["detail"]
    assert "queue" not in refused.text
    assert client.post(f"/api/jobs/{ids['NEW']}/cancel", headers=evil).status_code == 421
    assert job_status(client, ids["NEW"]) == "NEW"
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST:8765"):
        assert client.get("/api/status", headers={"Host": host}).status_code == 200, host
    for host in ("localhost:9999", "localhost", "127.0.0.1.attacker.example:8765", "localhost:8765@evil", ""):
        assert client.get("/health", headers={"Host": host}).status_code in (400, 421), host


def test_allowed_hosts_setting(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_allowed_hosts=["holocron.example", "lan-box:8765"]))
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/api/status", headers={"Host": "holocron.example"}).status_code == 200
        assert c.get("/api/status", headers={"Host": "lan-box:8765"}).status_code == 200
        assert c.get("/api/status", headers={"Host": "lan-box:9000"}).status_code == 421
    with pytest.raises(AuthConfigError, match="api_allowed_hosts"):
        create_app(with_settings(holo, api_allowed_hosts=["http://x/"]))


def test_host_check_over_real_http(holo: Holocron) -> None:
    server = UvicornThread(create_app(holo))
    try:
        for host, status in [(f"127.0.0.1:{server.port}", 200), (f"localhost:{server.port}", 200), ("evil.test", 421)]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/api/status", headers={"Host": host})
            response = conn.getresponse()
            assert response.status == status, host
            response.read()
            conn.close()
    finally:
        server.stop()


# --- Origin: cross-site requests --------------------------------------------------------------------------------


def test_cross_site_state_changes_are_refused(client: TestClient, holo: Holocron) -> None:
    ids = add_jobs(holo, holo.space.embedding_space_id)
    new, dead = ids["NEW"], ids["DEADLETTER"]
    for headers in (
        {"Origin": "http://attacker.example"},
        {"Origin": "http://localhost:8765"},  # another origin of the same machine
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": f"{BASE}", "Sec-Fetch-Site": "same-site"},
    ):
        refused = client.post(f"/api/jobs/{new}/cancel", headers=headers)
        assert refused.status_code == 403, headers
        assert "cross-site" in refused.json()["detail"]
        assert client.post(f"/api/jobs/{dead}/retry", headers=headers).status_code == 403
        assert client.delete("/api/sources/files:pages/tea.md", headers=headers).status_code == 403
    assert job_status(client, new) == "NEW" and job_status(client, dead) == "DEADLETTER"
    assert client.get("/api/sources/files:pages/tea.md").status_code == 200
    # A cross-site GET reads nothing it could not read anyway, and changes nothing: it is answered.
    assert client.get("/api/status", headers={"Origin": "http://attacker.example"}).status_code == 200
    # The dashboard's own requests, and clients that are not browsers.
    same = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"/api/jobs/{new}/cancel", headers=same).json() == {"job_ids": [new]}
    assert client.post(f"/api/jobs/{dead}/retry").json() == {"job_ids": [dead]}


def test_login_form_refuses_other_origins(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0")
    with TestClient(app, base_url=BASE) as c:
        forged = c.post("/login", data={"token": TOKEN}, headers={"Origin": "http://attacker.example"})
        assert forged.status_code == 403 and "holocron_session" not in forged.headers.get("set-cookie", "")
        own = c.post("/login", data={"token": TOKEN}, headers={"Origin": BASE}, follow_redirects=False)
        assert own.status_code == 303 and "holocron_session" in own.headers["set-cookie"]


# --- headers on every response ----------------------------------------------------------------------------------


def test_security_headers_on_every_response(client: TestClient) -> None:
    responses = {
        "dashboard": client.get("/"),
        "json": client.get("/api/status"),
        "script": client.get("/static/dashboard.js"),
        "missing": client.get("/api/runs/nope"),
        "no route": client.get("/nowhere"),
        "invalid": client.post("/api/search", json={"k": 0}),
        "wrong method": client.put("/api/search"),
        "foreign host": client.get("/api/status", headers={"Host": "attacker.example"}),
        "cross site": client.post("/api/jobs/1/cancel", headers={"Origin": "http://attacker.example"}),
        "metrics": client.get("/metrics"),
        "docs": client.get("/docs"),
    }
    for what, response in responses.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["x-frame-options"] == "DENY", what
        assert headers["referrer-policy"] == "no-referrer", what
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, what
        if what != "docs":
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp, what


def test_dashboard_has_no_inline_script_or_style(client: TestClient) -> None:
    """What the policy would block: executable inline scripts, style attributes, inline handlers."""
    page = client.get("/").text
    assert "style=" not in page and " onclick=" not in page and "<style" not in page
    for tag in page.split("<script")[1:]:
        head = tag.split(">", 1)[0]
        assert "src=" in head or 'type="application/json"' in head, head


@pytest.mark.browser
def test_dashboard_works_under_its_policy_in_chromium(playwright: Any, holo: Holocron) -> None:
    server = UvicornThread(create_app(holo))
    try:
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                page = browser.new_page()
                console: list[str] = []
                errors: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                response = page.goto(server.url + "/")
                assert "script-src 'self'" in response.headers["content-security-policy"]
                bar = page.locator("#spaces-body .bar > div").first
                playwright.expect(bar).to_have_attribute("style", "width: 100%;")
                page.fill("#search-query", "green tea picking")
                page.click("#search-form button[type=submit]")
                playwright.expect(page.locator("#search-results li").first).to_contain_text("Tea")
                refused = [line for line in console if "Content Security Policy" in line]
                assert not refused and not errors, (refused, errors)
            finally:
                browser.close()
    finally:
        server.stop()


# --- request size -----------------------------------------------------------------------------------------------


def test_body_size_limit(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_max_body_bytes=1024))
    big = {"query": "tea " * 600}
    with TestClient(app, base_url=BASE) as c:
        assert c.post("/api/search", json={"query": "tea"}).status_code == 200
        declared = c.post("/api/search", json=big)
        assert declared.status_code == 413 and "1,024" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
            yield json.dumps(big).encode()

        streamed = c.post("/api/search", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        assert c.post("/login", content=b"token=" + b"x" * 2000).status_code == 413


def test_oversized_body_is_refused_before_it_is_sent(holo: Holocron) -> None:
    """Over real HTTP: the server answers 413 on the headers alone; the 10 MiB body is never sent."""
    server = UvicornThread(create_app(holo))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                (
                    f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
                ).encode()
            )
            answer = sock.recv(65536).decode("latin-1")
        assert answer.startswith("HTTP/1.1 413"), answer
        assert "x-content-type-options: nosniff" in answer.lower()
    finally:
        server.stop()


# --- tokens -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "needle"),
    [
        ("   ", "blank"),
        ("\t\n", "blank"),
        ("short", "at least 16"),
        ("x" * 15, "at least 16"),
        (" " + "x" * 20, "whitespace"),
        ("x" * 20 + "\n", "whitespace"),
    ],
)
def test_weak_tokens_are_refused_at_start(token: str, needle: str, holo: Holocron) -> None:
    for host in ("127.0.0.1", "0.0.0.0"):
        with pytest.raises(AuthConfigError, match=needle):
            create_app(with_settings(holo, api_token=SecretStr(token)), host=host)


def test_serve_exits_on_a_weak_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOCRON_CONFIG", str(tmp_path / "absent.toml"))
    for name, token in (("short", "abc"), ("blank", "        ")):
        monkeypatch.setenv("HOLOCRON_API_TOKEN", token)
        result = CliRunner().invoke(cli_app, ["--home", str(tmp_path / name), "serve", "--port", "1"])
        assert result.exit_code != 0, result.output
        assert "HOLOCRON_API_TOKEN" in result.output and "refusing to serve" in result.output, result.output


def test_health_and_ready_need_no_token(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0")
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").json()["ready"] is True
        assert c.get("/api/status").status_code == 401


def test_failed_logins_are_rate_limited(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0")
    good = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app, base_url=BASE, client=("198.51.100.1", 5000)) as c:
        for _ in range(5):
            assert c.get("/api/status", headers={"Authorization": "Bearer guess"}).status_code == 401
        limited = c.get("/api/status", headers={"Authorization": "Bearer guess"})
        assert limited.status_code == 429 and "too many failed logins" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert c.get("/api/status", headers=good).status_code == 429  # even the right token, from there
        assert c.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 429
        assert c.get("/health").status_code == 200
    other = TestClient(app, base_url=BASE, client=("198.51.100.2", 5000))
    assert other.get("/api/status", headers=good).status_code == 200
    with TestClient(app, base_url=BASE, client=("198.51.100.3", 5000)) as browser:
        for _ in range(5):
            assert browser.post("/login", data={"token": "guess"}).status_code == 401
        form = browser.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert form.status_code == 429 and "too many failed sign-ins" in form.text
        assert 1 <= int(form.headers["retry-after"]) <= 60
        assert "holocron_session" not in form.headers.get("set-cookie", "")


def test_login_limiter_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(attempts=5, window_s=60, clock=lambda: now[0])
    for step in range(5):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
        now[0] += 10 if step < 4 else 0
    assert limiter.retry_after("a") == 20  # the first failure (t=1000) leaves the window at t=1060
    assert limiter.retry_after("b") is None
    now[0] = 1060.0
    assert limiter.retry_after("a") is None  # four failures left in the window: one more try
    limiter.failed("a")
    assert limiter.retry_after("a") == 10
    limiter.succeeded("a")
    assert limiter.retry_after("a") is None


def test_token_comparison_takes_any_candidate(holo: Holocron) -> None:
    auth = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0").state.holocron_server.auth
    assert auth.token_ok(TOKEN)
    for candidate in ("", "a", TOKEN[:-1], TOKEN + "x", "é" * 40, "\udcff" * 3, TOKEN.upper()):
        assert not auth.token_ok(candidate), candidate


# --- no local paths ---------------------------------------------------------------------------------------------


def test_no_absolute_paths_in_responses(engine_client: TestClient, engine_holo: Holocron, tmp_path: Path) -> None:
    c = engine_client
    add_jobs(engine_holo, engine_holo.space.embedding_space_id)
    run_id = c.get("/api/runs").json()["items"][0]["run_id"]
    search = c.post("/api/search", json={"query": "green tea", "k": 3})
    responses = [
        c.get("/api/sources"),
        c.get("/api/sources/files:pages/tea.md"),
        c.get("/api/runs"),
        c.get(f"/api/runs/{run_id}"),
        search,
        c.post("/api/evidence", json={"question": "how do bees talk"}),
        c.get("/api/status"),
        c.get("/api/jobs"),
        c.get("/"),
    ]
    for response in responses:
        assert response.status_code == 200, response.url
        assert str(tmp_path) not in response.text and "file:" not in response.text, response.url
    source = c.get("/api/sources/files:pages/tea.md").json()
    assert source["source_ref"] == {"uri": "pages/tea.md", "resource_id": "pages/tea.md"}  # outside the home
    assert search.json()["hits"][0]["source_ref"]["uri"] == "pages/tea.md"
    artifacts = c.get(f"/api/runs/{run_id}").json()["artifacts"]
    assert {a["uri"] for a in artifacts} == {  # inside the home: relative to it
        f"lake/vector_runs/{run_id}/artifacts/chunk_manifest.json",
        f"lake/vector_runs/{run_id}/artifacts/embedding_manifest.json",
    }
    # The store keeps the full location; only the API's answer is rewritten.
    stored = engine_holo.source("files:pages/tea.md")
    assert stored is not None and stored["source_ref"]["uri"].startswith("file://")


def test_local_paths_rules(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = LocalPaths.of(home, tmp_path / "lake")
    assert paths.location((home / "lake" / "a.json").as_uri()) == "lake/a.json"
    assert paths.location((tmp_path / "lake" / "b.json").as_uri()) == "b.json"
    assert paths.location("file:///elsewhere/corpus/a.html") == "a.html"
    assert paths.location("file:///elsewhere/corpus/a.html", "corpus/a.html") == "corpus/a.html"
    assert paths.location("https://example.com/a") == "https://example.com/a"
    ref = {"uri": "file:///srv/x/a.md", "resource_id": "x/a.md", "url": "https://e.com/a", "note": "/api/x"}
    assert paths.public(ref) == {"uri": "x/a.md", "resource_id": "x/a.md", "url": "https://e.com/a", "note": "/api/x"}
    error = f"cannot read {(home / 'raw' / 'z.pdf').as_uri()} nor {home}/raw/y.pdf"
    assert paths.public({"error": error}) == {"error": "cannot read raw/z.pdf nor raw/y.pdf"}
    assert paths.text(f"in {home}: full; {home}2/x stays") == f"in .: full; {home}2/x stays"


# --- 4xx, never 500 ---------------------------------------------------------------------------------------------


def test_unknown_run_id_is_a_clear_4xx(engine_client: TestClient) -> None:
    for path, body in (("/api/search", {"query": "tea"}), ("/api/evidence", {"question": "tea"})):
        response = engine_client.post(path, json={**body, "run_id": "no-such-run"})
        assert response.status_code == 422, response.text
        assert "run_id" in response.json()["detail"] and "no-such-run" in response.json()["detail"]
    run_id = engine_client.get("/api/runs").json()["items"][0]["run_id"]
    assert engine_client.post("/api/search", json={"query": "tea", "run_id": run_id}).status_code == 200


def test_bodies_that_are_not_json(engine_client: TestClient) -> None:
    for content_type, body in (
        ("text/plain", b"\xff\xfe not utf-8"),
        ("application/x-www-form-urlencoded", b"query=tea&k=3"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--"),
        ("application/octet-stream", bytes(range(256))),
        ("application/json", b"\xff{"),
        ("application/json", b"[" * 50_000 + b"]" * 50_000),
        ("", b"query"),
    ):
        for path in ("/api/search", "/api/evidence", "/api/jobs"):
            response = engine_client.post(path, content=body, headers={"Content-Type": content_type})
            assert 400 <= response.status_code < 500, (path, content_type, response.status_code)
            assert response.json()["detail"]


def test_huge_integers_are_a_4xx(engine_client: TestClient, engine_holo: Holocron) -> None:
    huge = 2**64
    space_id = engine_holo.space.embedding_space_id
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/jobs/{huge}", {}),
        ("POST", f"/api/jobs/{huge}/retry", {}),
        ("POST", f"/api/jobs/{huge}/cancel", {}),
        ("GET", "/api/sources", {"params": {"offset": huge}}),
        ("GET", "/api/jobs", {"params": {"limit": huge}}),
        ("GET", "/api/runs", {"params": {"job_id": huge}}),
        ("GET", "/api/spaces", {"params": {"offset": -huge}}),
        ("POST", "/api/search", {"json": {"query": "tea", "k": huge}}),
        ("POST", "/api/evidence", {"json": {"question": "tea", "max_items": huge}}),
        ("POST", "/api/jobs", {"json": {"job_type": "CHUNK_SOURCE", "input": {"space_id": huge, "source_ids": ["a"]}}}),
        (
            "POST",
            "/api/jobs",
            {"json": {"job_type": "CHUNK_SOURCE", "input": {"space_id": 2**40, "source_ids": ["a"]}}},
        ),
        (
            "POST",
            "/api/jobs",
            {
                "json": {
                    "job_type": "CHUNK_SOURCE",
                    "input": {"space_id": space_id, "source_ids": ["a"]},
                    "priority": huge,
                }
            },
        ),
    ]
    for method, path, kwargs in cases:
        response = engine_client.request(method, path, **kwargs)
        assert response.status_code == 422, (path, kwargs, response.status_code, response.text)
    assert engine_client.get("/api/jobs/9223372036854775807").status_code == 404
    assert engine_client.get("/api/sources", params={"offset": 2**63 - 1}).json()["items"] == []


def test_nul_characters_are_a_4xx(engine_client: TestClient, engine_holo: Holocron) -> None:
    space_id = engine_holo.space.embedding_space_id
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/search", {"json": {"query": "tea\x00"}}),
        ("POST", "/api/search", {"json": {"query": "tea", "mode": "keyword", "filters": {"tags": ["a\x00"]}}}),
        ("POST", "/api/search", {"json": {"query": "tea", "run_id": "\x00"}}),
        ("POST", "/api/search", {"content": json.dumps({"query": "\ud800 lone surrogate"}), "headers": JSON}),
        (
            "POST",
            "/api/jobs",
            {"content": json.dumps({"job_type": "CHUNK_SOURCE", "input": {"\udfff": 1}}), "headers": JSON},
        ),
        ("POST", "/api/evidence", {"json": {"question": "\x00"}}),
        (
            "POST",
            "/api/jobs",
            {"json": {"job_type": "CHUNK_SOURCE", "input": {"space_id": space_id, "source_ids": ["\x00"]}}},
        ),
        (
            "POST",
            "/api/jobs",
            {
                "json": {
                    "job_type": "CHUNK_SOURCE",
                    "input": {"space_id": space_id, "source_ids": ["a"]},
                    "dedupe_key": "\x00",
                }
            },
        ),
        ("GET", "/api/sources/a%00b", {}),
        ("DELETE", "/api/sources/a%00b", {}),
        ("GET", "/api/runs/%00", {}),
        ("GET", "/api/sources", {"params": {"status": "\x00"}}),
        ("GET", "/static/dashboard.js%00", {}),
    ]
    for method, path, kwargs in cases:
        response = engine_client.request(method, path, **kwargs)
        assert 400 <= response.status_code < 500, (path, kwargs, response.status_code, response.text)
        assert "NUL" in response.text or "Unicode" in response.text or response.status_code == 422, response.text


# --- deleting a source ------------------------------------------------------------------------------------------


def test_delete_a_source(engine_client: TestClient) -> None:
    c = engine_client
    assert any(
        h["source_id"] == "files:pages/tea.md" for h in c.post("/api/search", json={"query": "tea"}).json()["hits"]
    )
    deleted = c.delete("/api/sources/files:pages/tea.md", headers={"Origin": BASE})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] == ["files:pages/tea.md"] and deleted.json()["missing"] == []
    assert c.get("/api/sources/files:pages/tea.md").status_code == 404
    assert c.get("/api/sources").json()["total"] == 2
    hits = c.post("/api/search", json={"query": "green tea picking"}).json()["hits"]
    assert all(h["source_id"] != "files:pages/tea.md" for h in hits)
    again = c.delete("/api/sources/files:pages/tea.md")
    assert again.status_code == 404 and "files:pages/tea.md" in again.json()["detail"]


def test_delete_needs_the_token(holo: Holocron) -> None:
    app = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0")
    with TestClient(app, base_url=BASE) as c:
        assert c.delete("/api/sources/files:pages/bees.md").status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (
            c.delete("/api/sources/files:pages/bees.md", headers={**good, "Origin": "http://x.test"}).status_code == 403
        )
        assert c.get("/api/sources/files:pages/bees.md", headers=good).status_code == 200
        assert c.delete("/api/sources/files:pages/bees.md", headers=good).status_code == 200
        assert c.get("/api/sources/files:pages/bees.md", headers=good).status_code == 404


def test_an_unusable_index_folder_is_a_503_naming_it(holo: Holocron, tmp_path: Path) -> None:
    folder = holo.settings.home / "index"
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("not a folder")
    # A new process: the index run kept its own index in memory, this server must read the folder.
    with (
        Holocron(holo.settings, provider=holo.provider) as server,
        TestClient(create_app(server), base_url=BASE, raise_server_exceptions=False) as c,
    ):
        answer = c.post("/api/search", json={"query": "Penny's birthday", "mode": "vector"}, headers=JSON)
    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert "'index'" in detail and "not a directory" in detail and str(tmp_path) not in detail


def test_the_request_log_names_method_path_and_status_but_never_the_query_string(
    holo: Holocron, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(with_settings(holo, api_token=SecretStr(TOKEN)), host="0.0.0.0")
    with TestClient(app, base_url=BASE) as c:
        with caplog.at_level(logging.INFO, logger="holocron.api.app"):
            assert c.get("/api/status").status_code == 401
        assert not [r for r in caplog.records if r.name == "holocron.api.app"]  # debug off: no line
        with caplog.at_level(logging.DEBUG, logger="holocron.api.app"):
            assert c.get("/api/status").status_code == 401
            assert c.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
            assert c.get("/api/status").status_code == 200  # the session cookie the login set
    lines = [r.getMessage() for r in caplog.records if r.name == "holocron.api.app"]
    assert [line.split(" in ")[0] for line in lines] == [
        "GET /api/status -> 401",
        "GET / -> 303",
        "GET /api/status -> 200",
    ]
    assert all(TOKEN not in line and line.endswith(" ms") for line in lines)
