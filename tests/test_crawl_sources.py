"""The source plugins' requests and readings, against the replay server's real recorded answers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from holocron.crawl.queue import WorkItemInput
from holocron.crawl.sources import ItemError, Reading, Source
from holocron.crawl.sources.mediawiki import MediaWikiConfig, MediaWikiSource
from holocron.crawl.sources.openalex import OpenAlexConfig, OpenAlexSource
from holocron.crawl.sources.web import WebConfig, WebSource
from replay_server import ReplayState, openalex_url, page_url, replay_server, site_url


@pytest.fixture(scope="module")
def replay() -> Iterator[tuple[str, ReplayState]]:
    with replay_server() as served:
        yield served


def fetch(source: Source, work: WorkItemInput) -> httpx.Response:
    request = source.request(work)
    return httpx.get(request.url, params=dict(request.params), timeout=10)


def follow(source: Source, work: WorkItemInput) -> list[Reading]:
    """Read a listing and every continuation item it names, as the runner would, one item at a time."""
    readings, todo = [], [work]
    while todo:
        current = todo.pop(0)
        response = fetch(source, current)
        response.raise_for_status()
        reading = source.read(current, response.text)
        readings.append(reading)
        todo += [d for d in reading.discovered if d.resource_type == current.resource_type]
    return readings


def test_a_page_then_its_links_through_the_recorded_answers(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    api = site_url(base, "awoiaf.westeros.org")
    source = MediaWikiSource(
        MediaWikiConfig(kind="mediawiki", name="awoiaf", api=api, pages=["Arya Stark"], follow=["links"])
    )
    (seed,) = source.seeds()
    assert (seed.resource_type, seed.variant, seed.depth) == ("page", "revisions", 0)
    response = fetch(source, seed)
    assert response.status_code == 200
    reading = source.read(seed, response.text)
    assert [p.resource_id for p in reading.pages] == ["Arya Stark"] and "Arya" in reading.pages[0].payload
    (links,) = reading.discovered
    assert (links.resource_type, links.resource_id, links.depth) == ("links", "Arya Stark", 0)
    (listing,) = follow(source, links)
    titles = [d.resource_id for d in listing.discovered]
    assert len(titles) == 232 and "Jon Snow" in titles
    assert {(d.resource_type, d.depth) for d in listing.discovered} == {("page", 1)}


def test_a_listing_is_one_item_per_continuation_page(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    source = MediaWikiSource(
        MediaWikiConfig(
            kind="mediawiki", name="enwiki", api=site_url(base, "en.wikipedia.org"), follow=["links"], max_depth=2
        )
    )
    first = source._listing("links", "List of named minor planets (numerical)", depth=1)
    readings = follow(source, first)
    variants = [first.variant] + [d.variant for r in readings for d in r.discovered if d.resource_type == "links"]
    assert len(readings) == 41 and len(set(variants)) == 41 and variants[0] == "links"
    assert all(v.startswith("links@") for v in variants[1:])
    pages = [d for r in readings for d in r.discovered if d.resource_type == "page"]
    assert len(pages) > 1000 and {d.depth for d in pages} == {2}


def test_category_members_are_filtered_by_namespace_and_depth(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    api = site_url(base, "en.wikipedia.org")
    config = MediaWikiConfig(kind="mediawiki", name="enwiki", api=api, categories=["Chess"], list_limit=15)
    source = MediaWikiSource(config.model_copy(update={"member_types": "page"}))
    (seed,) = source.seeds()
    (reading,) = follow(source, seed)
    titles = [d.resource_id for d in reading.discovered]
    assert titles == ["Chess", "Outline of chess", "Chess aesthetics", "International Chess Day"]  # no Portal:
    shallow = MediaWikiSource(config.model_copy(update={"member_types": "page", "max_depth": 0}))
    assert shallow.read(seed, fetch(shallow, seed).text).discovered == []


def test_an_api_error_and_a_missing_page_are_permanent(replay: tuple[str, ReplayState]) -> None:
    base, state = replay
    source = MediaWikiSource(MediaWikiConfig(kind="mediawiki", name="w", api=site_url(base, "en.wikipedia.org")))
    (work,) = MediaWikiSource(source.config.model_copy(update={"pages": ["Bush"]})).seeds()
    state.set("maxlag:3", prefix="/en.wikipedia.org/")
    try:
        with pytest.raises(ItemError) as lagged:
            source.read(work, fetch(source, work).text)
    finally:
        state.reset()
    assert not lagged.value.permanent and "lagged" in lagged.value.reason
    with pytest.raises(ItemError) as missing:
        source.read(work, '{"batchcomplete": true, "query": {"pages": [{"title": "Bush", "missing": true}]}}')
    assert missing.value.permanent and "no page 'Bush'" in missing.value.reason


def test_openalex_works_by_filter_page_through_cursors(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    source = OpenAlexSource(
        OpenAlexConfig(
            kind="openalex", name="oa", api=openalex_url(base), filters=["publication_year:>1900"], per_page=1
        )
    )
    (seed,) = source.seeds()
    readings = follow(source, seed)
    pages = [p for r in readings for p in r.pages]
    assert len(pages) >= 1 and all(p.resource_id.startswith("W") for p in pages)
    assert readings[-1].pages == [] or readings[-1].discovered == []


def test_openalex_references_are_discovered_one_level_down(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    listing = OpenAlexSource(
        OpenAlexConfig(kind="openalex", name="oa", api=openalex_url(base), filters=["publication_year:>1900"])
    )
    (work_id,) = {p.resource_id for r in follow(listing, listing.seeds()[0]) for p in r.pages}
    source = OpenAlexSource(
        OpenAlexConfig(
            kind="openalex", name="oa", api=openalex_url(base), works=[work_id], follow_references=True, mailto="a@b.c"
        )
    )
    (seed,) = source.seeds()
    assert source.request(seed).params == {"mailto": "a@b.c"}
    reading = source.read(seed, fetch(source, seed).text)
    assert [p.resource_id for p in reading.pages] == [work_id]
    assert reading.discovered and {(d.resource_type, d.depth) for d in reading.discovered} == {("work", 1)}


def test_web_pages_follow_links_under_the_prefixes_only(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    url = page_url(base, "trafilatura__en.wikipedia.org.tsne.html")
    source = WebSource(WebConfig(kind="web", name="pages", urls=[url], follow_links=True))
    (seed,) = source.seeds()
    response = fetch(source, seed)
    reading = source.read(seed, response.text)
    assert reading.pages[0].resource_id == url
    assert all(d.resource_id.startswith(base) and "#" not in d.resource_id for d in reading.discovered)
    wide = WebSource(WebConfig(kind="web", name="pages", urls=[url], follow_links=True, prefixes=["https://"]))
    assert any(d.resource_id.startswith("https://") for d in wide.read(seed, response.text).discovered)
