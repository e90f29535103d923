"""Property-based tests (hypothesis) for what clients send: stream/event ids and query strings.

Whatever the input, parsing either returns a value the rest of the code can use, or raises the one error
type that becomes a 400/422 — never any other exception (a 500).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.history import MAX_SEQ, MAX_TIME_MS, HistoryQueryError, bounds
from api.snapshot import MAX_LIMIT, QueryError, parse_snapshot_query
from kiwoom_cache import contract as c
from kiwoom_cache.errors import ContractError

PART = st.integers(min_value=0, max_value=c.MAX_ID_PART)
#: Text that looks like ids half of the time: digits, dashes, @ and letters, plus anything at all.
IDISH = st.one_of(st.text(alphabet="0123456789-@abcxyzZ \n\u0661\uff11", max_size=50), st.text(max_size=50))


@given(PART, PART)
def test_stream_ids_round_trip(ms: int, seq: int) -> None:
    assert c.parse_stream_id(f"{ms}-{seq}") == (ms, seq)
    assert c.parse_stream_id(f"{ms}-{seq}".encode()) == (ms, seq)


@given(PART, PART, st.from_regex(r"\A[0-9a-z]{1,32}\Z"))
def test_event_ids_round_trip(ms: int, seq: int, epoch: str) -> None:
    rid = f"{ms}-{seq}"
    assert c.parse_event_id(c.event_id(rid, epoch)) == ((ms, seq), rid, epoch)
    assert c.parse_event_id(c.event_id(rid, None)) == ((ms, seq), rid, None)


@given(IDISH)
def test_any_text_is_an_id_or_a_contract_error(text: str) -> None:
    try:
        sid, rid, epoch = c.parse_event_id(text)
    except ContractError:
        return
    assert c.parse_stream_id(rid) == sid and all(0 <= part <= c.MAX_ID_PART for part in sid)
    assert c.event_id(rid, epoch) == text


def _valid_bound(arg: str) -> bool:
    return arg in ("-", "+") or c.parse_stream_id(arg) is not None


@given(st.one_of(st.none(), IDISH), st.one_of(st.none(), IDISH), st.one_of(st.none(), IDISH, PART.map(str)),
       st.one_of(st.none(), IDISH, PART.map(str), st.dates().map(str)))
@settings(max_examples=300)
def test_history_bounds_are_valid_xrange_arguments_or_422(after: str | None, before: str | None,
                                                          since: str | None, until: str | None) -> None:
    try:
        low, high = bounds(after=after, before=before, since=since, until=until)
    except HistoryQueryError as exc:
        assert exc.name in ("after", "before", "since", "until")
        return
    assert _valid_bound(low) and _valid_bound(high)


@given(PART, PART, PART, PART)
def test_exclusive_bounds_exclude_exactly_the_id(a_ms: int, a_seq: int, b_ms: int, b_seq: int) -> None:
    low, high = bounds(after=f"{a_ms}-{a_seq}", before=f"{b_ms}-{b_seq}", since=None, until=None)
    top = (MAX_TIME_MS, MAX_SEQ)
    # the first id after `after` and the last one before `before`, where they exist
    first = None if (a_ms, a_seq) == top else (a_ms, a_seq + 1) if a_seq < MAX_SEQ else (a_ms + 1, 0)
    last = None if (b_ms, b_seq) == (0, 0) else (b_ms, b_seq - 1) if b_seq > 0 else (b_ms - 1, MAX_SEQ)
    if first is None or last is None or first > last:  # no id lies strictly between: the empty page
        assert (low, high) == ("1-0", "0-0")
        return
    assert low == ("-" if first == (0, 0) else f"{first[0]}-{first[1]}")
    assert high == ("+" if last == top else f"{last[0]}-{last[1]}")


@given(st.binary(max_size=200))
def test_any_snapshot_query_parses_or_is_422(raw: bytes) -> None:
    try:
        limit, fields = parse_snapshot_query(raw)
    except QueryError as exc:
        assert exc.detail[0]["loc"][0] == "query"
        return
    assert limit is None or 1 <= limit <= MAX_LIMIT
    assert fields is None or (fields[0] == "rank" and set(fields) <= set(c.ALL_ROW_FIELDS))


@given(st.integers(), st.lists(st.sampled_from([*c.ALL_ROW_FIELDS, "bogus", ""]), max_size=5))
def test_snapshot_limit_and_fields_bounds(limit: int, fields: list[str]) -> None:
    raw = f"limit={limit}&fields={quote(','.join(fields))}".encode()
    ok_limit = 1 <= limit <= MAX_LIMIT
    ok_fields = bool([f for f in fields if f]) and all(f in c.ALL_ROW_FIELDS for f in fields if f)
    if ok_limit and ok_fields:
        assert parse_snapshot_query(raw)[0] == limit
    else:
        with pytest.raises(QueryError):
            parse_snapshot_query(raw)
