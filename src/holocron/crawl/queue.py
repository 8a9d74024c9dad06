"""``ingest.work_items``: the one queue implementation (:mod:`holocron.jobs.queue`) bound to the crawl's table.

A work item is one request to make: a page of a source (``source_system`` / ``source_name``), a resource of a
type (``page``, ``category``, ``work``, ``url``) and id, in a variant (``parse``, ``revisions``, ...). The five
columns are its identity, unique in the table; the dedupe key is made of them, so discovering a page twice
queues it once. The claim, lease, heartbeat, fencing, backoff and dead-letter code is the vector and LLM
queues' own: the table keeps the inventory's column names and states (``attempt``, ``claimed_by``,
``pending|claimed|completed|failed``), which the schema maps to the queue's names (see
:func:`holocron.store.schema.queue_columns` and :class:`holocron.store.types.WorkItemStatus`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Unpack

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from holocron.jobs.models import InvalidPayloadError, QueuedJob
from holocron.jobs.queue import NewJob, PreparedJob, Queue, QueueKind, QueueTuning
from holocron.store.database import Database
from holocron.store.schema import WORK_ITEM_NAMES

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
DEFAULT_MAX_ATTEMPTS = 5
"""Fetch attempts: 429s, 5xx and timeouts are retried with the queue's backoff until then."""
ROW_NAMES: Mapping[str, str] = {"job_id": "work_item_id", **WORK_ITEM_NAMES}
"""The queue's column names -> the table's, for reading rows."""


class WorkItemInput(BaseModel):
    """One request to make, as it is enqueued; the identity columns and how the item was found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_system: Name
    source_name: Name
    resource_type: Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$")]
    resource_id: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    variant: Annotated[str, StringConstraints(max_length=100)] = ""
    request_uri: Annotated[str, StringConstraints(min_length=1, max_length=8000, pattern=r"^https?://")]
    depth: int = Field(default=0, ge=0, le=1000)
    discovered_from: int | None = Field(default=None, ge=1, description="The work item whose answer named it.")
    crawl_run_id: Annotated[str, StringConstraints(max_length=36)] | None = None
    params: dict[str, str] = Field(default_factory=dict, description="What the source plugin needs besides the URI.")

    def identity(self) -> str:
        """The dedupe key: the five identity columns, separated by a character none of them may hold."""
        return "\x1f".join((self.source_system, self.source_name, self.resource_type, self.resource_id, self.variant))


@dataclass(frozen=True, kw_only=True)
class WorkItem(QueuedJob):
    """One ``ingest.work_items`` row."""

    source_system: str
    source_name: str
    resource_type: str
    resource_id: str
    variant: str
    request_uri: str
    depth: int
    crawl_run_id: str | None

    @property
    def job_type(self) -> str:
        """The queue's name for an item's type: its resource type."""
        return self.resource_type

    @classmethod
    def from_row(cls, row: Any, *, with_claim_token: bool = False) -> WorkItem:
        m = row._mapping
        return cls(
            source_system=m["source_system"],
            source_name=m["source_name"],
            resource_type=m["resource_type"],
            resource_id=m["resource_id"],
            variant=m["variant"],
            request_uri=m["request_uri"],
            depth=int(m["depth"]),
            crawl_run_id=m["crawl_run_id"],
            **cls.queue_fields(row, with_claim_token, ROW_NAMES),
        )

    def parsed_input(self) -> WorkItemInput:
        return WorkItemInput.model_validate(self.input)


def _prepare(item: NewJob) -> PreparedJob:
    raw = item.payload.model_dump() if isinstance(item.payload, BaseModel) else dict(item.payload)
    raw.setdefault("resource_type", str(item.job_type))
    try:
        parsed = WorkItemInput.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidPayloadError(f"work item rejected: {problems}") from None
    if parsed.resource_type != str(item.job_type):
        raise InvalidPayloadError(f"the item is a {item.job_type} but its input says {parsed.resource_type}")
    if any("\x1f" in value for value in (parsed.source_system, parsed.source_name, parsed.resource_id)):
        raise InvalidPayloadError("work item rejected: a control character in its identity")
    return PreparedJob(
        job_type=parsed.resource_type,
        input_json=parsed.model_dump(mode="json"),
        route=parsed.source_name,
        default_priority=0,
        default_max_attempts=DEFAULT_MAX_ATTEMPTS,
        extra={
            "source_system": parsed.source_system,
            "resource_id": parsed.resource_id,
            "variant": parsed.variant,
            "request_uri": parsed.request_uri,
            "depth": parsed.depth,
            "crawl_run_id": parsed.crawl_run_id,
        },
        dedupe_key=parsed.identity(),
    )


WORK_ITEM_QUEUE: QueueKind[WorkItem] = QueueKind(
    name="ingest",
    job_table=lambda t: t.work_items,
    run_table=None,
    type_column="resource_type",
    route_column="source_name",
    prepare=_prepare,
    from_row=lambda row, with_claim_token: WorkItem.from_row(row, with_claim_token=with_claim_token),
    dedupe_while="always",
)


class WorkItemQueue(Queue[WorkItem]):
    """The queue of ``ingest.work_items``."""

    def __init__(self, db: Database, **tuning: Unpack[QueueTuning]) -> None:
        super().__init__(db, WORK_ITEM_QUEUE, **tuning)
