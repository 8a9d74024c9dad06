"""Evidence bundles: limits never exceeded, cuts only at character boundaries, stable evidence ids."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from holocron.evidence import BoundingPolicy, build_bundle, cut_utf8, render_text, utf8_len
from holocron.hashing import evidence_id_for, sha256_text
from holocron.retrieval.search import Hit
from holocron.store.evidence import get_bundle
from test_retrieval import FLEET, indexed, open_store

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


def hit(rank: int, text: str, chunk: str | None = None) -> Hit:
    chunk_id = chunk or f"chunk-{rank}"
    return Hit(
        rank=rank,
        score=1.0 / rank,
        chunk_id=chunk_id,
        source_id=f"src-{rank % 3}",
        source_type="text",
        source_system="files",
        title=f"Title {rank}",
        text=text,
        start_offset=100 * rank,
        end_offset=100 * rank + len(text),
        content_sha256=sha256_text(text),
        source_ref={"uri": f"file:///{rank}"},
    )


@settings(max_examples=300, deadline=None)
@given(text=TEXT, limit=st.integers(0, 400))
def test_cut_is_the_longest_fitting_prefix(text: str, limit: int) -> None:
    cut = cut_utf8(text, limit)
    assert text.startswith(cut)
    assert utf8_len(cut) <= limit
    if cut != text:
        assert utf8_len(text[: len(cut) + 1]) > limit  # one more character would not fit


def test_cut_never_splits_a_character() -> None:
    assert cut_utf8("aé", 2) == "a"  # é is two bytes
    assert cut_utf8("日本語", 7) == "日本"
    assert cut_utf8("🙂x", 3) == ""
    assert cut_utf8("🙂x", 5) == "🙂x"


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(TEXT, max_size=12),
    max_items=st.integers(1, 6),
    max_total=st.integers(1, 1500),
    max_item=st.integers(1, 500),
)
def test_bundles_never_exceed_their_limits(texts: list[str], max_items: int, max_total: int, max_item: int) -> None:
    hits = [hit(rank, text) for rank, text in enumerate(texts, start=1)]
    policy = BoundingPolicy(max_items=max_items, max_total_bytes=max_total, max_item_bytes=max_item)
    bundle = build_bundle(hits, policy, query="q")
    assert len(bundle.items) <= max_items
    assert bundle.total_bytes <= max_total
    by_id = {h.evidence_id: h for h in hits}
    for item in bundle.items:
        original = by_id[item.evidence_id]
        assert item.bytes <= max_item
        assert original.text.startswith(item.text)  # a prefix: cut at a character boundary
        assert item.truncated == (item.text != original.text)
        assert item.start_offset == original.start_offset
        assert item.end_offset == original.start_offset + len(item.text)
    # Everything not kept whole is accounted for.
    cut_ids = {c.evidence_id for c in bundle.cut}
    kept_whole = {i.evidence_id for i in bundle.items if not i.truncated}
    assert cut_ids | kept_whole == set(by_id)
    stats = bundle.stats()
    assert stats["items"] == len(bundle.items) and stats["total_bytes"] == bundle.total_bytes
    assert [i.sequence for i in bundle.items] == list(range(1, len(bundle.items) + 1))


def test_cut_reasons_are_recorded() -> None:
    hits = [hit(1, "x" * 50), hit(2, "é" * 100), hit(3, "y" * 400), hit(4, "z" * 10)]
    bundle = build_bundle(hits, BoundingPolicy(max_items=3, max_total_bytes=300, max_item_bytes=120))
    cut = {c.rank: (c.action, c.reason, c.kept_bytes) for c in bundle.cut}
    assert cut[2] == ("truncated", "max_item_bytes", 120)  # 60 two-byte characters
    assert cut[3] == ("truncated", "max_item_bytes", 120)
    assert cut[4] == ("dropped", "max_items", 0)
    assert bundle.total_bytes == 290
    small_total = build_bundle(hits, BoundingPolicy(max_items=5, max_total_bytes=140, max_item_bytes=1000))
    assert {c.rank: c.reason for c in small_total.cut}[2] == "max_total_bytes"
    json_doc = small_total.to_json()
    assert json_doc["items"][0]["evidence_id"] == hits[0].evidence_id and json_doc["stats"]["cut"]
    assert "[" + hits[0].evidence_id + "]" in render_text(small_total)


def test_evidence_ids_do_not_depend_on_rank() -> None:
    a = build_bundle([hit(1, "alpha", "c1"), hit(2, "beta", "c2")], BoundingPolicy())
    b = build_bundle([hit(1, "beta", "c2"), hit(2, "alpha", "c1")], BoundingPolicy())
    assert {i.text: i.evidence_id for i in a.items} == {i.text: i.evidence_id for i in b.items}
    assert a.items[0].evidence_id == evidence_id_for("c1", sha256_text("alpha"))


def test_evidence_is_stored_and_stable_across_reruns(db_url: str, tmp_path: Path) -> None:
    with indexed(open_store(db_url, tmp_path), FLEET) as holo:
        first = holo.evidence("Kessel spice smugglers", policy=BoundingPolicy(max_items=3, max_item_bytes=40))
        holo.index(mode="full")  # re-chunk and re-check everything: nothing changes
        second = holo.evidence("Kessel spice smugglers", policy=BoundingPolicy(max_items=3, max_item_bytes=40))
        assert first.bundle_id != second.bundle_id
        assert [i.evidence_id for i in first.items] == [i.evidence_id for i in second.items]
        assert all(i.truncated and i.bytes <= 40 for i in first.items)
        with holo.db.read() as tx:
            stored = get_bundle(tx, first.bundle_id)
        assert stored is not None
        row, items = stored
        assert row["retrieval_id"] == first.retrieval_id and row["stats_json"]["items"] == len(first.items)
        assert [i["evidence_id"] for i in items] == [i.evidence_id for i in first.items]
        assert items[0]["content_ref_json"]["end_offset"] == first.items[0].end_offset
