"""Every route of the app, fuzzed, on SQLite and on PostgreSQL: no request may make the server answer 500.

The routes are enumerated from the app itself (``app.routes``, into the included routers), so a route added
later is fuzzed too. Each gets hostile path parameters (huge and negative integers, NUL, invalid UTF-8,
traversal, very long text), query strings, bodies (deep JSON, wrong types, NUL, lone surrogates, integers past
64 bits, bytes that are not UTF-8) under many content types, and odd headers. First a fixed sweep sends every
route every hostile value once; then hypothesis draws combinations. The server runs with its token, the
requests carry it (so they reach the routes), and the app's own exceptions are raised into the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.routing import BaseRoute, Mount, Route

from holocron.api import create_app
from holocron.service import Holocron
from test_api import add_jobs, indexed_holocron

BASE = "http://127.0.0.1:8765"
TOKEN = "fuzzing-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# --- what is sent -----------------------------------------------------------------------------------------------

HUGE = [2**63, 2**64, -(2**63) - 1, 10**30, 2**63 - 1, -1, 0]
PATH_VALUES = [
    *(str(n) for n in HUGE),
    "%00",
    "a%00b",
    "%FF%FE",
    "%C0%AF",
    "%ED%A0%80",  # a surrogate, UTF-8 encoded
    "..%2F..%2Fetc%2Fpasswd",
    "../../etc/passwd",
    "files:pages/tea.md",
    "files:pages/nope.md",
    "x" * 5000,
    "%E2%82%AC",
    "1.5",
    "true",
    "%20",
    "nope",
]
QUERY_VALUES = [*PATH_VALUES, "", "NEW", "DEADLETTER", "indexed", "CHUNK_SOURCE", "-0", "1e400", "+1"]
EXTRA_QUERY_NAMES = ["limit", "offset", "status", "job_type", "job_id", "token", "error", "k", "%00", "%FF"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "application/merge-patch+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "application/octet-stream",
    "image/png",
    "",
    "application/json\x7f",
]
RAW_BODIES = [
    b"",
    b"\xff\xfe\xfd",
    b"{",
    b"[" * 20_000 + b"]" * 20_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"NaN",
    b'{"query": NaN, "k": Infinity}',
    b'{"query": "\\u0000"}',
    b'{"query": "\\ud800"}',
    b'{"question": "\\udfff", "k": 1}',
    b'{"query": "tea", "k": 1' + b"0" * 5000 + b"}",
    b"query=tea&k=3",
    b'--zz\r\nContent-Disposition: form-data; name="query"\r\n\r\ntea\r\n--zz--\r\n',
    b"token=%00&token=\xff",
    bytes(range(256)),
    b"null",
    b"[]",
    b'"a string"',
    b"12345678901234567890123456789",
]

NASTY_STRINGS = st.one_of(
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "\udfff x", "x" * 20_000, "💥" * 100, "\u202e", "' OR 1=1 --"]),
    st.text(max_size=50),
)
NASTY_SCALARS = st.one_of(
    st.sampled_from(HUGE),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    NASTY_STRINGS,
)
JSON_VALUES = st.recursive(
    NASTY_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(NASTY_STRINGS, st.sampled_from(["query", "k", "space_id", "source_ids"])), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
FIELDS = [
    "query",
    "question",
    "k",
    "mode",
    "filters",
    "max_per_source",
    "run_id",
    "log",
    "max_items",
    "max_total_bytes",
    "max_item_bytes",
    "save",
    "job_type",
    "input",
    "priority",
    "dedupe_key",
    "max_attempts",
]
BAD_VALUES: tuple[Any, ...] = (*HUGE, "\x00", "\ud800", [], {}, [[[]]], None, True, 1.5, "x" * 20_000)
FILTER_FIELDS = ["source_types", "source_systems", "tags", "source_ids", "since", "until"]
DATES = st.sampled_from(
    ["0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+23:59", "2024-02-30", "not a date", "2024-01-01T00:00:00Z"]
)


def encode_json(value: Any) -> bytes:
    """JSON as a hostile client might write it: NaN and lone surrogates allowed (escaped)."""
    return json.dumps(value, allow_nan=True).encode()


@dataclass(frozen=True, eq=False)
class Target:
    """One route as the fuzzer sees it."""

    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    takes_body: bool
    base_body: dict[str, Any] = field(default_factory=dict)

    def url(self, values: dict[str, str]) -> str:
        out = self.path
        for name in self.path_params:
            out = out.replace(f"{{{name}:path}}", values[name]).replace(f"{{{name}}}", values[name])
        return out


def _query_params(route: APIRoute) -> tuple[str, ...]:
    names: list[str] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names += [param.alias for param in dependant.query_params]
        pending += dependant.dependencies
    return tuple(dict.fromkeys(names))


def _flatten(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router: its own routes
        if inner is not None:
            yield from _flatten(inner.routes)
        else:
            yield route


BASE_BODIES: dict[str, dict[str, Any]] = {
    "/api/search": {"query": "green tea", "k": 3},
    "/api/evidence": {"question": "how do bees talk", "max_items": 2},
    "/api/jobs": {"job_type": "CHUNK_SOURCE", "input": {"space_id": 1, "source_ids": ["files:pages/tea.md"]}},
}


def targets(app: FastAPI) -> list[Target]:
    found: list[Target] = []
    for route in _flatten(list(app.routes)):
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or set()):
                path_params = tuple(param.name for param in route.dependant.path_params)
                takes_body = bool(route.dependant.body_params) or method in ("POST", "PUT", "PATCH", "DELETE")
                base = BASE_BODIES.get(route.path, {})
                found.append(Target(method, route.path, path_params, _query_params(route), takes_body, base))
        elif isinstance(route, Mount):
            found.append(Target("GET", route.path + "/{path:path}", ("path",), (), False))
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                takes_body = method in ("POST", "PUT", "PATCH", "DELETE")
                found.append(Target(method, route.path, tuple(route.param_convertors), (), takes_body))
    return found


# --- the app under test -----------------------------------------------------------------------------------------


@pytest.fixture()
def engine_holo(db_url: str, tmp_path: Path) -> Iterator[Holocron]:
    """The indexed pages on each engine in turn."""
    with indexed_holocron(tmp_path, db_url) as h:
        yield h


@dataclass
class Fuzzed:
    client: TestClient
    targets: list[Target]
    job_ids: list[int]


@pytest.fixture()
def fuzzed(engine_holo: Holocron) -> Iterator[Fuzzed]:
    ids = add_jobs(engine_holo, engine_holo.space.embedding_space_id)
    engine_holo.settings = engine_holo.settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    app = create_app(engine_holo, host="0.0.0.0")
    app.state.holocron_server.auth.limiter.attempts = 10**9  # the fuzzer's wrong tokens must not lock it out
    found = targets(app)
    paths = {t.path for t in found}
    assert (
        set(app.openapi()["paths"]) <= {p.replace(":path}", "}") for p in paths}
        and {"/", "/login", "/static/{path:path}"} <= paths
    )
    assert {("DELETE", "/api/sources/{source_id:path}"), ("POST", "/api/jobs/{job_id}/cancel")} <= {
        (t.method, t.path) for t in found
    }
    with TestClient(app, base_url=BASE, headers=AUTH) as client:
        yield Fuzzed(client, found, list(ids.values()))


def send(
    client: TestClient,
    target: Target,
    path_values: dict[str, str] | None = None,
    query: str = "",
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str | bytes] | None = None,
) -> int:
    values = dict.fromkeys(target.path_params, "1") | (path_values or {})
    url = target.url(values) + (f"?{query}" if query else "")
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    raw = [(k.encode(), v if isinstance(v, bytes) else v.encode("latin-1")) for k, v in sent.items()]
    response = client.request(target.method, url, content=body, headers=raw)
    assert response.status_code < 500, (target.method, url, content_type, (body or b"")[:200], response.text[:500])
    return response.status_code


REFUSED = {401, 403, 421, 429}
"""Answers from before the routes: a target that only ever got these was not fuzzed."""


# --- the fixed sweep: every route, every hostile value ----------------------------------------------------------


def test_every_route_every_hostile_value(fuzzed: Fuzzed) -> None:
    client, found = fuzzed.client, fuzzed.targets
    statuses: dict[Target, set[int]] = {}
    for target in found:
        seen = statuses.setdefault(target, set())
        for value in PATH_VALUES if target.path_params else ["-"]:
            seen.add(send(client, target, dict.fromkeys(target.path_params, value)))
        for name in (*target.query_params, *EXTRA_QUERY_NAMES[:3]):
            for value in QUERY_VALUES:
                seen.add(send(client, target, query=f"{quote(name)}={value}"))
        send(client, target, query="&".join(f"limit={n}" for n in range(200)))
        if not target.takes_body:
            continue
        for content_type in CONTENT_TYPES:
            for body in RAW_BODIES:
                seen.add(send(client, target, body=body, content_type=content_type))
            seen.add(send(client, target, body=encode_json(target.base_body), content_type=content_type))
        for name in (*FIELDS, *(f"filters.{f}" for f in FILTER_FIELDS)) if target.base_body else ():
            for bad in BAD_VALUES:
                mutated = dict(target.base_body)
                if name.startswith("filters."):
                    mutated["filters"] = {name.split(".", 1)[1]: bad}
                else:
                    mutated[name] = bad
                seen.add(send(client, target, body=encode_json(mutated), content_type="application/json"))
    unreached = [(t.method, t.path, sorted(seen)) for t, seen in statuses.items() if seen <= REFUSED]
    assert not unreached, unreached
    assert any(200 <= code < 300 for code in statuses[next(t for t in found if t.path == "/api/search")])
    for job_id in fuzzed.job_ids:
        for verb in ("retry", "cancel"):
            assert client.post(f"/api/jobs/{job_id}/{verb}").status_code < 500


def test_headers_that_are_odd(fuzzed: Fuzzed) -> None:
    client, found = fuzzed.client, fuzzed.targets
    odd: list[dict[str, str | bytes]] = [
        {"Host": "127.0.0.1:99999"},
        {"Host": "[::1"},
        {"Host": "127.0.0.1:²".encode("latin-1")},
        {"Host": "a" * 5000},
        {"Origin": "http://[::1"},
        {"Origin": "ftp://127.0.0.1:8765"},
        {"Origin": "http://127.0.0.1:8765/x?y"},
        {"Sec-Fetch-Site": "CROSS-SITE"},
        {"Authorization": "Bearer"},
        {"Authorization": ("Bearer " + "é" * 100).encode()},
        {"Authorization": b"Bearer \xff\xfe"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Cookie": "holocron_session=" + "x" * 4000},
        {"Content-Length": "not a number"},
        {"Content-Length": "9" * 5000},
        {"Content-Length": "-1"},
    ]
    for target in found:
        for headers in odd:
            send(client, target, headers=headers, body=b"{}" if target.takes_body else None)


# --- hypothesis: combinations -----------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn, found: list[Target]) -> dict[str, Any]:
    target = draw(st.sampled_from(found))
    path_values = {
        name: draw(st.one_of(st.sampled_from(PATH_VALUES), st.text(max_size=30).map(lambda s: quote(s, safe=""))))
        for name in target.path_params
    }
    names = st.sampled_from([*target.query_params, *EXTRA_QUERY_NAMES])
    values = st.one_of(st.sampled_from(QUERY_VALUES), st.text(max_size=20).map(lambda s: quote(s, safe="")))
    query = "&".join(f"{quote(n, safe='%')}={v}" for n, v in draw(st.lists(st.tuples(names, values), max_size=4)))
    body: bytes | None = None
    content_type: str | None = None
    if target.takes_body:
        kind = draw(st.sampled_from(["mutated", "random json", "raw"]))
        if kind == "raw":
            body = draw(st.one_of(st.sampled_from(RAW_BODIES), st.binary(max_size=200)))
        elif kind == "random json":
            body = encode_json(draw(JSON_VALUES))
        else:
            mutated = dict(target.base_body)
            for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
                mutated[name] = draw(JSON_VALUES)
            if draw(st.booleans()):
                mutated["filters"] = {
                    name: draw(st.one_of(DATES, st.lists(NASTY_STRINGS, max_size=3), JSON_VALUES))
                    for name in draw(st.lists(st.sampled_from(FILTER_FIELDS), max_size=3))
                }
            body = encode_json(mutated)
        content_type = draw(st.sampled_from(CONTENT_TYPES[:3] * 3 + CONTENT_TYPES))
    return {"target": target, "path_values": path_values, "query": query, "body": body, "content_type": content_type}


def test_random_requests(fuzzed: Fuzzed) -> None:
    client, found = fuzzed.client, fuzzed.targets

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(request=requests(found))
    def check(request: dict[str, Any]) -> None:
        send(client, **request)

    check()
