"""The replay server (``tests/replay_server.py``) speaks the recorded protocols faithfully and misbehaves on cue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from datafiles import data_file
from replay_server import (
    DEFAULT_ROBOTS,
    ETIQUETTE,
    LAST_MODIFIED,
    ReplayState,
    mediawiki_recordings,
    openalex_url,
    page_url,
    parse_step,
    replay_server,
    site_url,
)

WIKI = "mediawiki-api/en.wikipedia.org"
WORK = "W2741809807"
PAGE = "trafilatura__en.wikipedia.org.tsne.html"


def recording(name: str) -> dict[str, Any]:
    """A recording's ``{site, params, response}``."""
    value: dict[str, Any] = json.loads(data_file(name).read_text(encoding="utf-8"))
    return value


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ReplayState]]:
    with replay_server() as running:
        yield running


@pytest.fixture
def replay(server: tuple[str, ReplayState]) -> Iterator[tuple[str, ReplayState]]:
    """The module's server, with no script, loop, recorded request or changed setting left by another test."""
    base, state = server
    state.reset()
    yield base, state
    state.reset()
    state.latency_s = 0.0
    state.ignored = frozenset()
    state.robots_txt = DEFAULT_ROBOTS


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def api(base: str) -> str:
    return site_url(base, "en.wikipedia.org")


# --- MediaWiki --------------------------------------------------------------------------------------------------


