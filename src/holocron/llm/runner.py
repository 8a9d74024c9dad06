"""Running one LLM job: evidence -> prompt -> model -> validation -> one transaction of records.

The steps, and why:

- **Evidence** is the page's own chunks in reading order (``source`` scope) or a search (``query`` scope),
  bounded by the existing policy, with the interrogation's own limits over the configured ones.
- **The prompt fits the model's window, always.** Its tokens are counted (the local model's tokenizer and
  chat template; about three bytes a token for a server), and while it is over ``context - num_predict``
  the evidence is bounded again, tighter, each cut recorded with reason ``context_window``; a prompt that
  cannot fit even without evidence fails the job, it is never sent.
- **Valid by construction, then validated.** The answer is decoded (local model) or asked (``format``,
  ``response_format``) under the interrogation's JSON schema, then parsed, validated by its pydantic model
  and checked against the bundle (citations must name its evidence ids). A failure asks again, up to
  ``llm_attempts`` times with exponential backoff, feeding the error back in the conversation; the last
  failure leaves ``invalid_json_response`` and ``error_manifest`` artifacts and dead-letters the job.
- **One transaction** writes the bundle, the run-evidence link, the artifacts, the run's close, derived
  rows (``sem.source_page``) and the job's outcome, fenced by the claim's token: a worker that lost its lease
  writes nothing, and a worker killed at any point leaves either all of it or none (the lake files of a
  killed run are swept, see :func:`sweep_orphan_artifacts`).
- A model server that fails (timeout, 5xx, dropped connection) fails the attempt through the queue's
  backoff (after the provider's own retries and circuit breaker); the job runs again.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ValidationError

from holocron.backoff import backoff_delay
from holocron.chat.base import ChatError, ChatIdentity, ChatOptions, ChatProvider, ChatResult, InvalidOutputError
from holocron.config import Settings
from holocron.evidence.bundle import EvidenceBundle, build_bundle, chunk_hits, rebound, render_text
from holocron.evidence.policy import BoundingPolicy, utf8_len
from holocron.jobs.models import JobError, PermanentJobError
from holocron.jobs.queue import FailOutcome
from holocron.lake.artifacts import artifact_path, encode_artifact, write_file
from holocron.llm.interrogations import AnswerContext, Interrogation, InterrogationRegistry
from holocron.llm.queue import LlmJob, LlmJobInput, LlmQueue
from holocron.retrieval.filters import SearchFilters
from holocron.retrieval.search import SearchResult
from holocron.store.chunks import source_chunks
from holocron.store.database import Database
from holocron.store.evidence import save_bundle_in
from holocron.store.llm import add_artifacts_in, finish_llm_run_in, link_evidence_in, orphan_run_ids

log = logging.getLogger("holocron.llm.runner")

BYTES_PER_TOKEN = 3.0
"""For a server whose tokenizer is not at hand: a cautious bytes-per-token (English runs about 4)."""
WINDOW_MARGIN_TOKENS = 16
FEEDBACK_CHARS = 400
"""How much of an invalid answer, and of its error, is shown back to the model."""
LLM_RUNS = "llm_runs"
ARTIFACT_EXTENSIONS = {"prompt_text": "txt", "raw_response": "txt", "invalid_json_response": "txt"}


class LlmRuntime(Protocol):
    """What the runner needs of the library (:class:`holocron.Holocron` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def chat_provider(self) -> ChatProvider: ...

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        run_id: str | None = None,
        mode: str | None = None,
        filters: SearchFilters | None = None,
        max_per_source: int | None = None,
        log: bool = True,
    ) -> SearchResult: ...


class LeaseLostError(JobError):
    """The claim no longer owns the job: what the run prepared is discarded."""


@dataclass
class Attempt:
    number: int
    error: str | None
    raw: str
    model_seconds: float
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "error": self.error,
            "raw_response": self.raw,
            "model_seconds": round(self.model_seconds, 4),
            "metrics": self.metrics,
        }


@dataclass
class RunOutcome:
    """What a run ended with: the answer, or the error that dead-lettered or will retry the job."""

    status: str  # SUCCEEDED or FAILED
    answer: dict[str, Any] | None
    error: str | None
    metrics: dict[str, Any]
    artifacts: list[str] = field(default_factory=list)
    job_outcome: FailOutcome | None = None


@dataclass(frozen=True)
class Prepared:
    """The question as it goes to the model."""

    interrogation: Interrogation
    job_input: LlmJobInput
    bundle: EvidenceBundle
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    options: ChatOptions
    identity: ChatIdentity
    title: str | None
    content_sha256: str | None
    fit: dict[str, Any]


