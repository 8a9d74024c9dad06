"""The crawler: worker threads that claim work items, fetch them politely, and store what they find.

Items come from ``ingest.work_items`` (the one queue: leases, fencing tokens, heartbeats, backoff, dead
letters), claimed a batch at a time with the validators of their last stored answers read alongside. Each
thread takes one, asks the item's source plugin for the request, waits for the limits and fetches with the one
shared httpx client. Its outcome goes to the crawler's writer, which commits the outcomes waiting for it
together, each item under its own savepoint, so that each is still all or nothing: the response with its audit
trail, its source's registration, the CHUNK_SOURCE trigger, the items it discovered and the item's completion
(or its failure). A 304, or a body whose sha256 is the stored one, writes nothing but the completion. One
writer keeps the database's write lock out of the fetching threads' way (SQLite has one writer at a time).

Failures: a timeout, a dropped or truncated answer, 429 and 5xx are retried with the queue's backoff, no
sooner than the server's ``Retry-After`` (which also pauses the host for every thread); any other 4xx, a
redirect loop, robots.txt's refusal or an unusable answer fail the item at once, with the reason.

Control: ``holocron crawl pause|resume|drain`` write ``ingest.crawl_control``, which every crawler polls; SIGINT
and SIGTERM stop claiming and let the requests in flight finish. A crawler killed outright leaves claims that
the next one takes back when their leases run out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.robotparser
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from holocron.backoff import parse_retry_after
from holocron.crawl.config import CrawlSettings
from holocron.crawl.limits import Limits
from holocron.crawl.queue import WorkItem, WorkItemInput, WorkItemQueue
from holocron.crawl.sources import ItemError, Reading, Request, Source
from holocron.hashing import sha256_text
from holocron.httpclient import error_text
from holocron.ingest.detect import UnsupportedContent, detect_source_type
from holocron.jobs.models import JobStatus
from holocron.jobs.queue import NewJob, Queue
from holocron.jobs.worker import Heartbeater, default_worker_id, stop_signals
from holocron.observability.metrics import observe_fetch
from holocron.store.crawl import (
    ControlState,
    Validators,
    control_states,
    effective_state,
    finish_crawl_run,
    items_of,
    last_validators,
    record_crawl_stats,
    start_crawl_run,
    unfinished_items,
)
from holocron.store.database import Database, Tx
from holocron.store.sources import RawRecord, register_in
from holocron.store.types import utcnow

log = logging.getLogger(__name__)

IndexTrigger = Callable[[Tx, list[tuple[str, str]]], None]
"""Queues the indexing of ``(source_id, content_sha256)`` pairs inside the crawl's write transaction."""
POLL_S = 0.5
CLAIM_BATCH_MAX = 32
"""At most this many items claimed at once (two per worker thread: one to fetch, one ready; few leases held)."""
WRITE_BATCH_MAX = 64
"""At most this many outcomes committed in one transaction."""
STATS_EVERY_S = 5.0
"""How often a running crawl writes its figures to its run row."""
LATENCY_SAMPLE = 1000
DISALLOW_ALL = ["User-agent: *", "Disallow: /"]
REASON_CHARS = 300


@dataclass
class CrawlStats:
    """What one crawler did; ``to_json`` is what ``crawl --json`` prints and the crawl run keeps."""

    fetched: int = 0
    stored: int = 0
    unchanged: int = 0
    not_modified: int = 0
    discovered: int = 0
    capped: int = 0
    retried: int = 0
    failed: int = 0
    completed: int = 0
    bytes: int = 0
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLE))
    """The latest requests' times (their median is reported): bounded, however long the crawl."""
    status_codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            elapsed = max(1e-9, time.monotonic() - self.started)
            latencies = sorted(self.latency_ms)
            return {
                "fetched": self.fetched,
                "stored": self.stored,
                "unchanged": self.unchanged,
                "not_modified": self.not_modified,
                "discovered": self.discovered,
                "capped": self.capped,
                "retried": self.retried,
                "failed": self.failed,
                "completed": self.completed,
                "bytes": self.bytes,
                "seconds": round(elapsed, 3),
                "items_per_second": round((self.completed + self.failed) / elapsed, 2),
                "latency_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
                "status_codes": dict(sorted(self.status_codes.items())),
                "errors": dict(self.errors.most_common(20)),
            }


