"""The test suite's own helpers: sample files that are missing fail loudly, and cleanups never hide an error."""

from __future__ import annotations

import pytest

from conftest import CleanupWarning, cleanup
from datafiles import CORPUS, DATA, data_file, data_files


def test_a_missing_sample_file_fails_the_test_naming_where_it_looked() -> None:
    with pytest.raises(pytest.fail.Exception) as caught:
        data_file("wiki-html/no-such-page.html")
    message = str(caught.value)
    assert "no-such-page.html" in message
    assert str(DATA / "wiki-html" / "no-such-page.html") in message
    assert str(CORPUS / "wiki-html" / "no-such-page.html") in message


def test_a_folder_without_its_sample_files_fails() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"0 sample files \*\.json in .*, expected 3"):
        data_files("no-such-folder", ".json", expect=3)


def test_sample_files_come_from_both_places_each_from_one() -> None:
    recordings = data_files("mediawiki-api", ".json", expect=149)
    flattened = "mediawiki-api/en.wikipedia.org/query__revisions__Bush.json"
    assert recordings[flattened] == CORPUS / "mediawiki-api" / "en.wikipedia.org_query__revisions__Bush.json"
    assert data_file(flattened) == recordings[flattened]
    copied = "mediawiki-api/en.wikipedia.org/query__geosearch__10000.json"
    assert recordings[copied] == DATA / "mediawiki-api" / "en.wikipedia.org" / "query__geosearch__10000.json"
    with pytest.raises(pytest.fail.Exception, match=r"149 sample files \*\.json in .*, expected 150"):
        data_files("mediawiki-api", ".json", expect=150)
    assert list(data_files("openalex", ".json", expect=4)) == [
        "openalex/papers__author.json",
        "openalex/papers__institution.json",
        "openalex/papers__source.json",
        "openalex/papers__work.json",
    ]


def _fail_cleanup() -> None:
    raise OSError("cleanup broke")


def test_a_failing_cleanup_does_not_replace_the_error_it_follows() -> None:
    with (
        pytest.warns(CleanupWarning, match="then dropping it failed too: OSError: cleanup broke"),
        pytest.raises(KeyError) as caught,
        cleanup("dropping it", _fail_cleanup),
    ):
        raise KeyError("the test's own error")
    assert caught.value.__notes__ == ["then dropping it failed too: OSError: cleanup broke"]


def test_a_failing_cleanup_after_success_is_the_error() -> None:
    with pytest.raises(OSError, match="cleanup broke"), cleanup("dropping it", _fail_cleanup):
        pass


def test_cleanup_runs_once_either_way() -> None:
    calls: list[str] = []
    with cleanup("noting", lambda: calls.append("done")):
        pass
    with pytest.raises(ValueError), cleanup("noting", lambda: calls.append("done")):
        raise ValueError("x")
    assert calls == ["done", "done"]