def chat_options(settings: Settings, overrides: Mapping[str, Any]) -> ChatOptions:
    """The configured options with the interrogation's over them; an unknown option name is refused."""
    base = ChatOptions(
        num_predict=settings.chat_num_predict, temperature=settings.chat_temperature, seed=settings.chat_seed
    )
    known = {f.name for f in fields(ChatOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PermanentJobError(f"unknown model option {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {key: tuple(value) if key == "stop" else value for key, value in overrides.items()}
    return replace(base, **values)


def _answer_error(text: str, done_reason: str | None = None) -> str | None:
    """Why an answer is not a JSON value at all (empty, or not JSON), or None when it is one."""
    stripped = text.strip()
    if not stripped:
        return "the answer is empty" + (" (num_predict reached)" if done_reason == "length" else "")
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        cut = " (cut at num_predict)" if done_reason == "length" else ""
        return f"the answer is not JSON{cut}: {exc}"
    return None


class LlmRunner:
    """Runs claimed ``llm.job`` rows for one runtime (its chat model, its store, its lake)."""

    def __init__(
        self,
        runtime: LlmRuntime,
        queue: LlmQueue,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rt = runtime
        self.queue = queue
        self.registry: InterrogationRegistry = queue.registry
        self.sleep = sleep

    @property
    def lake_dir(self) -> Path:
        return self.rt.settings.resolved_lake_dir

    # -- preparing the question -------------------------------------------------------------------------------

    def prepare(self, job: LlmJob) -> Prepared:
        """Evidence, prompt and options for a job; the prompt fitted to the model's window."""
        job_input = job.parsed_input()
        interrogation = self.registry.get(job_input.interrogation)
        provider = self.rt.chat_provider
        identity = provider.identity()
        options = chat_options(self.rt.settings, interrogation.options)
        bundle, title, content_sha256 = self._evidence(interrogation, job_input)
        schema = interrogation.schema(bundle)
        messages = self._messages(interrogation, job_input, bundle, title, schema)
        bundle, messages, fit = self._fit(
            provider, identity, options, interrogation, job_input, bundle, title, schema, messages
        )
        return Prepared(
            interrogation, job_input, bundle, messages, schema, options, identity, title, content_sha256, fit
        )

    def _policy(self, interrogation: Interrogation) -> BoundingPolicy:
        spec = interrogation.evidence
        return BoundingPolicy.from_settings(
            self.rt.settings,
            max_items=spec.max_items,
            max_total_bytes=spec.max_total_bytes,
            max_item_bytes=spec.max_item_bytes,
        )

    def _evidence(
        self, interrogation: Interrogation, job_input: LlmJobInput
    ) -> tuple[EvidenceBundle, str | None, str | None]:
        policy = self._policy(interrogation)
        spec = interrogation.evidence
        title: str | None = None
        content_sha256: str | None = None
        if job_input.source_id is not None:
            with self.rt.db.read() as tx:
                s = tx.t.source_registry
                from sqlalchemy import select

                source = tx.execute(
                    select(s.c.title, s.c.content_sha256).where(s.c.source_id == job_input.source_id)
                ).first()
                rows = source_chunks(tx, job_input.source_id) if spec.scope == "source" else []
            if source is None:
                raise PermanentJobError(f"source {job_input.source_id} does not exist (deleted since it was queued?)")
            title, content_sha256 = source.title, source.content_sha256
        if spec.scope == "source":
            if not rows:
                raise JobError(f"source {job_input.source_id} has no chunks yet: index it (`holocron index`)")
            bundle = build_bundle(chunk_hits(rows), policy, query=None)
            return replace(bundle, bundle_type="source"), title, content_sha256
        query = spec.query.format(**job_input.params) if spec.query else job_input.query
        if query is None:
            raise PermanentJobError(f"{interrogation.key} needs a query")
        filters = SearchFilters(source_ids=(job_input.source_id,)) if job_input.source_id else None
        result = self.rt.search(query, max(spec.k, policy.max_items), mode=spec.mode, filters=filters)
        if not result.hits:
            raise PermanentJobError(f"no evidence found for {query!r}")
        bundle = build_bundle(result.hits, policy, query=query, retrieval_id=result.retrieval_id or None)
        return bundle, title, content_sha256

    def _messages(
        self,
        interrogation: Interrogation,
        job_input: LlmJobInput,
        bundle: EvidenceBundle,
        title: str | None,
        schema: Mapping[str, Any],
    ) -> list[dict[str, str]]:
        prompt = interrogation.prompt.format(
            evidence=render_text(bundle) or "(no evidence)",
            title=title or job_input.source_id or "",
            source_id=job_input.source_id or "",
            query=job_input.query or "",
            evidence_ids=", ".join(item.evidence_id for item in bundle.items) or "none",
            **job_input.params,
        )
        system = interrogation.system + "\nJSON schema of the answer: " + orjson.dumps(schema).decode()
        return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]

    @staticmethod
    def _tokens(provider: ChatProvider, messages: Sequence[Mapping[str, str]]) -> int:
        counter = getattr(provider, "count_tokens", None)
        if callable(counter):
            return int(counter(list(messages)))
        return int(sum(utf8_len(m["content"]) for m in messages) / BYTES_PER_TOKEN) + 8 * len(messages)

    def _fit(
        self,
        provider: ChatProvider,
        identity: ChatIdentity,
        options: ChatOptions,
        interrogation: Interrogation,
        job_input: LlmJobInput,
        bundle: EvidenceBundle,
        title: str | None,
        schema: Mapping[str, Any],
        messages: list[dict[str, str]],
    ) -> tuple[EvidenceBundle, list[dict[str, str]], dict[str, Any]]:
        window = options.num_ctx or identity.context_length
        tokens = self._tokens(provider, messages)
        fit: dict[str, Any] = {"context_length": window, "prompt_tokens": tokens, "cut_for_window": False}
        if window is None:
            return bundle, messages, fit
        budget = window - (options.num_predict or 0) - WINDOW_MARGIN_TOKENS
        fit["prompt_budget_tokens"] = budget
        if tokens <= budget:
            return bundle, messages, fit
        bare = self._tokens(
            provider, self._messages(interrogation, job_input, replace(bundle, items=[]), title, schema)
        )
        if bare > budget:
            raise PermanentJobError(
                f"the prompt takes {bare} tokens without evidence; the model's window of {window} leaves "
                f"{budget} after {options.num_predict} answer tokens"
            )
        first_tokens = tokens
        while tokens > budget:
            total = bundle.total_bytes
            target = int(total * (budget - bare) / max(tokens - bare, 1) * 0.9)
            if target < 1 or target >= total:
                raise PermanentJobError(
                    f"not even one evidence item fits the model's window of {window} tokens "
                    f"({bare} without evidence, {budget} available)"
                )
            policy = bundle.policy
            tighter = BoundingPolicy(
                max_items=policy.max_items, max_total_bytes=target, max_item_bytes=min(policy.max_item_bytes, target)
            )
            bundle = rebound(bundle, tighter, reason="context_window")
            messages = self._messages(interrogation, job_input, bundle, title, schema)
            tokens = self._tokens(provider, messages)
            fit.update(cut_for_window=True, prompt_tokens=tokens, prompt_tokens_before_cut=first_tokens)
            fit["evidence_bytes"] = bundle.total_bytes
        return bundle, messages, fit

    # -- asking -----------------------------------------------------------------------------------------------

    def _validate(self, prepared: Prepared, result: ChatResult) -> tuple[BaseModel | None, str | None]:
        problem = _answer_error(result.text, result.done_reason)
        if problem is not None:
            return None, problem
        data = orjson.loads(result.text.strip())
        try:
            answer = prepared.interrogation.output.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()[:8]
            )
            return None, f"the answer does not match the schema: {problems}"
        if prepared.interrogation.check is not None:
            problems_list = prepared.interrogation.check(answer, prepared.bundle)
            if problems_list:
                return None, "; ".join(problems_list[:8])
        return answer, None

    def ask(
        self, prepared: Prepared, checkpoint: Callable[[], None] = lambda: None
    ) -> tuple[BaseModel | None, list[Attempt], ChatResult | None]:
        """Up to ``llm_attempts`` model calls; each invalid answer is fed back with its error."""
        settings = self.rt.settings
        provider = self.rt.chat_provider
        messages: list[dict[str, str]] = list(prepared.messages)
        attempts: list[Attempt] = []
        last: ChatResult | None = None
        options = prepared.options
        schema = prepared.schema if settings.chat_constrained or settings.chat_provider != "local" else None
        for number in range(1, settings.llm_attempts + 1):
            checkpoint()
            started = time.perf_counter()
            try:
                result = provider.chat(messages, schema=schema, options=options)
                answer, error = self._validate(prepared, result)
            except InvalidOutputError as exc:  # the server ignored the schema: an invalid answer like any other
                result = ChatResult(text=exc.text, model=prepared.identity.model_name, done_reason=None)
                answer, error = None, _answer_error(exc.text) or str(exc)
            except ChatError as exc:
                raise JobError(f"the chat model failed: {exc}") from exc
            seconds = time.perf_counter() - started
            last = result
            metrics = {**result.metrics.to_json(), "num_predict": options.num_predict}
            attempts.append(Attempt(number, error, result.text, seconds, metrics))
            if answer is not None:
                return answer, attempts, last
            log.warning(
                "%s: attempt %d of %d invalid: %s", prepared.interrogation.key, number, settings.llm_attempts, error
            )
            if number < settings.llm_attempts:
                options = self._more_room(prepared, options, result)
                again = self._feedback(provider, prepared, options, result.text, error or "invalid")
                if again is None:
                    log.warning("%s: no room in the window to ask again", prepared.interrogation.key)
                    break
                messages = again
                self.sleep(backoff_delay(number, base=settings.llm_retry_backoff_s, cap=30.0, jitter=0.25))
        return None, attempts, last

    def _feedback(
        self, provider: ChatProvider, prepared: Prepared, options: ChatOptions, answer: str, error: str
    ) -> list[dict[str, str]] | None:
        """The question again with the last invalid answer (its start) and what was wrong with it; without the
        answer when both would not fit the window; None when not even the error fits (no over-long prompt is
        ever sent). Only the latest failure is fed back, so the prompt stays bounded."""
        problem = error if len(error) <= FEEDBACK_CHARS else error[:FEEDBACK_CHARS] + "…"
        feedback = {"role": "user", "content": f"That answer was invalid: {problem}. Answer again, only JSON."}
        shown = answer if len(answer) <= FEEDBACK_CHARS else answer[:FEEDBACK_CHARS] + "…"
        window = prepared.fit.get("context_length")
        budget = window - (options.num_predict or 0) - WINDOW_MARGIN_TOKENS if window else None
        for messages in (
            [*prepared.messages, {"role": "assistant", "content": shown}, feedback],
            [*prepared.messages, feedback],
        ):
            if budget is None or self._tokens(provider, messages) <= budget:
                return messages
        return None

    @staticmethod
    def _more_room(prepared: Prepared, options: ChatOptions, result: ChatResult) -> ChatOptions:
        """An answer cut at ``num_predict`` gets twice the room on the next attempt, as far as the window allows:
        telling the model to be brief does little; under a schema, a longer budget lets the answer close."""
        if result.done_reason != "length" or not options.num_predict:
            return options
        window = prepared.fit.get("context_length")
        headroom = (window - prepared.fit["prompt_tokens"] - WINDOW_MARGIN_TOKENS) if window else None
        more = options.num_predict * 2 if headroom is None else min(options.num_predict * 2, headroom)
        return replace(options, num_predict=more) if more > options.num_predict else options

    # -- the whole run ------------------------------------------------------------------------------------------

    def run(self, job: LlmJob, run_id: str, *, checkpoint: Callable[[], None] = lambda: None) -> RunOutcome:
        """Prepare, ask, and write everything in one transaction with the job's outcome.

        Raises :class:`JobError` (retry through the queue) when the model or its server fails, and
        :class:`PermanentJobError` for a job no retry can answer; the caller records those.
        """
        started = time.perf_counter()
        load_seconds = self._load_model()
        prepared = self.prepare(job)
        prepare_seconds = time.perf_counter() - started - load_seconds
        answer, attempts, last = self.ask(prepared, checkpoint)
        checkpoint()
        model_seconds = sum(a.model_seconds for a in attempts)
        metrics: dict[str, Any] = {
            "attempts": len(attempts),
            "valid_on_attempt": len(attempts) if answer is not None else None,
            "model_seconds": round(model_seconds, 4),
            "prepare_seconds": round(prepare_seconds, 4),
            "load_seconds": round(load_seconds, 4),
            "evidence_items": len(prepared.bundle.items),
            "evidence_bytes": prepared.bundle.total_bytes,
            "context": prepared.fit,
            "constrained": prepared.schema is not None,
            "requested_version": job.parsed_input().version,
            **(last.metrics.to_json() if last is not None else {}),
            "done_reason": last.done_reason if last is not None else None,
            "attempt_errors": [a.error for a in attempts if a.error],
        }
        request = {
            "model": prepared.identity.model_name,
            "provider": prepared.identity.provider,
            "messages": prepared.messages,
            "schema": prepared.schema,
            "options": {f.name: getattr(prepared.options, f.name) for f in fields(ChatOptions)},
        }
        prompt_text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prepared.messages)
        contents: dict[str, Any] = {
            "request_json": request,
            "evidence_bundle": prepared.bundle.to_json(),
            "prompt_text": prompt_text,
        }
        if last is not None:
            contents["response_json"] = last.raw or {"text": last.text, "done_reason": last.done_reason}
            contents["raw_response"] = last.text
        if answer is not None:
            contents["parsed_output"] = answer.model_dump(mode="json")
            error = None
        else:
            error = f"no valid answer in {len(attempts)} attempts: {attempts[-1].error if attempts else 'none'}"
            contents["invalid_json_response"] = last.text if last is not None else ""
            contents["error_manifest"] = {
                "job_id": job.job_id,
                "run_id": run_id,
                "interrogation": prepared.interrogation.key,
                "version": prepared.interrogation.version,
                "error": error,
                "attempts": [a.to_json() for a in attempts],
                "schema": prepared.schema,
            }
        rows = self._write_files(run_id, contents)
        metrics["outside_model_seconds"] = round(time.perf_counter() - started - model_seconds - load_seconds, 4)
        model = {
            "provider": prepared.identity.provider,
            "endpoint_url": prepared.identity.endpoint_url,
            "model_name": prepared.identity.model_name,
            "model_tag": prepared.identity.model_tag,
            "model_digest": prepared.identity.model_digest,
        }
        outcome = RunOutcome(
            status="SUCCEEDED" if answer is not None else "FAILED",
            answer=contents.get("parsed_output"),
            error=error,
            metrics=metrics,
            artifacts=sorted(contents),
        )
        try:
            with self.rt.db.write() as tx:
                save_bundle_in(tx, *prepared.bundle.to_rows())
                link_evidence_in(tx, run_id, [prepared.bundle.bundle_id])
                add_artifacts_in(tx, run_id, rows)
                if not finish_llm_run_in(tx, run_id, status=outcome.status, model=model, metrics=metrics, error=error):
                    raise LeaseLostError(f"run {run_id} was closed meanwhile (its job's lease ran out)")
                if answer is not None:
                    if prepared.interrogation.on_answer is not None:
                        ctx = AnswerContext(
                            run_id=run_id,
                            version=prepared.interrogation.version,
                            source_id=prepared.job_input.source_id,
                            title=prepared.title,
                            content_sha256=prepared.content_sha256,
                        )
                        prepared.interrogation.on_answer(tx, answer, ctx)
                    result = {"run_id": run_id, "answer": outcome.answer, "attempts": len(attempts)}
                    if not self.queue.succeed_in(tx, job, result):
                        raise LeaseLostError(f"job {job.job_id} is no longer this claim's")
                else:
                    failed = self.queue.fail_in(tx, job, error or "no valid answer", permanent=True)
                    if failed is None:
                        raise LeaseLostError(f"job {job.job_id} is no longer this claim's")
                    outcome.job_outcome = failed
        except BaseException:
            shutil.rmtree(self.lake_dir / LLM_RUNS / run_id, ignore_errors=True)
            raise
        return outcome

    def _load_model(self) -> float:
        """Load an in-process model before the first job (once per process), timed apart from the answer."""
        provider = self.rt.chat_provider
        if getattr(provider, "is_loaded", True) or not callable(getattr(provider, "load", None)):
            return 0.0
        started = time.perf_counter()
        provider.load()  # type: ignore[attr-defined]
        return time.perf_counter() - started

    def _write_files(self, run_id: str, contents: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The lake's copy of every artifact, written before the transaction that records them."""
        rows = []
        for artifact_type, content in contents.items():
            data = encode_artifact(content)
            extension = ARTIFACT_EXTENSIONS.get(artifact_type, "json")
            path = artifact_path(self.lake_dir, run_id, artifact_type, extension, runs=LLM_RUNS)
            digest = write_file(path, data)
            rows.append(
                {
                    "artifact_type": artifact_type,
                    "content_json": content,
                    "content_ref": path.relative_to(self.lake_dir).as_posix(),
                    "content_sha256": digest,
                    "byte_count": len(data),
                }
            )
        return rows


def sweep_orphan_artifacts(db: Database, lake_dir: Path, run_ids: Sequence[str] | None = None) -> list[str]:
    """Delete the lake folders of runs that no artifact row points at (a worker killed between writing its
    files and committing them): of ``run_ids``, or of every folder in the lake when None. Runs still RUNNING
    are left alone. Returns the run ids removed."""
    root = lake_dir / LLM_RUNS
    if not root.is_dir():
        return []
    if run_ids is None:
        candidates = [p.name for p in root.iterdir() if p.is_dir()]
    else:
        candidates = [run_id for run_id in run_ids if (root / run_id).is_dir()]
    if not candidates:
        return []
    with db.read() as tx:
        orphans = orphan_run_ids(tx, candidates)
    for run_id in sorted(orphans):
        shutil.rmtree(root / run_id, ignore_errors=True)
    return sorted(orphans)
