"""Interrogations: the questions Holocron asks of its corpus, as versioned definitions in one registry.

An interrogation (the seed's ``JobTypeDefinition``) is a prompt template, an output model (pydantic: the
answer's JSON schema and its validation), an evidence policy (the page's own chunks, or a retrieval query,
bounded by the existing limits), model options, and optional checks against the bundle (a fact must cite
evidence that was in it) and a hook writing derived rows (``sem.source_page``) in the answer's transaction.

Three ship with Holocron (``page_classification``, ``sw_entity_facts``, ``entity_extraction_droid``). Users
add their own without touching the package: a TOML file (``interrogations_file``), or a Python entry point in
the group ``holocron.interrogations`` returning one :class:`Interrogation` or a list of them.
"""

from __future__ import annotations

import importlib
import re
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

if TYPE_CHECKING:
    from holocron.evidence.bundle import EvidenceBundle
    from holocron.store.database import Tx

ENTRY_POINT_GROUP = "holocron.interrogations"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEMPLATE_FIELDS = frozenset({"evidence", "title", "source_id", "query", "evidence_ids"})
"""What every prompt template may name, besides the interrogation's own parameters."""


class InterrogationError(ValueError):
    """An interrogation that cannot be registered (bad key, template or output model) or is unknown."""


@dataclass(frozen=True)
class EvidenceSpec:
    """Where an interrogation's evidence comes from and how much of it the prompt may carry."""

    scope: Literal["source", "query"] = "source"
    """``source``: the page's own chunks, in reading order; ``query``: a search (hybrid by default)."""
    query: str | None = None
    """For ``query``: a template over the parameters (``{entity}``); None: the job's query."""
    k: int = 8
    mode: str | None = None
    max_items: int | None = None
    max_total_bytes: int | None = None
    max_item_bytes: int | None = None


@dataclass(frozen=True)
class AnswerContext:
    """What a hook writing derived rows is told about the answer it is written with."""

    run_id: str
    version: str
    source_id: str | None
    title: str | None
    content_sha256: str | None


Check = Callable[[BaseModel, "EvidenceBundle"], list[str]]
OnAnswer = Callable[["Tx", BaseModel, AnswerContext], None]
SchemaFor = Callable[["EvidenceBundle"], dict[str, Any]]


@dataclass(frozen=True)
class Interrogation:
    key: str
    version: str
    description: str
    output: type[BaseModel]
    prompt: str
    system: str = "You answer only from the evidence given, with JSON that matches the schema."
    evidence: EvidenceSpec = field(default_factory=EvidenceSpec)
    params: Mapping[str, str | None] = field(default_factory=dict)
    """Parameter -> default (None: required). Filled into the templates."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Model options over the configured ones (``num_predict``, ``temperature``)."""
    check: Check | None = None
    on_answer: OnAnswer | None = None
    schema_for: SchemaFor | None = None
    """The answer's JSON schema narrowed to one bundle (cited ids from its evidence ids); default the model's."""
    enabled: bool = True
    origin: str = "builtin"

    def __post_init__(self) -> None:
        if not KEY_PATTERN.match(self.key):
            raise InterrogationError(f"interrogation key {self.key!r}: lower-case letters, digits and _ only")
        if not self.version or len(self.version) > 50:
            raise InterrogationError(f"interrogation {self.key}: a version of 1 to 50 characters is needed")
        if not (isinstance(self.output, type) and issubclass(self.output, BaseModel)):
            raise InterrogationError(f"interrogation {self.key}: output must be a pydantic model class")
        known = TEMPLATE_FIELDS | set(self.params)
        for name, template in (("prompt", self.prompt), ("evidence query", self.evidence.query or "")):
            unknown = sorted(template_fields(template) - known)
            if unknown:
                raise InterrogationError(
                    f"interrogation {self.key}: its {name} names {', '.join(unknown)}, which are neither "
                    f"parameters nor one of {', '.join(sorted(TEMPLATE_FIELDS))}"
                )

    def schema(self, bundle: EvidenceBundle | None = None) -> dict[str, Any]:
        """The JSON schema the answer is decoded (or asked) under."""
        if bundle is not None and self.schema_for is not None:
            return self.schema_for(bundle)
        return self.output.model_json_schema()

    def resolve_params(self, given: Mapping[str, Any]) -> dict[str, str]:
        """The parameters of one job: the given ones over the defaults; unknown or missing ones rejected."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise InterrogationError(f"{self.key} takes no parameter {', '.join(unknown)}")
        resolved: dict[str, str] = {}
        for name, default in self.params.items():
            value = given.get(name, default)
            if value is None or not str(value).strip():
                raise InterrogationError(f"{self.key} needs the parameter {name}")
            resolved[name] = str(value)
        return resolved

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "interrogation_key": self.key,
            "version": self.version,
            "description": self.description,
            "enabled": self.enabled,
            "origin": self.origin,
            "scope": self.evidence.scope,
            "params": dict(self.params),
            "output_schema": self.output.model_json_schema(),
        }


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class InterrogationRegistry:
    """Interrogation key -> definition. Later registrations of a key replace earlier ones (a user's file can
    override a built-in), and say so in ``origin``."""

    def __init__(self, interrogations: Iterable[Interrogation] = ()) -> None:
        self._by_key: dict[str, Interrogation] = {}
        for interrogation in interrogations:
            self.register(interrogation)

    def register(self, interrogation: Interrogation) -> None:
        self._by_key[interrogation.key] = interrogation

    def get(self, key: str) -> Interrogation:
        found = self._by_key.get(key)
        if found is None:
            known = ", ".join(sorted(self._by_key)) or "none"
            raise InterrogationError(f"unknown interrogation {key!r}; known: {known}")
        if not found.enabled:
            raise InterrogationError(f"interrogation {key!r} is disabled")
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def all(self) -> list[Interrogation]:
        return [self._by_key[key] for key in sorted(self._by_key)]

    def keys(self) -> list[str]:
        return [i.key for i in self.all() if i.enabled]


# --- the three built-in interrogations ------------------------------------------------------------------------

PageType = Literal[
    "person",
    "fictional_character",
    "place",
    "organization",
    "creature_or_species",
    "object_or_item",
    "concept_or_method",
    "event",
    "creative_work",
    "scholarly_work",
    "other",
]
PAGE_TYPES: tuple[str, ...] = get_args(PageType)

Short = Annotated[str, StringConstraints(min_length=1, max_length=60)]
"""Answer strings are short and bounded: under constrained decoding an answer then always closes within its
``num_predict`` (an unbounded string or number could run past it and be cut)."""


class PageClassification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_type: PageType
    confidence: int = Field(ge=0, le=100, description="How sure, in percent.")


class Fact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Short
    predicate: Short
    object: Short
    evidence_ids: list[str] = Field(min_length=1, max_length=2)


class EntityFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: Short
    facts: list[Fact] = Field(max_length=3)


class FoundEntity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    evidence_ids: list[str] = Field(min_length=1, max_length=1)


class FoundEntities(BaseModel):
    """The entity type asked for is the job's parameter, not part of the answer: nothing to get wrong."""

    model_config = ConfigDict(extra="forbid")

    entities: list[FoundEntity] = Field(max_length=3)


