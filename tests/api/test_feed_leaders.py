"""``/v1/feeds`` names each feed's leader: the publisher whose id its lease (``kiwoom:{<feed>}:lease``) holds."""

from __future__ import annotations

import httpx
import pytest

from api.models import FeedsModel
from kiwoom_cache import contract as c
from tests.api.writer import Writer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

FEEDS = ("kospi-surge", "kosdaq-surge", "kospi-volume")
TTL_MS = 600_000  # far beyond the test: only the test's own DEL ends a lease


def _take(writer: Writer, feed: str, holder: str) -> bool:
    """What publisher/lease.py does to take a lease: SET NX PX with the publisher's id as the value."""
    return bool(writer.client.set(c.lease_key(feed), c.check_publisher_id(holder), nx=True, px=TTL_MS))


def _leaders(url: str) -> dict[str, str | None]:
    r = httpx.get(url + "/v1/feeds", timeout=10.0)
    assert r.status_code == 200, r.text
    return {f.feed: f.leader for f in FeedsModel.model_validate(r.json()).feeds}


def test_feeds_show_each_feeds_leader(redis_url: str, writer: Writer, replica) -> None:
    for feed in FEEDS:
        writer.register(feed)
    first, second = c.new_publisher_id(), c.new_publisher_id()
    assert _take(writer, "kospi-surge", first) and _take(writer, "kosdaq-surge", second)
    rep = replica(redis_url)
    assert _leaders(rep.url) == {"kospi-surge": first, "kosdaq-surge": second, "kospi-volume": None}

    # A hand-over (the first releases, the second takes over) shows on the next answer.
    writer.client.delete(c.lease_key("kospi-surge"))
    assert _take(writer, "kospi-surge", second)
    assert _leaders(rep.url)["kospi-surge"] == second


def test_a_lease_holding_no_publisher_id_names_no_leader(redis_url: str, writer: Writer, replica) -> None:
    writer.register("kospi-surge")
    writer.client.set(c.lease_key("kospi-surge"), "NOT A PUBLISHER ID", px=TTL_MS)
    rep = replica(redis_url)
    assert _leaders(rep.url) == {"kospi-surge": None}
    wait_until(lambda: "feed kospi-surge: ignoring its lease" in rep.log(), 30, "the bad lease value logged")
