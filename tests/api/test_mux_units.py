"""The multiplexed resume id and the feeds list: round trips, and any input either parses or gets a clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.mux import MuxInputError, check_feeds, fingerprint, format_id, parse_feeds, parse_id

feed_names = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
event_ids = st.builds(lambda ms, seq, epoch: f"{ms}-{seq}" + (f"@{epoch}" if epoch else ""),
                      st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                      st.one_of(st.none(), st.from_regex(r"[0-9a-z]{1,32}", fullmatch=True)))


@given(st.lists(feed_names, min_size=1, max_size=16, unique=True), st.data())
def test_an_id_round_trips(feeds: list[str], data: st.DataObject) -> None:
    feeds = sorted(feeds)
    positions = data.draw(st.lists(st.one_of(st.none(), event_ids), min_size=len(feeds), max_size=len(feeds)))
    text = format_id(feeds, positions)
    assert parse_id(text, feeds) == positions
    assert len(text) <= 9 + len(feeds) * 76  # bounded: fingerprint, and per feed at most 75 + a comma


@given(st.text(max_size=300), st.lists(feed_names, min_size=1, max_size=4, unique=True))
def test_any_id_parses_or_says_why(text: str, feeds: list[str]) -> None:
    try:
        positions = parse_id(text, sorted(feeds))
    except MuxInputError as exc:
        assert str(exc)
    else:
        assert len(positions) == len(feeds)


@given(st.binary(max_size=300))
def test_any_query_parses_or_says_why(query: bytes) -> None:
    try:
        feeds = parse_feeds(query, 16)
    except MuxInputError as exc:
        assert str(exc)
    else:
        assert feeds == sorted(set(feeds)) and 1 <= len(feeds) <= 16


def test_feed_lists_are_canonical_and_fingerprinted() -> None:
    assert parse_feeds(b"feeds=b,a&feeds=a", 16) == ["a", "b"]
    assert fingerprint(["a", "b"]) != fingerprint(["a", "c"])
    with pytest.raises(MuxInputError, match="another list of feeds"):
        parse_id(format_id(["a", "b"], ["1-0", None]), ["a", "c"])
    with pytest.raises(MuxInputError, match="too many"):
        check_feeds(["a", "b", "c"], 2)
    with pytest.raises(MuxInputError, match="too many query parameters"):
        parse_feeds(b"&".join([b"feeds=a"] * 100), 16)
