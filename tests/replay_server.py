"""A local replay server for crawler tests: real recorded MediaWiki API answers, OpenAlex entities and wiki pages,
served on 127.0.0.1 with scripted faults.

Routes (``base`` is the URL :func:`replay_server` yields):

* ``/<host><api path>``, e.g. ``/en.wikipedia.org/w/api.php`` or ``/awoiaf.westeros.org/api.php`` (one per
  recorded site, see :func:`site_url`): GET (or POST, form-encoded) answers the recording whose ``params`` match the
  request's parameters. Values compare as strings; pipe-separated values compare as sets (MediaWiki reads
  ``prop=info|pageprops`` and ``pageprops|info`` alike); a flag recorded as ``''`` or ``true`` matches any value
  (MediaWiki reads a present flag as true whatever its value); the etiquette parameters in :data:`ETIQUETTE` and
  those in ``ReplayState.ignored`` are left out on both sides. No match: 404 with a MediaWiki error JSON (code
  ``badrequest``) naming the parameters and the nearest recording. The recording served is named in the
  ``X-Replay-Recording`` header. The continuation chains are the recorded ones: merging a response's ``continue``
  into the next request's parameters walks e.g. ``Category:Disambiguation categories`` (3 pages),
  ``B8 polytope``'s images (5) and the links of ``List of named minor planets (numerical)`` (41) to their end.
  Not every ``continue`` has its next page recorded (``Category:Chess`` with ``cmtype=page|subcat`` does not: the
  next request is a 404), and ``Rober Eryol``'s first imageinfo page continues to itself, as recorded.
* ``/api.openalex.org/{works,authors,institutions,sources}/<id>``: the entity whose ``id`` ends with ``<id>``
  (case-insensitive; a work also by ``doi:10...`` or ``https://doi.org/10...``).
  ``/api.openalex.org/<type>?filter=...&sort=...&select=...&per-page=N&cursor=*`` (or ``page=N``): a list page
  ``{"meta": {...}, "results": [...]}``. Cursor paging is OpenAlex's: every page with results has a
  ``next_cursor`` (an opaque string), and the page after the last result is empty with ``next_cursor: null``.
  Filters: ``key:value`` joined by ``,``; ``a|b`` is OR, ``!v`` negation, ``>n`` / ``<n`` numeric; keys are dotted
  paths into the entity, plus the usual aliases (``author.id``, ``institutions.id``, ``is_oa``, ``cites``, ...).
  Errors are OpenAlex-shaped: ``{"error": ..., "message": ...}`` (400 for a bad parameter, 404 for no entity).
* ``/pages/<file name>``: the demo corpus's served wiki HTML (``examples/corpus/wiki-html/``).
* ``/robots.txt``: ``ReplayState.robots_txt`` (by default everything is allowed).

Every 200 answer carries an ``ETag`` (the quoted sha256 of its body) and a fixed ``Last-Modified``; a GET or HEAD
with a matching ``If-None-Match`` (or, without one, an ``If-Modified-Since`` at or after ``Last-Modified``) gets
``304 Not Modified`` without a body.

Faults are scripted like ``tests/chat_servers.py``'s: :meth:`ReplayState.set` gives the steps for the requests whose
path starts with ``prefix`` (``""``: all; the longest matching prefix wins), one step per request, then ``then``.
Steps (validated by :func:`parse_step`):

``ok``; ``429:S`` (Retry-After in seconds); ``429-date:S`` (Retry-After as an HTTP-date S seconds ahead);
``503`` or ``503:S`` (with a Retry-After); ``500``; ``slow:S`` (sleep S seconds, then answer); ``drop`` (close the
connection without answering); ``truncate`` (declare the whole body's Content-Length, send half of it, close);
``wrong-type`` (the right body with ``Content-Type: text/html``, or ``application/json`` for an HTML page);
``redirect`` (302 to the same URL plus ``_r=1``, which answers normally whatever the script says);
``redirect-loop`` (302 to the same URL, and every later request for that URL too, until :meth:`ReplayState.reset`);
``maxlag:S`` (MediaWiki's answer when replication lag exceeds ``maxlag``: 200 with error code ``maxlag``,
``Retry-After: S`` and ``X-Database-Lag: S``).

``ReplayState.latency_s`` is slept before every answer. Every request is recorded (:class:`RequestRecord`, header
names lowercased) in arrival order; :attr:`ReplayState.requests` is a snapshot.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from datafiles import CORPUS, data_files

MEDIAWIKI_RECORDINGS = 149  # tests/data/mediawiki-api/ (143) and the demo corpus (6)
OPENALEX_ENTITIES = 4  # a work and an author (demo corpus), an institution and a source (tests/data)
CORPUS_PAGES = 5  # examples/corpus/wiki-html/

OPENALEX_HOST = "api.openalex.org"
OPENALEX_ID = "https://openalex.org/"
OPENALEX_TYPES = {"works": "W", "authors": "A", "institutions": "I", "sources": "S"}

#: Parameters a polite crawler adds that do not change which recording answers (``_r`` is the redirect step's).
ETIQUETTE = frozenset({"maxlag", "formatversion", "format", "origin", "utf8", "errorformat", "_r"})
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"
DEFAULT_ROBOTS = "User-agent: *\nDisallow:\n"

STEP_KINDS = frozenset(
    {"ok", "429", "429-date", "503", "500", "slow", "drop", "truncate", "wrong-type", "redirect", "redirect-loop"}
    | {"maxlag"}
)
_NEEDS_SECONDS = frozenset({"429", "429-date", "slow", "maxlag"})
_MAY_HAVE_SECONDS = frozenset({"503"})

# --- the data ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One recorded MediaWiki API request: ``path`` is the route (``/<host><api path>``), ``body`` the JSON served."""

    name: str
    site: str
    path: str
    params: Mapping[str, Any]
    body: bytes


