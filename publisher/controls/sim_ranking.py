"""The volume-surge ranking of the simulated market, shared by the simulated OCX control and the fake REST
server: which stocks an opt10023/ka10023 query returns, in which order, and Kiwoom's direction marks."""

from __future__ import annotations

from collections.abc import Mapping

from publisher.controls.sim_market import Quote, SimMarket, limit_prices

#: 가격구분 -> minimum price in KRW.
_PRICE_FLOORS = {"0": 0, "2": 50000, "5": 10000, "6": 5000, "8": 1000, "9": 100000}


def rank(market: SimMarket, params: Mapping[str, str]) -> list[Quote]:
    """Quotes matching the query (English parameter names, Kiwoom's codes), surge first."""
    quotes = market.quotes(params["market"], int(params["minutes"]), versus_previous_day=params["time_unit"] == "2")
    floor = int(params["min_volume"]) * 1000
    price_floor = _PRICE_FLOORS[params["price_filter"]]
    picked = [q for q in quotes if q.volume >= floor and q.price >= price_floor and q.surge > 0]
    key = (lambda q: q.surge) if params["sort"] == "1" else (lambda q: q.surge_rate)
    picked.sort(key=key, reverse=True)
    return picked


def direction(q: Quote) -> tuple[str, str]:
    """(전일대비기호 1..5, ``+``/``-``/empty mark) of a quote versus the previous close."""
    change = q.change
    limit_down, limit_up = limit_prices(q.prev_close)
    sign = "1" if q.price >= limit_up else "4" if q.price <= limit_down else (
        "2" if change > 0 else "5" if change < 0 else "3")
    return sign, "+" if change > 0 else "-" if change < 0 else ""
