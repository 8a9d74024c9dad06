"""``sources.toml`` (or ``.yaml``): what to crawl, and how politely.

::

    [crawl]
    user_agent = "ExampleBot/1.0"
    contact = "ops@example.org"      # required: MediaWiki's etiquette asks for a way to reach the operator
    rate = 10                        # requests a second, the whole crawl
    host_rate = 5                    # requests a second, each host
    host_concurrency = 4

    [[sources]]
    kind = "mediawiki"
    name = "awoiaf"
    api = "https://awoiaf.westeros.org/api.php"
    pages = ["Arya Stark"]
    follow = ["links"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from holocron._version import __version__
from holocron.crawl.limits import Limit
from holocron.crawl.sources import Source
from holocron.crawl.sources.mediawiki import MediaWikiConfig, MediaWikiSource
from holocron.crawl.sources.openalex import OpenAlexConfig, OpenAlexSource
from holocron.crawl.sources.web import WebConfig, WebSource

SourceConfig = Annotated[MediaWikiConfig | OpenAlexConfig | WebConfig, Field(discriminator="kind")]


class ConfigError(ValueError):
    """The crawl configuration cannot be used; the message names the file and the reason."""


class CrawlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_agent: str = f"Holocron/{__version__}"
    contact: str = Field(min_length=3, description="An address or URL where a wiki's operators reach you")
    rate: float | None = Field(default=10.0, gt=0)
    burst: int = Field(default=5, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    host_rate: float | None = Field(default=5.0, gt=0)
    host_burst: int = Field(default=1, ge=1)
    host_concurrency: int | None = Field(default=4, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    max_attempts: int = Field(default=5, ge=1)
    retry_base_s: float = Field(default=2.0, ge=0)
    retry_cap_s: float = Field(default=600.0, ge=0)
    max_items: int | None = Field(default=None, ge=1, description="Work items per source, seeds included")

    def header(self) -> str:
        """The User-Agent: the crawler's name and version, and how to reach whoever runs it."""
        return f"{self.user_agent} (contact: {self.contact}) python-httpx"

    def limits(self) -> tuple[Limit, Limit]:
        return (
            Limit(self.rate, self.burst, self.concurrency),
            Limit(self.host_rate, self.host_burst, self.host_concurrency),
        )


class CrawlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crawl: CrawlSettings
    sources: list[SourceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CrawlConfig:
        names = [s.name for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"source names must be unique: {', '.join(twice)}")
        return self

    def build(self, only: Sequence[str] = ()) -> dict[str, Source]:
        """The configured sources (those named in ``only``, when given) as plugins."""
        unknown = sorted(set(only) - {s.name for s in self.sources})
        if unknown:
            raise ConfigError(f"no source named {', '.join(unknown)} in the configuration")
        built: dict[str, Source] = {}
        for config in self.sources:
            if only and config.name not in only:
                continue
            if isinstance(config, MediaWikiConfig):
                built[config.name] = MediaWikiSource(config)
            elif isinstance(config, OpenAlexConfig):
                built[config.name] = OpenAlexSource(config)
            else:
                built[config.name] = WebSource(config)
        return built


def load_config(path: Path) -> CrawlConfig:
    """Read and validate a TOML (or YAML: ``.yaml``, ``.yml``) crawl configuration."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    try:
        return CrawlConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