def test_every_recording_is_served_for_its_own_params(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    for recorded in mediawiki_recordings():
        host = recorded.site.split("/")[2]
        params = {key: str(value) for key, value in recorded.params.items()}
        answer = client.get(site_url(base, host), params=params)
        assert answer.status_code == 200, recorded.name
        assert answer.headers["x-replay-recording"] == recorded.name
        assert answer.content == recorded.body


def test_categorymembers_answers_the_recording(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    recorded = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")
    answer = client.get(api(base), params=recorded["params"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json() == recorded["response"]
    assert "continue" not in answer.json()


def walk(client: httpx.Client, url: str, params: dict[str, Any]) -> list[httpx.Response]:
    """Follow MediaWiki's continuation: merge each answer's ``continue`` into the next request's parameters."""
    answers = []
    while True:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        answers.append(answer)
        more = answer.json().get("continue")
        if more is None:
            return answers
        params = {**params, **more}
        assert len(answers) < 100, "continuation does not end"


@pytest.mark.parametrize(
    ("first", "pages"),
    [
        ("query__categorymembers__Category_Disambiguation_categories_3", ["_3", "", "_2"]),
        ("query__imageinfo__B8_polytope_5", ["_5", "", "_2", "_3", "_4"]),
        ("query__links__List_of_named_minor_planets_numerical__41", ["_41", "", *(f"_{n}" for n in range(2, 41))]),
    ],
)
def test_following_continue_walks_the_recorded_pages_to_the_end(
    replay: tuple[str, ReplayState], client: httpx.Client, first: str, pages: list[str]
) -> None:
    base, _ = replay
    stem = first.rsplit("_", 1)[0]
    answers = walk(client, api(base), recording(f"{WIKI}/{first}.json")["params"])
    assert [a.headers["x-replay-recording"] for a in answers] == [f"{WIKI}/{stem}{page}.json" for page in pages]
    assert [a.json() for a in answers] == [recording(f"{WIKI}/{stem}{page}.json")["response"] for page in pages]
    assert "continue" not in answers[-1].json()


def test_category_chess_continue_is_not_recorded(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    """The ``page|subcat`` listing of Category:Chess has a ``continue`` whose next page was never recorded."""
    base, _ = replay
    recorded = recording(f"{WIKI}/query__categorymembers__Category_Chess_2.json")
    first = client.get(api(base), params=recorded["params"])
    assert first.json() == recorded["response"]
    second = client.get(api(base), params={**recorded["params"], **first.json()["continue"]})
    assert second.status_code == 404
    assert second.json()["error"]["code"] == "badrequest"


def test_etiquette_params_still_match(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    recorded = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")
    polite = {**recorded["params"], "maxlag": 5, "formatversion": 2, "origin": "*", "utf8": 1, "errorformat": "plain"}
    assert set(polite) - set(recorded["params"]) <= ETIQUETTE
    answer = client.get(api(base), params=polite)
    assert answer.status_code == 200
    assert answer.json() == recorded["response"]


def test_ignored_params_are_configurable(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, state = replay
    recorded = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")
    with_id = {**recorded["params"], "requestid": "crawl-7"}
    assert client.get(api(base), params=with_id).status_code == 404
    state.ignored = frozenset({"requestid"})
    assert client.get(api(base), params=with_id).json() == recorded["response"]


def test_flags_and_pipe_order_match_as_mediawiki_reads_them(
    replay: tuple[str, ReplayState], client: httpx.Client
) -> None:
    base, _ = replay
    extracts = recording(f"{WIKI}/query__extracts__Chess.json")
    assert extracts["params"]["explaintext"] == ""
    answer = client.get(api(base), params={**extracts["params"], "explaintext": "1"})
    assert answer.json() == extracts["response"]
    chess = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")
    assert chess["params"]["cmprop"] == "ids|title|type"
    answer = client.get(api(base), params={**chess["params"], "cmprop": "type|ids|title"})
    assert answer.json() == chess["response"]


def test_every_recorded_site_has_its_endpoint(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    assert site_url(base, "en.wikipedia.org") == f"{base}/en.wikipedia.org/w/api.php"
    assert site_url(base, "awoiaf.westeros.org") == f"{base}/awoiaf.westeros.org/api.php"
    siteinfo = recording("mediawiki-api/awoiaf.westeros.org/query__siteinfo.json")
    answer = client.get(site_url(base, "awoiaf.westeros.org"), params=siteinfo["params"])
    assert answer.json() == siteinfo["response"]
    with pytest.raises(KeyError):
        site_url(base, "de.wikipedia.org")


def test_post_form_matches_too(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    recorded = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")
    answer = client.post(api(base), data={k: str(v) for k, v in recorded["params"].items()})
    assert answer.json() == recorded["response"]


def test_unknown_request_is_a_mediawiki_error(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    answer = client.get(api(base), params={"action": "query", "list": "categorymembers", "cmtitle": "Category:Go"})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["mediawiki-api-error"] == "badrequest"
    error = answer.json()["error"]
    assert error["code"] == "badrequest"
    assert error["info"].startswith("no recording for /en.wikipedia.org/w/api.php")
    assert "cmtitle=Category%3AGo" in error["info"]
    assert client.get(f"{base}/de.wikipedia.org/w/api.php", params={"action": "query"}).status_code == 404


def test_etag_and_last_modified_give_304(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, state = replay
    params = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")["params"]
    first = client.get(api(base), params=params)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 66
    assert first.headers["last-modified"] == LAST_MODIFIED
    again = client.get(api(base), params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(api(base), params=params, headers={"If-None-Match": '"stale"'}).status_code == 200
    assert client.get(api(base), params=params, headers={"If-Modified-Since": LAST_MODIFIED}).status_code == 304
    older = "Sun, 31 Dec 2023 23:59:59 GMT"
    assert client.get(api(base), params=params, headers={"If-Modified-Since": older}).status_code == 200
    assert state.requests[1].headers["if-none-match"] == etag


# --- OpenAlex ---------------------------------------------------------------------------------------------------


def test_openalex_entities_by_id(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    work = json.loads(data_file("openalex/papers__work.json").read_text(encoding="utf-8"))
    answer = client.get(f"{openalex_url(base)}/works/{WORK}")
    assert answer.status_code == 200
    assert answer.json() == work
    assert client.get(f"{openalex_url(base)}/works/{WORK.lower()}").json() == work
    assert client.get(f"{openalex_url(base)}/works/doi:10.7717/peerj.4375").json() == work
    for kind, name in [("authors", "author"), ("institutions", "institution"), ("sources", "source")]:
        entity = json.loads(data_file(f"openalex/papers__{name}.json").read_text(encoding="utf-8"))
        key = entity["id"].rsplit("/", 1)[1]
        assert client.get(f"{openalex_url(base)}/{kind}/{key}").json() == entity
    missing = client.get(f"{openalex_url(base)}/works/W1")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "message"}


def test_openalex_cursor_paging_to_the_end(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    params: dict[str, Any] = {"filter": "publication_year:2018,author.id:A5023888391", "per-page": 1, "cursor": "*"}
    results, cursors = [], []
    while True:
        page = client.get(f"{openalex_url(base)}/works", params=params)
        assert page.status_code == 200, page.text
        meta = page.json()["meta"]
        assert meta["count"] == 1
        results += page.json()["results"]
        cursors.append(meta["next_cursor"])
        if meta["next_cursor"] is None:
            break
        params["cursor"] = meta["next_cursor"]
    assert [work["id"] for work in results] == [f"https://openalex.org/{WORK}"]
    assert isinstance(cursors[0], str) and cursors[0] != "*"
    assert cursors[-1] is None
    assert page.json()["results"] == []  # as OpenAlex: the page after the last result is empty, cursor null


def test_openalex_filters_select_and_errors(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    works = f"{openalex_url(base)}/works"
    none = client.get(works, params={"filter": "publication_year:>2020", "cursor": "*"}).json()
    assert none["meta"]["count"] == 0 and none["meta"]["next_cursor"] is None
    negated = client.get(works, params={"filter": "publication_year:!2018"}).json()
    assert negated["meta"]["count"] == 0
    picked = client.get(works, params={"select": "id,title", "page": 1}).json()
    assert picked["meta"]["page"] == 1
    assert list(picked["results"][0]) == ["id", "title"]
    bads: list[dict[str, Any]] = [
        {"per-page": 500},
        {"filter": "no_such_field:1"},
        {"cursor": "bogus"},
        {"search": "x"},
    ]
    for bad in bads:
        answer = client.get(works, params=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"] == "Invalid query parameters error."


# --- pages and robots.txt ---------------------------------------------------------------------------------------


def test_html_page(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, _ = replay
    answer = client.get(page_url(base, PAGE))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.content == data_file(f"wiki-html/{PAGE}").read_bytes()
    again = client.get(page_url(base, PAGE), headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    assert client.get(page_url(base, "nope.html")).status_code == 404
    assert client.get(f"{base}/pages/..%2F..%2FREADME.md").status_code == 404


def test_robots_txt(replay: tuple[str, ReplayState], client: httpx.Client) -> None:
    base, state = replay
    allowed = client.get(f"{base}/robots.txt")
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain")
    assert allowed.text == "User-agent: *\nDisallow:\n"
    state.robots_txt = "User-agent: *\nDisallow: /pages/private\n"
    assert "Disallow: /pages/private" in client.get(f"{base}/robots.txt").text


# --- faults -----------------------------------------------------------------------------------------------------


@pytest.fixture
def chess() -> dict[str, Any]:
    params: dict[str, Any] = recording(f"{WIKI}/query__categorymembers__Category_Chess.json")["params"]
    return params


def test_429_with_seconds_and_with_a_date(
    replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]
) -> None:
    base, state = replay
    state.set("429:3", "429-date:120")
    seconds = client.get(api(base), params=chess)
    assert seconds.status_code == 429
    assert seconds.headers["retry-after"] == "3"
    dated = client.get(api(base), params=chess)
    assert dated.status_code == 429
    ahead = parsedate_to_datetime(dated.headers["retry-after"]).timestamp() - time.time()
    assert 100 < ahead <= 121
    assert client.get(api(base), params=chess).status_code == 200  # the script ran out: ok


def test_server_errors_and_maxlag(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("503", "503:7", "500", "maxlag:5")
    unavailable = client.get(api(base), params=chess)
    assert unavailable.status_code == 503 and "retry-after" not in unavailable.headers
    assert client.get(api(base), params=chess).headers["retry-after"] == "7"
    assert client.get(api(base), params=chess).status_code == 500
    lagged = client.get(api(base), params={**chess, "maxlag": 5})
    assert lagged.status_code == 200
    assert lagged.json()["error"]["code"] == "maxlag"
    assert lagged.headers["retry-after"] == "5"


def test_slow_and_latency(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("slow:0.3")
    started = time.monotonic()
    assert client.get(api(base), params=chess).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        state.set("slow:0.5")
        client.get(api(base), params=chess, timeout=0.1)
    state.set()
    state.latency_s = 0.05
    started = time.monotonic()
    for _ in range(3):
        client.get(api(base), params=chess)
    assert time.monotonic() - started >= 0.15


def test_drop_and_truncate_raise(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("drop", "truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(api(base), params=chess)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(api(base), params=chess)
    assert client.get(api(base), params=chess).status_code == 200


def test_wrong_content_type(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("wrong-type", "wrong-type")
    answer = client.get(api(base), params=chess)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html"
    assert answer.json() == recording(f"{WIKI}/query__categorymembers__Category_Chess.json")["response"]
    assert client.get(page_url(base, PAGE)).headers["content-type"].startswith("application/json")


def test_redirect_is_followed(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("redirect", then="503")
    answer = client.get(api(base), params=chess, follow_redirects=True)
    assert answer.status_code == 200  # the redirected request answers normally whatever the script says
    assert [r.status_code for r in answer.history] == [302]
    assert answer.url.params["_r"] == "1"
    assert answer.json() == recording(f"{WIKI}/query__categorymembers__Category_Chess.json")["response"]
    assert not client.get(api(base), params=chess, follow_redirects=False).is_success


def test_redirect_loop_raises(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("redirect-loop")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(api(base), params=chess, follow_redirects=True)
    assert len(state.requests) > 2
    assert {r.target for r in state.requests} == {state.requests[0].target}


def test_scripts_per_path_prefix(replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]) -> None:
    base, state = replay
    state.set("500", then="503", prefix="/api.openalex.org")
    assert client.get(api(base), params=chess).status_code == 200
    assert client.get(f"{openalex_url(base)}/works/{WORK}").status_code == 500
    assert client.get(f"{openalex_url(base)}/works/{WORK}").status_code == 503
    state.set("429:1")  # all requests, but the longer prefix still wins for OpenAlex
    assert client.get(api(base), params=chess).status_code == 429
    assert client.get(f"{openalex_url(base)}/works/{WORK}").status_code == 503


def test_bad_steps_are_refused() -> None:
    for bad in ["teapot", "429", "slow:soon", "slow:-1", "drop:2"]:
        with pytest.raises(ValueError):
            parse_step(bad)
    assert parse_step("429-date:2.5").seconds == 2.5


# --- the record of requests -------------------------------------------------------------------------------------


def test_requests_are_recorded_with_headers(
    replay: tuple[str, ReplayState], client: httpx.Client, chess: dict[str, Any]
) -> None:
    base, state = replay
    agent = "HolocronCrawler/1.0 (https://example.org/holocron; crawler@example.org)"
    before = time.monotonic()
    client.get(api(base), params={**chess, "maxlag": 5}, headers={"User-Agent": agent})
    client.get(f"{base}/robots.txt", headers={"User-Agent": agent})
    records = state.requests
    assert [(r.method, r.path) for r in records] == [("GET", "/en.wikipedia.org/w/api.php"), ("GET", "/robots.txt")]
    assert records[0].params["maxlag"] == "5"
    assert records[0].params["cmtitle"] == "Category:Chess"
    assert all(r.headers["user-agent"] == agent for r in records)
    assert before <= records[0].at <= records[1].at <= time.monotonic()
    assert state.requests_to("/robots.txt") == [records[1]]