def _site_path(site: str) -> str:
    parts = urlsplit(site)
    return f"/{parts.hostname}{parts.path or '/'}"


@functools.cache
def mediawiki_recordings() -> tuple[Recording, ...]:
    """Every recorded MediaWiki answer, from both places (a missing file fails the test that asks)."""
    found = []
    for name, path in data_files("mediawiki-api", ".json", expect=MEDIAWIKI_RECORDINGS).items():
        record = json.loads(path.read_text(encoding="utf-8"))
        site = record["site"]
        body = json.dumps(record["response"]).encode()
        found.append(Recording(name, site, _site_path(site), record["params"], body))
    return tuple(found)


@functools.cache
def openalex_entities() -> tuple[dict[str, Any], ...]:
    """The recorded OpenAlex entities (a work, an author, an institution, a source)."""
    files = data_files("openalex", ".json", expect=OPENALEX_ENTITIES).values()
    return tuple(json.loads(path.read_text(encoding="utf-8")) for path in files)


@functools.cache
def corpus_pages() -> dict[str, Path]:
    """The served wiki pages of the demo corpus, by file name (``tests/data/wiki-html/`` holds expected
    extractions, not served pages, so it is not read)."""
    folder = CORPUS / "wiki-html"
    found = {path.name: path for path in sorted(folder.glob("*.html")) if path.is_file()}
    if len(found) != CORPUS_PAGES:
        raise RuntimeError(f"{len(found)} pages in {folder}, expected {CORPUS_PAGES} (see examples/README.md)")
    return found


def site_url(base: str, host: str) -> str:
    """The replayed API endpoint of a recorded site, e.g. ``site_url(base, "en.wikipedia.org")``."""
    for recording in mediawiki_recordings():
        if urlsplit(recording.site).hostname == host:
            return f"{base}{recording.path}"
    raise KeyError(f"no recorded MediaWiki site {host!r}")


def openalex_url(base: str) -> str:
    """The replayed OpenAlex API root, e.g. ``openalex_url(base) + "/works/W2741809807"``."""
    return f"{base}/{OPENALEX_HOST}"


def page_url(base: str, name: str) -> str:
    """The URL of a served corpus page, by file name."""
    return f"{base}/pages/{name}"


# --- MediaWiki matching -----------------------------------------------------------------------------------------


def _multi(value: str) -> tuple[str, ...]:
    parts = value[1:].split("\x1f") if value.startswith("\x1f") else value.split("|")
    return tuple(sorted(parts))


def _is_flag(value: Any) -> bool:
    return value is True or value == ""


def differences(recorded: Mapping[str, Any], sent: Mapping[str, str], ignored: Iterable[str] = ()) -> list[str]:
    """The parameter names on which a request differs from a recording (empty: it matches)."""
    skip = ETIQUETTE | frozenset(ignored)
    wanted = {key: value for key, value in recorded.items() if key not in skip and value is not False}
    given = {key: value for key, value in sent.items() if key not in skip}
    differing = sorted(wanted.keys() ^ given.keys())
    for key in sorted(wanted.keys() & given.keys()):
        value = wanted[key]
        if not _is_flag(value) and _multi(str(value)) != _multi(given[key]):
            differing.append(key)
    return differing