class _FailedFetchError(Exception):
    def __init__(self, reason: str, *, permanent: bool, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:REASON_CHARS]
        self.permanent = permanent
        self.retry_after_s = retry_after_s


@dataclass
class _Claim:
    """A claimed item as the shared heartbeat sees it, with the validators of its last stored answer."""

    job: WorkItem
    queue: Queue[Any]
    validators: Validators | None = None
    lease_lost: bool = False

    def progress_snapshot(self) -> tuple[int, dict[str, Any]]:
        return 0, {}


@dataclass
class _Outcome:
    """What a fetch came to, waiting for the writer: an answer to store, or a failure to record."""

    claim: _Claim
    reading: Reading = field(default_factory=Reading)
    records: list[RawRecord] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    failure: _FailedFetchError | None = None


class Robots:
    """robots.txt of each host, fetched once through the crawl's client and limits (RFC 9309: a 4xx allows
    everything, an unreachable file allows nothing)."""

    def __init__(self, client: httpx.Client, limits: Limits, agent: str) -> None:
        self.client, self.limits, self.agent = client, limits, agent
        self._parsers: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._lock = threading.Lock()

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            parser = self._parsers.get(origin)
            if parser is None:
                parser = self._parsers[origin] = self._fetch(origin, parts.netloc)
        return parser.can_fetch(self.agent, url)

    def _fetch(self, origin: str, host: str) -> urllib.robotparser.RobotFileParser:
        parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        try:
            with self.limits.request(host):
                response = self.client.get(f"{origin}/robots.txt")
        except httpx.HTTPError:
            parser.parse(DISALLOW_ALL)
            return parser
        if response.status_code >= 500:
            parser.parse(DISALLOW_ALL)
        elif response.status_code >= 400:
            parser.parse([])
        else:
            parser.parse(response.text.splitlines())
        return parser


