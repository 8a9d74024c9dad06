"""The crawler end to end against the replay server's real recordings, on both engines: discovery, the audit
trail, conditional re-fetch, and every fault the server can script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from holocron.crawl.config import ConfigError, CrawlSettings, load_config
from holocron.crawl.runner import Crawler
from holocron.crawl.sources import Source
from holocron.crawl.sources.mediawiki import MediaWikiConfig, MediaWikiSource
from holocron.crawl.sources.web import WebConfig, WebSource
from holocron.store.crawl import crawl_overview, set_control
from holocron.store.database import Database
from replay_server import ReplayState, page_url, replay_server, site_url

CONTACT = "crawl-tests@example.org"


@pytest.fixture(scope="module")
def replay() -> Iterator[tuple[str, ReplayState]]:
    with replay_server() as served:
        yield served


@pytest.fixture
def state(replay: tuple[str, ReplayState]) -> Iterator[ReplayState]:
    replay[1].reset()
    yield replay[1]
    replay[1].reset()


def settings(**more: Any) -> CrawlSettings:
    values: dict[str, Any] = {
        "contact": CONTACT,
        "rate": None,
        "host_rate": None,
        "retry_base_s": 0.05,
        "retry_cap_s": 0.2,
        "timeout_s": 2.0,
        **more,
    }
    return CrawlSettings(**values)


def wiki(base: str, host: str, **config: Any) -> dict[str, Source]:
    source = MediaWikiSource(MediaWikiConfig(kind="mediawiki", name=host, api=site_url(base, host), **config))
    return {source.name: source}


def crawl(db: Database, sources: dict[str, Source], **more: Any) -> Crawler:
    crawler = Crawler(db, sources, settings(**more.pop("settings", {})), handle_signals=False, **more)
    crawler.seed()
    crawler.run()
    return crawler


def records(db: Database) -> list[Any]:
    with db.read() as tx:
        raw = tx.t.ingest_records
        return list(tx.execute(select(raw).order_by(raw.c.ingest_id)))


def test_a_page_and_every_page_it_links_to_with_the_audit_trail(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState
) -> None:
    base, _ = replay
    sources = wiki(base, "awoiaf.westeros.org", pages=["Arya Stark"], variant="extracts", follow=["links"])
    counted = {"source": "awoiaf.westeros.org", "status": "404"}
    before = REGISTRY.get_sample_value("holocron_crawl_fetches_total", counted) or 0.0
    crawler = crawl(db, sources, max_workers=4)
    assert REGISTRY.get_sample_value("holocron_crawl_fetches_total", counted) == before + 231
    stored = records(db)
    # The recordings hold the extracts of Arya Stark and of Jon Snow, whom she links to; the other 231 linked
    # titles were never recorded, and the replay server answers them 404.
    assert sorted(r.resource_id for r in stored) == ["Arya Stark", "Jon Snow"]
    for row in stored:
        assert row.status_code == 200 and row.work_item_id is not None and row.run_id == crawler.run_id
        assert row.duration_ms is not None and row.requested_at_utc is not None and row.responded_at_utc is not None
        assert CONTACT in row.request_headers["User-Agent"]
        assert {k.lower() for k in row.response_headers} >= {"etag", "last-modified"}
    with db.read() as tx:
        overview = crawl_overview(tx)
    assert overview["items"] == {"completed": 3, "failed": 231}  # 2 pages and the links listing
    assert overview["errors"][0]["reason"].startswith("HTTP 404") and overview["errors"][0]["count"] == 231
    sent = state.requests_to("/awoiaf.westeros.org/")
    assert all(r.params.get("maxlag") == "5" for r in sent)
    assert len(sent) == len({tuple(sorted(r.params.items())) for r in sent}) == 234  # each asked once

    again = Crawler(db, sources, settings(), handle_signals=False)
    assert again.seed() == 0 and again.refresh() == 234
    again.run()
    assert len(records(db)) == 2 and again.stats.stored == 0
    assert again.stats.not_modified == 2  # both pages answered 304 to their ETag
    revisit = [r for r in state.requests_to("/awoiaf.westeros.org/")[234:] if r.params.get("titles") == "Jon Snow"]
    assert revisit and revisit[0].headers.get("if-none-match")


@pytest.mark.parametrize(
    ("steps", "retried"),
    [
        (("429:1",), 1),
        (("429-date:2",), 1),
        (("503",), 1),
        (("500", "503:0"), 2),
        (("drop",), 1),
        (("truncate",), 1),
        (("slow:3",), 1),
        (("wrong-type",), 1),
        (("redirect",), 0),
    ],
)
def test_faults_are_retried_and_the_page_is_stored_once(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState, steps: tuple[str, ...], retried: int
) -> None:
    base, _ = replay
    state.set(*steps, prefix="/en.wikipedia.org/")
    crawler = crawl(db, wiki(base, "en.wikipedia.org", pages=["Bush"]), max_workers=2)
    assert [r.resource_id for r in records(db)] == ["Bush"]
    assert crawler.stats.retried == retried and crawler.stats.completed == 1
    if steps[0].startswith("429"):
        asked = [r.at for r in state.requests_to("/en.wikipedia.org/")]
        assert asked[-1] - asked[0] >= 0.9  # Retry-After honoured (an HTTP-date has whole seconds: 2 -> 1+)


def test_a_redirect_loop_and_other_4xx_fail_at_once_with_the_reason(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState
) -> None:
    base, _ = replay
    state.set("redirect-loop", prefix="/en.wikipedia.org/")  # the first request: Bush's, with one worker
    crawler = crawl(db, wiki(base, "en.wikipedia.org", pages=["Bush", "No such recording"]), max_workers=1)
    assert records(db) == [] and crawler.stats.failed == 2 and crawler.stats.retried == 0
    with db.read() as tx:
        reasons = sorted(e["example"] for e in crawl_overview(tx)["errors"])
    assert reasons[0].startswith("HTTP 404") and "redirect" in reasons[1]


def test_retries_end_as_failed_with_the_last_reason(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState
) -> None:
    base, _ = replay
    state.set(then="503", prefix="/en.wikipedia.org/")
    crawler = crawl(db, wiki(base, "en.wikipedia.org", pages=["Bush"]), settings={"max_attempts": 3})
    assert records(db) == [] and crawler.stats.failed == 1
    with db.read() as tx:
        assert [(e["reason"], e["count"]) for e in crawl_overview(tx)["errors"]] == [
            ("HTTP 503 Service Unavailable", 1)
        ]


def test_a_drain_recorded_in_the_database_stops_every_crawler(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState
) -> None:
    base, _ = replay
    set_control(db, "draining")
    crawler = crawl(db, wiki(base, "en.wikipedia.org", pages=["Bush", "castor"]))
    assert crawler.stats.fetched == 0
    with db.read() as tx:
        assert crawl_overview(tx)["items"] == {"pending": 2}
    set_control(db, "running")
    crawler = crawl(db, wiki(base, "en.wikipedia.org", pages=["Bush", "castor"]))
    assert sorted(r.resource_id for r in records(db)) == ["Bush", "castor"]


def test_the_max_items_cap_is_kept_and_reported(
    db: Database, replay: tuple[str, ReplayState], state: ReplayState
) -> None:
    base, _ = replay
    sources = wiki(base, "awoiaf.westeros.org", pages=["Arya Stark"], follow=["links"])
    crawler = crawl(db, sources, settings={"max_items": 10})
    with db.read() as tx:
        assert sum(crawl_overview(tx)["items"].values()) == 10
    assert crawler.stats.capped == 232 - 8


def test_plain_pages_obey_robots_txt(db: Database, replay: tuple[str, ReplayState], state: ReplayState) -> None:
    base, _ = replay
    allowed = page_url(base, "trafilatura__en.wikipedia.org.tsne.html")
    refused = page_url(base, "readability__wikia__source.html")
    state.robots_txt = "User-agent: *\nDisallow: /pages/readability__wikia\n"
    source = WebSource(WebConfig(kind="web", name="pages", urls=[allowed, refused]))
    crawler = crawl(db, {"pages": source})
    assert [r.resource_id for r in records(db)] == [allowed] and records(db)[0].content_type == "text/html"
    assert crawler.stats.failed == 1 and "robots.txt" in next(iter(crawler.stats.errors))
    assert len(state.requests_to("/robots.txt")) == 1  # asked once per host


def test_a_configuration_file_names_the_problem(tmp_path: Path) -> None:
    good = tmp_path / "sources.toml"
    good.write_text(
        '[crawl]\ncontact = "ops@example.org"\n\n[[sources]]\nkind = "openalex"\nname = "oa"\nworks = ["W1"]\n'
    )
    config = load_config(good)
    assert list(config.build()) == ["oa"] and "ops@example.org" in config.crawl.header()
    with pytest.raises(ConfigError, match="no source named nope"):
        config.build(["nope"])
    bad = tmp_path / "bad.toml"
    bad.write_text('[crawl]\n\n[[sources]]\nkind = "gopher"\nname = "x"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(bad)
    assert str(bad) in str(refused.value) and "contact" in str(refused.value)


def test_a_yaml_configuration_is_the_same_crawl(tmp_path: Path) -> None:
    toml = tmp_path / "sources.toml"
    toml.write_text(
        '[crawl]\ncontact = "ops@example.org"\nrate = 3\n\n'
        '[[sources]]\nkind = "mediawiki"\nname = "wiki"\napi = "https://wiki.example/w/api.php"\n'
        'pages = ["Arya Stark"]\nfollow = ["links"]\nnamespaces = [0]\n'
    )
    yaml_file = tmp_path / "sources.yml"
    yaml_file.write_text(
        "crawl:\n  contact: ops@example.org\n  rate: 3\nsources:\n  - kind: mediawiki\n    name: wiki\n"
        "    api: https://wiki.example/w/api.php\n    pages: [Arya Stark]\n    follow: [links]\n    namespaces: [0]\n"
    )
    assert load_config(yaml_file) == load_config(toml)
    broken = tmp_path / "broken.yaml"
    broken.write_text("crawl:\n  contact: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid yaml"):
        load_config(broken)