# --- the fault script -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: str
    seconds: float | None = None


def parse_step(step: str) -> Step:
    """A script step (see the module's docstring); ValueError for an unknown or malformed one."""
    kind, _, arg = step.partition(":")
    if kind not in STEP_KINDS:
        raise ValueError(f"unknown replay step {step!r}: one of {sorted(STEP_KINDS)}")
    if not arg:
        if kind in _NEEDS_SECONDS:
            raise ValueError(f"replay step {step!r} needs seconds: {kind}:SECONDS")
        return Step(kind)
    if kind not in _NEEDS_SECONDS | _MAY_HAVE_SECONDS:
        raise ValueError(f"replay step {step!r} takes no argument")
    try:
        seconds = float(arg)
    except ValueError:
        raise ValueError(f"replay step {step!r}: {arg!r} is not a number of seconds") from None
    if not seconds >= 0:
        raise ValueError(f"replay step {step!r}: seconds must be >= 0")
    return Step(kind, seconds)


@dataclass
class _Script:
    steps: deque[Step]
    then: Step


@dataclass(frozen=True)
class RequestRecord:
    """One request as it arrived: ``params`` are the query's (and a POST form's) parameters, the last of a repeated
    name winning; ``headers`` have lowercased names; ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float
    target: str  # the path with its query string, as sent


@dataclass
class ReplayState:
    """What the server serves, how it misbehaves, and what it was asked. Safe to change from the test's thread."""

    latency_s: float = 0.0
    robots_txt: str = DEFAULT_ROBOTS
    ignored: frozenset[str] = frozenset()
    last_modified: str = LAST_MODIFIED
    recordings: tuple[Recording, ...] = field(default_factory=mediawiki_recordings)
    openalex: tuple[dict[str, Any], ...] = field(default_factory=openalex_entities)
    pages: dict[str, Path] = field(default_factory=corpus_pages)
    _scripts: dict[str, _Script] = field(default_factory=dict, repr=False)
    _looping: set[str] = field(default_factory=set, repr=False)
    _requests: list[RequestRecord] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, *steps: str, then: str = "ok", prefix: str = "") -> None:
        """Script the requests whose path starts with ``prefix`` ("" for all): these steps, one per request, then
        ``then`` for ever. Replaces that prefix's earlier script; leaves the recorded requests alone."""
        script = _Script(deque(parse_step(step) for step in steps), parse_step(then))
        with self._lock:
            self._scripts[prefix] = script

    def reset(self) -> None:
        """No scripts, no redirect loops, no recorded requests (the settings stay)."""
        with self._lock:
            self._scripts.clear()
            self._looping.clear()
            self._requests.clear()

    def next_step(self, path: str) -> Step:
        with self._lock:
            prefixes = [prefix for prefix in self._scripts if path.startswith(prefix)]
            if not prefixes:
                return Step("ok")
            script = self._scripts[max(prefixes, key=len)]
            return script.steps.popleft() if script.steps else script.then

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, prefix: str) -> list[RequestRecord]:
        return [record for record in self.requests if record.path.startswith(prefix)]

    def record(self, request: RequestRecord) -> None:
        with self._lock:
            self._requests.append(request)

    def start_loop(self, target: str) -> None:
        with self._lock:
            self._looping.add(target)

    def looping(self, target: str) -> bool:
        with self._lock:
            return target in self._looping

    def match(self, path: str, params: Mapping[str, str]) -> Recording | None:
        for recording in self.recordings:
            if recording.path == path and not differences(recording.params, params, self.ignored):
                return recording
        return None

    def nearest(self, path: str, params: Mapping[str, str]) -> tuple[Recording, list[str]] | None:
        candidates = [(r, differences(r.params, params, self.ignored)) for r in self.recordings if r.path == path]
        return min(candidates, key=lambda pair: len(pair[1]), default=None)

    @property
    def sites(self) -> frozenset[str]:
        return frozenset(recording.path for recording in self.recordings)


# --- answers ----------------------------------------------------------------------------------------------------

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.body).hexdigest()}"'


def _json(status: int, value: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(value).encode(), JSON, headers or {})


