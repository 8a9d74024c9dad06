"""The ``llm.job`` queue: the one queue implementation (:mod:`holocron.jobs.queue`) bound to its table.

A job asks one interrogation about one subject: a source (the page's own chunks are the evidence) or a
query (a search finds it). ``subject_key`` names the subject, version aside, so that the current answer
about it can be found, and refreshed when the chunks it was built from are replaced; the dedupe key (the
subject key while the job is unfinished) makes enqueueing, and refreshing, idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self, Unpack

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from holocron.jobs.models import InvalidPayloadError, QueuedJob
from holocron.jobs.queue import NewJob, PreparedJob, Queue, QueueKind, QueueTuning
from holocron.llm.interrogations import InterrogationError, InterrogationRegistry
from holocron.store.database import Database, Tx

Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
DEFAULT_MAX_ATTEMPTS = 3
"""Queue attempts (a model server down, a worker killed); each attempt asks the model up to ``llm_attempts``
times before the job dead-letters."""


class LlmJobInput(BaseModel):
    """``llm.job.input_json``: which interrogation, at which version, about what, with which parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interrogation: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    version: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    source_id: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    query: Text | None = None
    params: dict[Annotated[str, StringConstraints(max_length=100)], Text] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if self.source_id is None and self.query is None and not self.params:
            raise ValueError("give a source_id, a query or the parameters that make one")
        for value in (self.source_id, self.query, *self.params.values()):
            if value is not None and "\x00" in value:
                raise ValueError("a NUL character is not allowed")
        return self

    def subject_key(self) -> str:
        """The interrogation, the subject and the parameters; not the version (a newer version answers the
        same question again)."""
        parts = [self.interrogation]
        if self.source_id is not None:
            parts.append(f"source:{self.source_id}")
        if self.query is not None:
            parts.append("query:" + hashlib.sha256(self.query.encode()).hexdigest()[:32])
        if self.params:
            canonical = "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))
            parts.append("params:" + hashlib.sha256(canonical.encode()).hexdigest()[:16])
        return "|".join(parts)

    def evidence_ref(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "query": self.query}


@dataclass(frozen=True, kw_only=True)
class LlmJob(QueuedJob):
    """One ``llm.job`` row."""

    interrogation_key: str
    subject_key: str
    evidence_ref: dict[str, Any] | None

    @property
    def job_type(self) -> str:
        """The queue's name for a job's type: here, its interrogation."""
        return self.interrogation_key

    @classmethod
    def from_row(cls, row: Any, *, with_claim_token: bool = False) -> LlmJob:
        m = row._mapping
        return cls(
            interrogation_key=m["interrogation_key"],
            subject_key=m["subject_key"],
            evidence_ref=dict(m["evidence_ref_json"]) if m["evidence_ref_json"] is not None else None,
            **cls.queue_fields(row, with_claim_token),
        )

    def parsed_input(self) -> LlmJobInput:
        return LlmJobInput.model_validate(self.input)


def validate_llm_input(
    registry: InterrogationRegistry, job_type: str, payload: Mapping[str, Any] | BaseModel
) -> LlmJobInput:
    """The job's input checked against the registry: a known, enabled interrogation, its parameters, and
    the current version filled in. :class:`InvalidPayloadError` naming what is wrong; nothing is stored."""
    raw = payload.model_dump() if isinstance(payload, BaseModel) else dict(payload)
    raw.setdefault("interrogation", job_type)
    try:
        interrogation = registry.get(str(raw["interrogation"]))
    except InterrogationError as exc:
        raise InvalidPayloadError(str(exc)) from None
    if str(raw["interrogation"]) != str(job_type):
        raise InvalidPayloadError(f"the job is {job_type} but its input names {raw['interrogation']}")
    raw.setdefault("version", interrogation.version)
    try:
        parsed = LlmJobInput.model_validate(raw)
        params = interrogation.resolve_params(parsed.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidPayloadError(f"{job_type} input rejected: {problems}") from None
    except InterrogationError as exc:
        raise InvalidPayloadError(str(exc)) from None
    if interrogation.evidence.scope == "source" and parsed.source_id is None:
        raise InvalidPayloadError(f"{job_type} reads one page: give a source")
    if interrogation.evidence.scope == "query" and parsed.query is None and interrogation.evidence.query is None:
        raise InvalidPayloadError(f"{job_type} searches for its evidence: give a query")
    if parsed.source_id is None and parsed.query is None and interrogation.evidence.scope == "source":
        raise InvalidPayloadError(f"{job_type} reads one page: give a source")
    return parsed.model_copy(update={"params": params})


def llm_queue_kind(registry: InterrogationRegistry) -> QueueKind[LlmJob]:
    def prepare(item: NewJob) -> PreparedJob:
        parsed = validate_llm_input(registry, str(item.job_type), item.payload)
        return PreparedJob(
            job_type=parsed.interrogation,
            input_json=parsed.model_dump(mode="json"),
            route=None,
            default_priority=0,
            default_max_attempts=DEFAULT_MAX_ATTEMPTS,
            extra={"evidence_ref_json": parsed.evidence_ref(), "subject_key": parsed.subject_key()},
            dedupe_key=parsed.subject_key(),
        )

    return QueueKind(
        name="llm",
        job_table=lambda t: t.llm_job,
        run_table=lambda t: t.llm_run,
        type_column="interrogation_key",
        route_column=None,
        prepare=prepare,
        from_row=lambda row, with_claim_token: LlmJob.from_row(row, with_claim_token=with_claim_token),
        check=_check_sources,
    )


def _check_sources(tx: Tx, jobs: Sequence[PreparedJob]) -> None:
    wanted = {str(job.input_json["source_id"]) for job in jobs if job.input_json.get("source_id")}
    if not wanted:
        return
    s = tx.t.source_registry
    from sqlalchemy import select

    found = set(tx.execute(select(s.c.source_id).where(s.c.source_id.in_(sorted(wanted)))).scalars())
    missing = sorted(wanted - found)
    if missing:
        raise InvalidPayloadError(f"no source {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))


class LlmQueue(Queue[LlmJob]):
    """The queue of ``llm.job``."""

    def __init__(self, db: Database, registry: InterrogationRegistry, **tuning: Unpack[QueueTuning]) -> None:
        super().__init__(db, llm_queue_kind(registry), **tuning)
        self.registry = registry