def cited_ids_in_bundle(answer: BaseModel, bundle: EvidenceBundle) -> list[str]:
    """Every ``evidence_ids`` list anywhere in the answer may name only evidence ids of the bundle."""
    allowed = {item.evidence_id for item in bundle.items}
    problems: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{path}.{name}" if path else name)
        elif isinstance(value, list):
            for position, element in enumerate(value):
                walk(element, f"{path}[{position}]")
        if path.endswith("evidence_ids") and isinstance(value, list):
            for cited in value:
                if cited not in allowed:
                    problems.append(f"{path} cites {cited!r}, which is not an evidence id of the bundle")

    walk(answer, "")
    return problems


def _schema_citing(model: type[BaseModel]) -> SchemaFor:
    """The model's schema with every ``evidence_ids`` item limited to the bundle's ids: with constrained
    decoding a citation outside the bundle cannot even be produced."""

    def schema_for(bundle: EvidenceBundle) -> dict[str, Any]:
        schema = model.model_json_schema()
        ids = [item.evidence_id for item in bundle.items]
        if not ids:
            return schema

        def narrow(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "evidence_ids" and isinstance(value, dict) and value.get("type") == "array":
                        value["items"] = {"type": "string", "enum": ids}
                    else:
                        narrow(value)
            elif isinstance(node, list):
                for value in node:
                    narrow(value)

        narrow(schema)
        return schema

    return schema_for


def _write_source_page(tx: Tx, answer: BaseModel, ctx: AnswerContext) -> None:
    """``page_classification`` answers land in ``sem.source_page`` (one row per page, the latest answer)."""
    if ctx.source_id is None or not isinstance(answer, PageClassification):
        return
    from holocron.store.llm import upsert_source_page

    upsert_source_page(tx, ctx, primary_type=answer.primary_type, confidence=answer.confidence / 100)


def builtin_interrogations() -> list[Interrogation]:
    return [
        Interrogation(
            key="page_classification",
            version="1",
            description="A page's primary type from a declared label set, with confidence (sem.source_page).",
            output=PageClassification,
            prompt=(
                "Classify the page below by its primary subject.\n"
                "Page title: {title}\n\nEvidence:\n{evidence}\n\n"
                "Answer with primary_type, one of: " + ", ".join(PAGE_TYPES) + "; and confidence in percent."
            ),
            evidence=EvidenceSpec(scope="source", max_items=2, max_total_bytes=1600, max_item_bytes=800),
            options={"num_predict": 48},
            on_answer=_write_source_page,
        ),
        Interrogation(
            key="sw_entity_facts",
            version="1",
            description="Facts about an entity as subject / predicate / object, each citing its evidence ids.",
            output=EntityFacts,
            prompt=(
                "List facts about {entity} stated in the evidence, as subject, predicate, object.\n"
                "Cite the ids of the evidence each fact rests on (ids: {evidence_ids}).\n\n"
                "Evidence:\n{evidence}"
            ),
            evidence=EvidenceSpec(scope="query", query="{entity}", k=4, max_total_bytes=2400, max_item_bytes=800),
            params={"entity": None},
            options={"num_predict": 320},
            check=cited_ids_in_bundle,
            schema_for=_schema_citing(EntityFacts),
        ),
        Interrogation(
            key="entity_extraction_droid",
            version="1",
            description="Entities of a given type (default: droids) named in a page, each citing its evidence.",
            output=FoundEntities,
            prompt=(
                "Name every {entity_type} mentioned in the evidence. Cite the ids of the evidence that names it "
                "(ids: {evidence_ids}). An empty list is a valid answer.\n"
                "Page title: {title}\n\nEvidence:\n{evidence}"
            ),
            evidence=EvidenceSpec(scope="source", max_items=3, max_total_bytes=2400, max_item_bytes=800),
            params={"entity_type": "droid"},
            options={"num_predict": 160},
            check=cited_ids_in_bundle,
            schema_for=_schema_citing(FoundEntities),
        ),
    ]


# --- user interrogations ---------------------------------------------------------------------------------------

_FIELD_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list[str]": list[str],
    "list[int]": list[int],
}