class _Route:
    MEDIAWIKI = "mediawiki"
    OPENALEX = "openalex"
    OTHER = "other"


def _error(route: str, status: int, code: str, info: str, headers: dict[str, str] | None = None) -> Answer:
    extra = dict(headers or {})
    if route == _Route.MEDIAWIKI:
        extra["MediaWiki-API-Error"] = code
        error = {"code": code, "info": info, "*": "This is the Holocron test replay server."}
        return _json(status, {"error": error, "servedby": "replay"}, extra)
    if route == _Route.OPENALEX:
        return _json(status, {"error": code, "message": info}, extra)
    return Answer(status, f"{status} {code}: {info}\n".encode(), TEXT, extra)


def _http_date(when: float) -> str:
    return formatdate(when, usegmt=True)


def _not_modified(answer: Answer, headers: Mapping[str, str], last_modified: str) -> bool:
    if answer.status != 200:
        return False
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or answer.etag in tags
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


# --- OpenAlex ---------------------------------------------------------------------------------------------------

_FILTER_ALIASES = {
    "author.id": "authorships.author.id",
    "authorships.author.id": "authorships.author.id",
    "institutions.id": "authorships.institutions.id",
    "authorships.institutions.id": "authorships.institutions.id",
    "openalex": "ids.openalex",
    "openalex_id": "ids.openalex",
    "ids.openalex": "ids.openalex",
    "is_oa": "open_access.is_oa",
    "oa_status": "open_access.oa_status",
    "cites": "referenced_works",
    "source.id": "primary_location.source.id",
    "primary_location.source.id": "primary_location.source.id",
}
_LIST_PARAMS = frozenset({"filter", "sort", "select", "cursor", "page", "per-page", "per_page", "mailto", "api_key"})


class _BadRequestError(Exception):
    pass


def _short(value: str) -> str:
    """An OpenAlex or DOI URL's key, upper-cased for an OpenAlex id (they are case-insensitive)."""
    if value.lower().startswith(OPENALEX_ID):
        return value[len(OPENALEX_ID) :].upper()
    if re.fullmatch(r"[WAISPCTF]\d+", value, flags=re.IGNORECASE):
        return value.upper()
    return value.lower().removeprefix("https://doi.org/").removeprefix("doi:")


def _values(item: Any, path: list[str]) -> list[Any]:
    """The values at a dotted path, through lists at any level."""
    if isinstance(item, list):
        return [found for element in item for found in _values(element, path)]
    if not path:
        return [item]
    if not isinstance(item, dict) or path[0] not in item:
        return []
    return _values(item[path[0]], path[1:])


def _compare(found: Any, wanted: str) -> bool:
    if wanted[:1] in "<>" and wanted[1:]:
        try:
            limit = float(wanted[1:])
        except ValueError:
            raise _BadRequestError(f"{wanted!r} is not a number") from None
        return (
            isinstance(found, int | float)
            and not isinstance(found, bool)
            and (found > limit if wanted[0] == ">" else found < limit)
        )
    if isinstance(found, bool):
        return str(found).lower() == wanted.lower()
    if found is None:
        return wanted.lower() == "null"
    return _short(str(found)) == _short(wanted)


