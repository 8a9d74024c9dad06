"""Embedding spaces: vectors are only ever compared inside one space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from holocron.identity import ModelIdentity, PreprocessPolicy, stores_unit_vectors
from holocron.store.database import Database, Tx
from holocron.store.types import utcnow
from holocron.vectors import Matrix, l2_normalize


@dataclass(frozen=True)
class EmbeddingSpace:
    embedding_space_id: int
    name: str
    provider: str
    model_name: str
    model_tag: str
    model_digest: str
    dimensions: int
    normalize_flag: bool
    distance_metric: str
    max_input_tokens: int | None
    preprocess: PreprocessPolicy
    endpoint_url: str | None

    @classmethod
    def from_row(cls, row: Any) -> EmbeddingSpace:
        return cls(
            embedding_space_id=row.embedding_space_id,
            name=row.name,
            provider=row.provider,
            model_name=row.model_name,
            model_tag=row.model_tag,
            model_digest=row.model_digest,
            dimensions=row.dimensions,
            normalize_flag=row.normalize_flag,
            distance_metric=row.distance_metric,
            max_input_tokens=row.max_input_tokens,
            preprocess=PreprocessPolicy.from_json(row.preprocess_policy_json),
            endpoint_url=row.endpoint_url,
        )

    @property
    def unit_vectors(self) -> bool:
        return stores_unit_vectors(normalized=self.normalize_flag, distance_metric=self.distance_metric)

    @property
    def ranks_by_inner_product(self) -> bool:
        """Whether inner product orders this space's vectors as its metric does (what the embedded index
        computes): always for cosine and inner-product spaces, and for L2 on unit vectors."""
        return self.distance_metric in ("cosine", "ip") or (self.distance_metric == "l2" and self.unit_vectors)

    def prepare(self, vectors: npt.ArrayLike) -> Matrix:
        """Model output as this space stores and compares it: the same for documents and queries."""
        matrix = np.asarray(vectors, dtype=np.float32)
        return l2_normalize(matrix) if self.unit_vectors else matrix

    def matches(self, identity: ModelIdentity) -> bool:
        return (
            self.provider == identity.provider
            and self.model_name == identity.model_name
            and self.model_tag == identity.model_tag
            and self.model_digest == identity.model_digest
            and self.dimensions == identity.dimensions
        )


class SpaceMismatchError(ValueError):
    """A query or a batch of vectors does not belong to the space it was aimed at."""


def space_name(identity: ModelIdentity) -> str:
    digest = identity.model_digest.removeprefix("sha256:")[:12]
    return f"{identity.provider}/{identity.model_name}:{identity.model_tag}@{digest}/{identity.dimensions}d"


def find_space(tx: Tx, identity: ModelIdentity) -> EmbeddingSpace | None:
    t = tx.t.embedding_space
    row = tx.execute(
        select(t).where(
            t.c.provider == identity.provider,
            t.c.model_name == identity.model_name,
            t.c.model_tag == identity.model_tag,
            t.c.model_digest == identity.model_digest,
            t.c.dimensions == identity.dimensions,
        )
    ).first()
    return EmbeddingSpace.from_row(row) if row else None


def get_or_create_space(db: Database, identity: ModelIdentity) -> tuple[EmbeddingSpace, bool]:
    """The space of this exact model; ``created`` is True when the model (or its digest) is new."""
    with db.read() as tx:
        existing = find_space(tx, identity)
    if existing:
        return existing, False
    try:
        with db.write() as tx:
            t = tx.t.embedding_space
            tx.execute(
                t.insert().values(
                    name=space_name(identity),
                    provider=identity.provider,
                    model_name=identity.model_name,
                    model_tag=identity.model_tag,
                    model_digest=identity.model_digest,
                    dimensions=identity.dimensions,
                    normalize_flag=identity.unit_vectors,
                    distance_metric=identity.distance_metric,
                    max_input_tokens=identity.max_input_tokens,
                    preprocess_policy_json=identity.preprocess.to_json(),
                    endpoint_url=identity.endpoint_url,
                    created_utc=utcnow(),
                )
            )
    except IntegrityError:
        pass  # another process created it between our read and write
    with db.read() as tx:
        created = find_space(tx, identity)
    assert created is not None
    return created, True


def get_space(tx: Tx, key: int | str) -> EmbeddingSpace | None:
    t = tx.t.embedding_space
    condition = t.c.embedding_space_id == int(key) if str(key).isdigit() else t.c.name == str(key)
    row = tx.execute(select(t).where(condition)).first()
    return EmbeddingSpace.from_row(row) if row else None


def list_spaces(tx: Tx) -> list[tuple[EmbeddingSpace, int]]:
    """Every space with its embedding count."""
    s, e = tx.t.embedding_space, tx.t.embedding
    counts = select(e.c.embedding_space_id, func.count().label("n")).group_by(e.c.embedding_space_id).subquery()
    rows = tx.execute(
        select(s, func.coalesce(counts.c.n, 0).label("embeddings"))
        .select_from(s.outerjoin(counts, counts.c.embedding_space_id == s.c.embedding_space_id))
        .order_by(s.c.embedding_space_id)
    ).all()
    return [(EmbeddingSpace.from_row(row), int(row.embeddings)) for row in rows]


def other_spaces_of_model(tx: Tx, identity: ModelIdentity) -> list[EmbeddingSpace]:
    """Spaces of the same model name under another digest or tag: the sign of a silent model change."""
    t = tx.t.embedding_space
    rows = tx.execute(select(t).where(t.c.provider == identity.provider, t.c.model_name == identity.model_name)).all()
    return [EmbeddingSpace.from_row(r) for r in rows if not EmbeddingSpace.from_row(r).matches(identity)]
