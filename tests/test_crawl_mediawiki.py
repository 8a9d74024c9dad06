"""The crawl's MediaWiki requests and readings, against the replay server's real recorded answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from holocron.crawl import mediawiki
from replay_server import ReplayState, replay_server, site_url


@pytest.fixture(scope="module")
def replay() -> Iterator[tuple[str, ReplayState]]:
    with replay_server() as served:
        yield served


def fetcher(url: str) -> Any:
    client = httpx.Client(timeout=10)

    def fetch(params: dict[str, str]) -> Any:
        response = client.get(url, params=params)
        response.raise_for_status()
        return response.json()

    return fetch


def test_a_category_listing_is_followed_to_its_end(replay: tuple[str, ReplayState]) -> None:
    base, state = replay
    fetch = fetcher(site_url(base, "en.wikipedia.org"))
    params = mediawiki.members_params("Disambiguation categories", limit=5000)
    answers = list(mediawiki.walk(fetch, params))
    assert len(answers) == 3 and mediawiki.continued(params, answers[-1]) is None
    listed = [m for answer in answers for m in mediawiki.members(answer)]
    assert len(listed) == len({m.title for m in listed}) > 100
    assert {m.kind for m in listed} <= {"page", "subcat", "file"} and any(m.kind == "subcat" for m in listed)
    sent = state.requests_to("/en.wikipedia.org/")[-3:]
    assert all(r.params["maxlag"] == "5" and r.params["formatversion"] == "2" for r in sent)
    assert "cmcontinue" not in sent[0].params and "cmcontinue" in sent[1].params


def test_a_pages_links_are_followed_through_41_continuations(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    fetch = fetcher(site_url(base, "en.wikipedia.org"))
    answers = list(mediawiki.walk(fetch, mediawiki.links_params("List of named minor planets (numerical)")))
    titles = [t for answer in answers for t in mediawiki.linked_titles(answer)]
    assert len(answers) == 41 and len(titles) == len(set(titles)) > 1000


def test_a_rendered_revision_is_read_in_the_old_answer_format(replay: tuple[str, ReplayState]) -> None:
    base, _ = replay
    answer = fetcher(site_url(base, "awoiaf.westeros.org"))(mediawiki.page_params("Arya Stark"))
    found = mediawiki.revision(answer)
    assert found is not None and found.title == "Arya Stark" and found.page_id == 1635
    assert "<p>" in found.content and "Arya" in found.content


def test_the_modern_format_and_errors_are_read_too() -> None:
    modern = {
        "query": {
            "pages": [
                {"pageid": 7, "title": "A", "revisions": [{"slots": {"main": {"content": "'''A''' is"}}}]},
            ]
        }
    }
    assert mediawiki.revision(modern) == mediawiki.Revision("A", 7, "'''A''' is")
    assert mediawiki.revision({"query": {"pages": [{"title": "Gone", "missing": True}]}}) is None
    lagged = {"error": {"code": "maxlag", "info": "Waiting for 10.0.0.1: 7 seconds lagged"}}
    assert mediawiki.api_error(lagged) == ("maxlag", "Waiting for 10.0.0.1: 7 seconds lagged")
    assert mediawiki.api_error(modern) is None
    legacy = {"query-continue": {"links": {"plcontinue": "12|0|B"}}}
    assert mediawiki.continued({"titles": "A"}, legacy) == {"titles": "A", "plcontinue": "12|0|B"}


def test_a_listing_that_never_ends_is_stopped() -> None:
    def stuck(params: dict[str, str]) -> dict[str, Any]:
        return {"continue": {"cmcontinue": "same", "continue": "-||"}, "query": {"categorymembers": []}}

    with pytest.raises(mediawiki.ListingTooLongError, match="without end"):
        list(mediawiki.walk(stuck, mediawiki.members_params("Loop")))