def _filter(entities: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    for clause in filter(None, spec.split(",")):
        key, colon, value = clause.partition(":")
        if not colon or not key:
            raise _BadRequestError(f"filter {clause!r} is not key:value")
        path = _FILTER_ALIASES.get(key, key).split(".")
        if entities and not any(_values(entity, path) for entity in entities):
            raise _BadRequestError(f"{key} is not a valid field to filter by")
        negate = value.startswith("!")
        options = value.removeprefix("!").split("|")

        def keep(entity: dict[str, Any], path: list[str] = path, options: list[str] = options) -> bool:
            return any(_compare(found, option) for found in _values(entity, path) for option in options)

        entities = [entity for entity in entities if keep(entity) != negate]
    return entities


def _field(key: str, entity: dict[str, Any]) -> Any:
    return entity[key]


def _sort(entities: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    for clause in reversed([part for part in spec.split(",") if part]):
        key, _, direction = clause.partition(":")
        if direction not in ("", "asc", "desc"):
            raise _BadRequestError(f"sort direction {direction!r} is not asc or desc")
        if not all(isinstance(entity.get(key), str | int | float) for entity in entities):
            raise _BadRequestError(f"{key} is not a valid field to sort by")
        entities = sorted(entities, key=functools.partial(_field, key), reverse=direction == "desc")
    return entities


def _cursor(offset: int, query: str) -> str:
    token = json.dumps({"offset": offset, "query": hashlib.sha256(query.encode()).hexdigest()[:16]})
    return base64.urlsafe_b64encode(token.encode()).decode()


def _offset(cursor: str, query: str) -> int:
    if cursor == "*":
        return 0
    try:
        token = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        offset = token["offset"]
        matches = token["query"] == hashlib.sha256(query.encode()).hexdigest()[:16]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _BadRequestError(f"{cursor!r} is not a valid cursor") from None
    if not matches or not isinstance(offset, int) or offset < 0:
        raise _BadRequestError(f"cursor {cursor!r} belongs to another query")
    return offset


def _int_param(params: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequestError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _BadRequestError(f"{name} must be between {low} and {high}")
    return value


def _openalex(state: ReplayState, rest: str, params: Mapping[str, str]) -> Answer:
    kind, _, key = rest.strip("/").partition("/")
    if kind not in OPENALEX_TYPES:
        return _error(_Route.OPENALEX, 404, "Not found", f"no such endpoint /{kind}")
    entities = [e for e in state.openalex if _short(str(e.get("id", ""))).startswith(OPENALEX_TYPES[kind])]
    if key:
        wanted = _short(unquote(key))
        for entity in entities:
            keys = {_short(str(entity["id"]))} | {_short(str(value)) for value in (entity.get("ids") or {}).values()}
            if wanted in keys:
                return _json(200, entity)
        return _error(_Route.OPENALEX, 404, "Not found", f"no {kind} entity {key!r}")
    try:
        return _json(200, _openalex_list(entities, params))
    except _BadRequestError as bad:
        return _error(_Route.OPENALEX, 400, "Invalid query parameters error.", str(bad))


def _openalex_list(entities: list[dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(params) - _LIST_PARAMS - {"_r"})
    if unknown:
        raise _BadRequestError(
            f"{', '.join(unknown)} is not a valid parameter (valid: {', '.join(sorted(_LIST_PARAMS))})"
        )
    if "cursor" in params and "page" in params:
        raise _BadRequestError("cannot use page with cursor paging")
    per_page = _int_param(params, "per-page" if "per-page" in params else "per_page", 1, 200, 25)
    matched = _sort(_filter(entities, params.get("filter", "")), params.get("sort", ""))
    query = urlencode(sorted((k, v) for k, v in params.items() if k in ("filter", "sort", "select")))
    meta: dict[str, Any] = {"count": len(matched), "db_response_time_ms": 1, "per_page": per_page}
    if "cursor" in params:
        offset = _offset(params["cursor"], query)
        meta["page"] = None
    else:
        page = _int_param(params, "page", 1, 10_000, 1)
        offset = (page - 1) * per_page
        meta["page"] = page
    results = matched[offset : offset + per_page]
    if "cursor" in params:
        meta["next_cursor"] = _cursor(offset + len(results), query) if results else None
    meta["groups_count"] = None
    if params.get("select"):
        fields = [name.strip() for name in params["select"].split(",")]
        bad = [name for name in fields if entities and all(name not in entity for entity in entities)]
        if bad:
            raise _BadRequestError(f"{', '.join(bad)} is not a valid select field")
        results = [{name: entity[name] for name in fields if name in entity} for entity in results]
    return {"meta": meta, "results": results}


# --- the server -------------------------------------------------------------------------------------------------


def _route_of(state: ReplayState, path: str) -> str:
    if path in state.sites:
        return _Route.MEDIAWIKI
    if path.startswith(f"/{OPENALEX_HOST}/"):
        return _Route.OPENALEX
    return _Route.OTHER


def _answer(state: ReplayState, method: str, path: str, params: Mapping[str, str]) -> Answer:
    route = _route_of(state, path)
    if route == _Route.MEDIAWIKI:
        recording = state.match(path, params)
        if recording is None:
            info = f"no recording for {path} with {urlencode(sorted(params.items()))}"
            nearest = state.nearest(path, params)
            if nearest is not None:
                info += f" (nearest: {nearest[0].name}, differing in {', '.join(nearest[1])})"
            return _error(route, 404, "badrequest", info)
        return Answer(200, recording.body, JSON, {"X-Replay-Recording": recording.name})
    if method == "POST":
        return _error(route, 405, "Method Not Allowed", f"{path} answers GET only", {"Allow": "GET, HEAD"})
    if route == _Route.OPENALEX:
        return _openalex(state, path[len(OPENALEX_HOST) + 1 :], params)
    if path == "/robots.txt":
        return Answer(200, state.robots_txt.encode(), TEXT)
    if path.startswith("/pages/"):
        name = unquote(path.removeprefix("/pages/"))
        page = state.pages.get(name)
        if page is not None:
            return Answer(200, page.read_bytes(), HTML)
    return _error(route, 404, "Not Found", f"nothing at {path}")


def _with_param(target: str, name: str, value: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}{urlencode({name: value})}"


def _handler(state: ReplayState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            arrived = time.monotonic()
            parts = urlsplit(self.path)
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                if "application/x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
                    pairs += parse_qsl(form, keep_blank_values=True)
            params = dict(pairs)
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.record(RequestRecord(method, parts.path, params, headers, arrived, self.path))
            if state.latency_s > 0:
                time.sleep(state.latency_s)
            if state.looping(self.path):
                self._redirect(self.path)
                return
            step = Step("ok") if params.get("_r") == "1" else state.next_step(parts.path)
            route = _route_of(state, parts.path)
            kind, seconds = step.kind, step.seconds
            if kind == "drop":
                self._drop()
                return
            if kind == "slow":
                time.sleep(seconds or 0.0)
                kind = "ok"
            if kind == "redirect":
                self._redirect(_with_param(self.path, "_r", "1"))
                return
            if kind == "redirect-loop":
                state.start_loop(self.path)
                self._redirect(self.path)
                return
            if kind in ("429", "429-date"):
                ahead = seconds or 0.0
                retry = _http_date(time.time() + math.ceil(ahead)) if kind == "429-date" else f"{ahead:g}"
                self._send(method, _error(route, 429, "ratelimited", "too many requests", {"Retry-After": retry}))
                return
            if kind in ("503", "500"):
                extra = {"Retry-After": f"{seconds:g}"} if seconds is not None else {}
                self._send(method, _error(route, int(kind), "internal_api_error", f"scripted {kind}", extra))
                return
            if kind == "maxlag":
                lag = f"{seconds:g}"
                info = f"Waiting for a database server: {lag} seconds lagged."
                extra = {"Retry-After": lag, "X-Database-Lag": lag}
                self._send(method, _error(_Route.MEDIAWIKI, 200, "maxlag", info, extra))
                return
            answer = _answer(state, method, parts.path, params)
            if answer.status == 200:
                answer.headers["ETag"] = answer.etag
                answer.headers["Last-Modified"] = state.last_modified
                if method in ("GET", "HEAD") and kind == "ok" and _not_modified(answer, headers, state.last_modified):
                    self._not_modified(answer)
                    return
            if kind == "wrong-type":
                answer.content_type = JSON if answer.content_type == HTML else "text/html"
            self._send(method, answer, truncate=kind == "truncate")

        def _send(self, method: str, answer: Answer, *, truncate: bool = False) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if method == "HEAD":
                return
            if truncate:
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.wfile.flush()
                self._drop()
                return
            self.wfile.write(answer.body)

        def _not_modified(self, answer: Answer) -> None:
            self.send_response(304)
            self.send_header("ETag", answer.etag)
            self.send_header("Last-Modified", state.last_modified)
            self.end_headers()

        def _redirect(self, target: str) -> None:
            host = self.headers.get("Host") or f"127.0.0.1:{self.connection.getsockname()[1]}"
            self.send_response(302)
            self.send_header("Location", f"http://{host}{target}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _drop(self) -> None:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that gave up: expected here
        return


@contextmanager
def replay_server(
    state: ReplayState | None = None,
    *,
    latency_s: float | None = None,
    robots_txt: str | None = None,
    ignored: Iterable[str] | None = None,
) -> Iterator[tuple[str, ReplayState]]:
    """(base URL, state) of a replay server on 127.0.0.1 and a free port; the keywords override the state's."""
    replay = state or ReplayState()
    if latency_s is not None:
        replay.latency_s = latency_s
    if robots_txt is not None:
        replay.robots_txt = robots_txt
    if ignored is not None:
        replay.ignored = frozenset(ignored)
    server = _QuietServer(("127.0.0.1", 0), _handler(replay))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", replay
    finally:
        server.shutdown()
        server.server_close()