def _output_model(key: str, spec: Mapping[str, Any]) -> type[BaseModel]:
    """``output_model = "package.module:Class"``, or ``[output]`` fields of simple types (``labels`` for a
    field limited to a set: ``kind = ["a", "b"]``)."""
    if "output_model" in spec:
        target = str(spec["output_model"])
        module_name, _, attribute = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InterrogationError(
                f"interrogation {key}: output_model {target!r} cannot be imported: {exc}"
            ) from None
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise InterrogationError(f"interrogation {key}: output_model {target!r} is not a pydantic model")
        return found
    fields_spec = spec.get("output")
    if not isinstance(fields_spec, Mapping) or not fields_spec:
        raise InterrogationError(f"interrogation {key}: give [output] fields or output_model")
    definitions: dict[str, Any] = {}
    for name, kind in fields_spec.items():
        if isinstance(kind, list) and kind and all(isinstance(v, str) for v in kind):
            definitions[name] = (Literal[tuple(kind)], ...)
        elif isinstance(kind, str) and kind in _FIELD_TYPES:
            definitions[name] = (_FIELD_TYPES[kind], ...)
        else:
            raise InterrogationError(
                f"interrogation {key}: output field {name} has type {kind!r}; use one of "
                f"{', '.join(_FIELD_TYPES)} or a list of labels"
            )
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{key.title().replace('_', '')}Answer", __config__=ConfigDict(extra="forbid"), **definitions
    )
    return model


def load_toml_interrogations(path: Path) -> list[Interrogation]:
    """The ``[interrogations.<key>]`` tables of a TOML file; a bad one fails naming the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InterrogationError(f"{path}: cannot read interrogations: {exc}") from None
    tables = data.get("interrogations")
    if not isinstance(tables, Mapping):
        raise InterrogationError(f"{path}: no [interrogations.<key>] tables")
    out: list[Interrogation] = []
    for key, spec in tables.items():
        if not isinstance(spec, Mapping):
            raise InterrogationError(f"{path}: interrogations.{key} is not a table")
        try:
            evidence = spec.get("evidence", {})
            params = spec.get("params", {})
            out.append(
                Interrogation(
                    key=str(key),
                    version=str(spec.get("version", "1")),
                    description=str(spec.get("description", "")),
                    output=_output_model(str(key), spec),
                    prompt=str(spec["prompt"]),
                    system=str(spec.get("system", Interrogation.system)),
                    evidence=EvidenceSpec(**dict(evidence)),
                    params={str(k): (None if v == "" else str(v)) for k, v in dict(params).items()},
                    options=dict(spec.get("options", {})),
                    enabled=bool(spec.get("enabled", True)),
                    origin=str(path),
                )
            )
        except InterrogationError as exc:
            raise InterrogationError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InterrogationError(f"{path}: interrogations.{key}: {exc}") from None
    return out


def entry_point_interrogations() -> list[Interrogation]:
    out: list[Interrogation] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        made = loaded() if callable(loaded) and not isinstance(loaded, Interrogation) else loaded
        items: Sequence[Any] = made if isinstance(made, (list, tuple)) else [made]
        for item in items:
            if not isinstance(item, Interrogation):
                raise InterrogationError(f"entry point {point.name} ({point.value}) gave {type(item).__name__}")
            out.append(item)
    return out


def build_registry(file: Path | None = None) -> InterrogationRegistry:
    """The built-in interrogations, then the entry points', then the file's (later ones replace earlier)."""
    registry = InterrogationRegistry(builtin_interrogations())
    for interrogation in entry_point_interrogations():
        registry.register(interrogation)
    if file is not None:
        for interrogation in load_toml_interrogations(file):
            registry.register(interrogation)
    return registry