class Crawler:
    """Crawl the given sources with ``max_workers`` threads until no work is left, a drain or a stop."""

    def __init__(
        self,
        db: Database,
        sources: Mapping[str, Source],
        settings: CrawlSettings,
        *,
        index: IndexTrigger | None = None,
        max_workers: int = 4,
        worker_id: str | None = None,
        progress: Callable[[CrawlStats], None] | None = None,
        handle_signals: bool = True,
        exit_when_idle: bool = True,
    ) -> None:
        if max_workers < 1:
            raise ValueError("a crawl needs at least one worker")
        self.db = db
        self.sources = dict(sources)
        self.settings = settings
        self.index = index
        self.max_workers = max_workers
        self.worker_id = worker_id or default_worker_id()
        self.progress = progress
        self.handle_signals = handle_signals
        self.exit_when_idle = exit_when_idle
        self.queue = WorkItemQueue(db, retry_base_s=settings.retry_base_s, retry_cap_s=settings.retry_cap_s)
        overall, per_host = settings.limits()
        self.limits = Limits(overall, per_host)
        self.stats = CrawlStats()
        self.run_id: str | None = None
        self._stop = threading.Event()
        self._new_work = threading.Event()
        self._states: dict[str, ControlState] = {}
        self._in_flight = 0
        """Items claimed and not yet written (waiting, fetching, or waiting for the writer)."""
        self._lock = threading.Lock()
        self._claim_lock = threading.Lock()
        self._claimed: deque[_Claim] = deque()
        self._claim_batch = min(CLAIM_BATCH_MAX, 2 * max_workers)
        self._outbox: queue.Queue[_Outcome | None] = queue.Queue(maxsize=4 * max_workers)
        self._heartbeater = Heartbeater([self.queue], settings.lease_s, settings.lease_s / 3)

    # -- seeding ----------------------------------------------------------------------------------------------

    def seed(self, extra: Sequence[WorkItemInput] = ()) -> int:
        """Queue every source's seeds (and ``extra``); items already known are left as they are. Returns how
        many were new."""
        seeds = [s for source in self.sources.values() for s in source.seeds()] + list(extra)
        with self.db.write() as tx:
            created = self._enqueue(tx, seeds)
        return created

    def refresh(self) -> int:
        """Queue again every finished item of these sources: the next run asks each page conditionally."""
        with self.db.write() as tx:
            table = self.queue.kind.job_table(tx.t)
            return len(self.queue.reopen_in(tx, table.c.source_name.in_(list(self.sources))))

    def _enqueue(self, tx: Tx, found: Sequence[WorkItemInput]) -> int:
        """Queue ``found`` under each source's ``max_items`` cap (what the cap leaves out is counted)."""
        kept: list[WorkItemInput] = []
        by_source: dict[str, list[WorkItemInput]] = {}
        for entry in found:
            by_source.setdefault(entry.source_name, []).append(entry)
        cap = self.settings.max_items
        for name, entries in by_source.items():
            if cap is not None:
                room = max(0, cap - items_of(tx, name))
                if len(entries) > room:
                    with self.stats.lock:
                        self.stats.capped += len(entries) - room
                    entries = entries[:room]
            kept += entries
        if not kept:
            return 0
        made = self.queue.enqueue_many_in(
            tx, [NewJob(entry.resource_type, entry.model_copy(update={"crawl_run_id": self.run_id})) for entry in kept]
        )
        return sum(1 for e in made if e.created)

    # -- running ----------------------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        if not self._stop.is_set():
            log.warning("crawl stopping: %s", reason)
        self._stop.set()
        self._new_work.set()

    def run(self) -> CrawlStats:
        self.run_id = start_crawl_run(
            self.db, {"sources": sorted(self.sources), "max_workers": self.max_workers}, worker_id=self.worker_id
        )
        error: str | None = None
        self._heartbeater.start()
        writer = threading.Thread(target=self._write_loop, name="holocron-crawl-writer", daemon=True)
        writer.start()
        try:
            with stop_signals(self._on_signal, enabled=self.handle_signals), self._client() as client:
                robots = Robots(client, self.limits, self.settings.user_agent)
                self._poll_control()
                threads = [
                    threading.Thread(target=self._work, args=(client, robots), name=f"holocron-crawl-{n}", daemon=True)
                    for n in range(self.max_workers)
                ]
                for thread in threads:
                    thread.start()
                recorded = time.monotonic()
                while any(thread.is_alive() for thread in threads):
                    for thread in threads:
                        thread.join(timeout=POLL_S)
                    self._poll_control()
                    if time.monotonic() - recorded >= STATS_EVERY_S:
                        record_crawl_stats(self.db, self.run_id, self.stats.to_json())
                        recorded = time.monotonic()
                    if self.progress is not None:
                        self.progress(self.stats)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._outbox.put(None)  # the writer commits what the threads handed it, then stops
            writer.join()
            self._give_back_unstarted()
            self._heartbeater.close()
            finish_crawl_run(self.db, self.run_id, stats=self.stats.to_json(), error=error)
        return self.stats

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        with httpx.Client(
            headers={"User-Agent": self.settings.header()},
            timeout=self.settings.timeout_s,
            follow_redirects=True,
            max_redirects=self.settings.max_redirects,
            limits=httpx.Limits(max_connections=self.max_workers * 2, max_keepalive_connections=self.max_workers),
        ) as client:
            yield client

    def _on_signal(self, name: str) -> None:
        self.stop(f"received {name}; finishing the requests in flight")

    def _poll_control(self) -> None:
        try:
            with self.db.read() as tx:
                states = control_states(tx)
        except Exception:  # a busy database: the last states hold until the next poll
            log.debug("reading the crawl control failed", exc_info=True)
            return
        with self._lock:
            self._states = {name: effective_state(states, name) for name in self.sources}

    def _claimable(self) -> tuple[list[str], bool, bool]:
        """Sources to claim from now, whether any is paused, and whether every one is draining."""
        with self._lock:
            states = dict(self._states)
        running = [name for name in self.sources if states.get(name, "running") == "running"]
        paused = any(state == "paused" for state in states.values())
        draining = bool(states) and all(state == "draining" for state in states.values())
        return running, paused, draining

    def _work(self, client: httpx.Client, robots: Robots) -> None:
        while not self._stop.is_set():
            running, paused, draining = self._claimable()
            if draining:
                return
            claim = self._take(running) if running else None
            if claim is None:
                if self.exit_when_idle and not paused and self._idle():
                    return
                self._new_work.wait(POLL_S)
                self._new_work.clear()
                continue
            try:
                outcome = self._process(client, robots, claim)
            except Exception:
                work = claim.job
                log.exception(
                    "work item %s (%s %s) failed unexpectedly", work.job_id, work.source_name, work.resource_id
                )
                failure = _FailedFetchError("the crawler failed on this item (see its log)", permanent=False)
                outcome = _Outcome(claim, failure=failure)
            self._heartbeater.settle(claim)  # its lease still renewed; a loss is now the writer's to find
            self._outbox.put(outcome)

    # -- claiming ---------------------------------------------------------------------------------------------

    def _take(self, running: Sequence[str]) -> _Claim | None:
        """The next claimed item of a running source; claims a batch (one statement, one read of the batch's
        validators) when none is waiting. Items of a source paused since their claim are given back."""
        with self._claim_lock:
            while self._claimed:
                claim = self._claimed.popleft()
                if claim.lease_lost:  # taken back while it waited here: not ours to fetch
                    self._settled(claim)
                elif claim.job.source_name in running:
                    return claim
                else:
                    self._give_back(claim)
            batch = self.queue.claim_many(
                self.worker_id, self._claim_batch, lease_seconds=self.settings.lease_s, spaces=running
            )
            if not batch:
                return None
            with self._lock:
                self._in_flight += len(batch)
            validators = self._validators(batch)
            for job in batch:
                claim = _Claim(job, self.queue, validators.get((job.source_name, job.resource_id)))
                self._heartbeater.add(claim)
                self._claimed.append(claim)
            return self._claimed.popleft()

    def _validators(self, batch: Sequence[WorkItem]) -> dict[tuple[str, str], Validators]:
        by_source: dict[str, list[str]] = {}
        for job in batch:
            by_source.setdefault(job.source_name, []).append(job.resource_id)
        with self.db.read() as tx:
            return {
                (name, resource_id): found
                for name, ids in by_source.items()
                for resource_id, found in last_validators(tx, name, ids).items()
            }

    def _give_back(self, claim: _Claim) -> None:
        """An item claimed and never started: back in the queue, its attempt not counted."""
        try:
            self.queue.release(claim.job)
        finally:
            self._settled(claim)

    def _give_back_unstarted(self) -> None:
        with self._claim_lock:
            while self._claimed:
                self._give_back(self._claimed.popleft())

    def _settled(self, claim: _Claim) -> None:
        self._heartbeater.remove(claim)
        with self._lock:
            self._in_flight -= 1

    def _idle(self) -> bool:
        with self._lock:
            if self._in_flight:
                return False
        with self.db.read() as tx:
            return unfinished_items(tx, list(self.sources)) == 0

    # -- one item ---------------------------------------------------------------------------------------------

    def _process(self, client: httpx.Client, robots: Robots, claim: _Claim) -> _Outcome:
        entry = claim.job.parsed_input()
        source = self.sources[claim.job.source_name]
        try:
            request = source.request(entry)
            if source.obeys_robots and not robots.allowed(request.url):
                raise _FailedFetchError(f"robots.txt of {urlsplit(request.url).netloc} disallows it", permanent=True)
            return self._fetch(client, source, claim, entry, request)
        except _FailedFetchError as failure:
            return _Outcome(claim, failure=failure)
        except ItemError as error:
            refused = _FailedFetchError(error.reason, permanent=error.permanent, retry_after_s=error.retry_after_s)
            return _Outcome(claim, failure=refused)

    @staticmethod
    def _conditional_headers(claim: _Claim, request: Request) -> dict[str, str]:
        found = claim.validators
        if not request.conditional:
            return {}
        headers: dict[str, str] = {}
        if found is not None and found.etag:
            headers["If-None-Match"] = found.etag
        if found is not None and found.last_modified:
            headers["If-Modified-Since"] = found.last_modified
        return headers

    def _fetch(
        self, client: httpx.Client, source: Source, claim: _Claim, entry: WorkItemInput, request: Request
    ) -> _Outcome:
        """Ask for the item and read the answer: what to store, or why it failed (nothing is written here)."""
        headers = self._conditional_headers(claim, request)
        host = urlsplit(request.url).netloc
        try:
            with self.limits.request(host):
                requested_at, started = utcnow(), time.perf_counter()
                try:
                    response = client.get(request.url, params=dict(request.params), headers=headers)
                except httpx.HTTPError:
                    observe_fetch(source.name, None, 0, time.perf_counter() - started)
                    raise
        except httpx.TooManyRedirects as exc:
            raise _FailedFetchError(f"too many redirects (a redirect loop?): {exc}", permanent=True) from None
        except httpx.TimeoutException:
            raise _FailedFetchError(f"timed out after {self.settings.timeout_s:g} s", permanent=False) from None
        except httpx.HTTPError as exc:  # refused, dropped, truncated
            raise _FailedFetchError(f"connection failed: {type(exc).__name__}: {exc}", permanent=False) from None
        duration_ms = (time.perf_counter() - started) * 1000
        code = response.status_code
        observe_fetch(source.name, code, len(response.content), duration_ms / 1000)
        with self.stats.lock:
            self.stats.fetched += 1
            self.stats.status_codes[str(code)] += 1
            self.stats.latency_ms.append(duration_ms)
            self.stats.bytes += len(response.content)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == 304:
            return _Outcome(claim, result={"status_code": 304, "not_modified": True})
        if code == 429 or code >= 500:
            if retry_after:
                self.limits.pause(host, retry_after)
            raise _FailedFetchError(f"HTTP {code} {response.reason_phrase}", permanent=False, retry_after_s=retry_after)
        if code >= 400:
            raise _FailedFetchError(f"HTTP {code} {response.reason_phrase}: {error_text(response)}", permanent=True)
        content_type = response.headers.get("Content-Type", "")
        if request.expect not in content_type.lower():
            raise _FailedFetchError(
                f"expected {request.expect}, got Content-Type {content_type or 'none'}", permanent=False
            )
        try:
            reading = source.read(entry, response.text)
        except ItemError as error:
            if error.retry_after_s is not None:
                error.retry_after_s = retry_after or error.retry_after_s
                self.limits.pause(host, error.retry_after_s)
            raise
        audit = {
            "request_method": "GET",
            "request_headers": {"User-Agent": self.settings.header(), **headers},
            "requested_at_utc": requested_at,
            "responded_at_utc": utcnow(),
            "status_code": code,
            "response_headers": dict(response.headers),
            "duration_ms": round(duration_ms, 3),
            "work_item_id": claim.job.job_id,
            "run_id": self.run_id,
        }
        records = []
        for page in reading.pages:
            name = urlsplit(str(response.url)).path if request.expect == "html" else "answer.json"
            try:
                detected = detect_source_type(page.payload.encode("utf-8"), name)
            except UnsupportedContent as exc:
                raise _FailedFetchError(f"unusable content: {exc.reason}", permanent=True) from None
            records.append(
                RawRecord(
                    source_system=source.name,
                    resource_id=page.resource_id,
                    request_uri=str(response.url),
                    source_type=detected.source_type,
                    content_type=detected.content_type,
                    payload=page.payload,
                    content_sha256=sha256_text(page.payload),
                    fetched_at_utc=requested_at,
                    audit=audit,
                )
            )
        return _Outcome(claim, reading, records, {"status_code": code, **reading.facts})

    # -- writing ----------------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        """Commit the outcomes waiting in the outbox together, until the run hands it None."""
        stopping = False
        while not stopping:
            first = self._outbox.get()
            if first is None:
                return
            group = [first]
            while len(group) < WRITE_BATCH_MAX:
                try:
                    found = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if found is None:
                    stopping = True
                    break
                group.append(found)
            self._write(group)

    def _write(self, group: list[_Outcome]) -> None:
        """One transaction for the group: the claims still owned are locked first, then every answer is
        written in bulk. A group the database refuses is written again one item at a time, so that one bad
        item holds back no other; an item refused alone is failed with the database's reason."""
        try:
            with self.db.write() as tx:
                tallies = self._write_in(tx, group)
        except Exception as exc:
            if len(group) > 1:
                for outcome in group:
                    self._write([outcome])
                return
            self._refused(group[0], exc)
            return
        for outcome, tally in zip(group, tallies, strict=True):
            self._settled(outcome.claim)
            if tally is not None:
                self._count(outcome, tally)
        self._new_work.set()

    def _write_in(self, tx: Tx, group: list[_Outcome]) -> list[dict[str, Any] | None]:
        """The writes of the group's owned items; None for an item whose claim lost it (nothing of it kept)."""
        owned = self.queue.owned_in(tx, [outcome.claim.job for outcome in group])
        tallies: list[dict[str, Any] | None] = [None] * len(group)
        answers: list[tuple[int, _Outcome]] = []
        for n, outcome in enumerate(group):
            work = outcome.claim.job
            if work.job_id not in owned:
                log.warning("work item %s was taken back while it ran; its answer is dropped", work.job_id)
            elif outcome.failure is not None:
                failure = outcome.failure
                failed = self.queue.fail_in(
                    tx, work, failure.reason, permanent=failure.permanent, not_before_s=failure.retry_after_s
                )
                tallies[n] = {"dead": failed is not None and failed.status is JobStatus.DEADLETTER}
            else:
                answers.append((n, outcome))
        registered = register_in(tx, [record for _, outcome in answers for record in outcome.records])
        fresh, unchanged = set(registered.to_index), set(registered.unchanged)
        if self.index is not None and fresh:
            pairs = {(r.source_id, r.content_sha256) for _, o in answers for r in o.records if r.source_id in fresh}
            self.index(tx, sorted(pairs))
        successes: list[tuple[WorkItem, dict[str, Any]]] = []
        for n, outcome in answers:
            ids = [record.source_id for record in outcome.records]
            tally = {
                "stored": sum(1 for i in ids if i in fresh),
                "unchanged": sum(1 for i in ids if i in unchanged),
                "created": self._enqueue(tx, outcome.reading.discovered) if outcome.reading.discovered else 0,
            }
            successes.append(
                (outcome.claim.job, {**outcome.result, "stored": tally["stored"], "discovered": tally["created"]})
            )
            tallies[n] = tally
        self.queue.succeed_many_in(tx, successes)
        return tallies

    def _refused(self, outcome: _Outcome, exc: Exception) -> None:
        """The database would not take this item's outcome: fail the attempt with its reason (a later attempt
        asks again), or, when even that is refused, leave its lease to run out."""
        job = outcome.claim.job
        log.error(
            "work item %s (%s %s): storing its outcome failed",
            job.job_id,
            job.source_name,
            job.resource_id,
            exc_info=exc,
        )
        try:
            self.queue.fail(job, f"storing the answer failed: {type(exc).__name__}: {exc}"[:REASON_CHARS])
        except Exception:
            log.exception("work item %s: recording the failure failed too; its lease will run out", job.job_id)
        finally:
            self._settled(outcome.claim)

    def _count(self, outcome: _Outcome, tally: dict[str, Any]) -> None:
        work = outcome.claim.job
        with self.stats.lock:
            if outcome.failure is not None:
                self.stats.errors[outcome.failure.reason.split(": ", 1)[0]] += 1
                if tally["dead"]:
                    self.stats.failed += 1
                else:
                    self.stats.retried += 1
            else:
                self.stats.completed += 1
                self.stats.stored += tally["stored"]
                self.stats.unchanged += tally["unchanged"]
                self.stats.discovered += tally["created"]
                if outcome.result.get("not_modified"):
                    self.stats.not_modified += 1
        if outcome.failure is not None and tally["dead"]:
            log.warning("%s %s: failed: %s", work.source_name, work.resource_id, outcome.failure.reason)
