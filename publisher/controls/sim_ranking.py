"""The rankings of the simulated market, shared by the simulated OCX control and the fake REST server: which
stocks each ranking TR returns for a query, in which order, and the raw strings Kiwoom would send for them.

Raw values are keyed by row field (``price``, ``surge_rate``, ...) and unpadded; the control pads them to the
OCX's fixed width and names them with the OCX items, the fake REST server names them with ka100xx keys.

Each TR's behaviour is one :class:`SimTr` in :data:`SIM_TRS` (which quotes in which order, and the TR's own
fields of a row); the module refuses to import when a TR of the catalogue (publisher/trs/) has no entry, so a new
TR cannot reach a simulator half-done.
The simulated market has no administrative-issue, credit or after-hours classes, so those filters keep every
stock. Simulated data, never real market data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Final

from publisher.controls.sim_market import Quote, SimMarket, limit_prices, tick_size
from publisher.trs import TRS

#: opt10023 가격구분 -> minimum price in KRW.
_PRICE_FLOORS = {"0": 0, "2": 50000, "5": 10000, "6": 5000, "8": 1000, "9": 100000}
_INF = float("inf")
#: opt10030 가격구분 -> [low, high) in KRW.
_PRICE_BANDS_10030 = {"0": (0, _INF), "1": (0, 1000), "2": (1000, _INF), "3": (1000, 2000), "4": (2000, 5000),
                      "5": (5000, _INF), "6": (5000, 10000), "10": (0, 10000), "7": (10000, _INF),
                      "8": (50000, _INF), "9": (100000, _INF)}
#: opt10027 가격조건 -> [low, high) in KRW.
_PRICE_BANDS_10027 = {"0": (0, _INF), "1": (0, 1000), "2": (1000, 2000), "3": (2000, 5000), "4": (5000, 10000),
                      "5": (10000, _INF), "8": (1000, _INF), "10": (0, 10000)}


def rank(market: SimMarket, params: Mapping[str, str]) -> list[Quote]:
    """opt10023: quotes matching the query (English parameter names, Kiwoom's codes), surge first."""
    quotes = market.quotes(params["market"], int(params["minutes"]), versus_previous_day=params["time_unit"] == "2")
    floor = int(params["min_volume"]) * 1000
    price_floor = _PRICE_FLOORS[params["price_filter"]]
    picked = [q for q in quotes if q.volume >= floor and q.price >= price_floor and q.surge > 0]
    key = (lambda q: q.surge) if params["sort"] == "1" else (lambda q: q.surge_rate)
    picked.sort(key=key, reverse=True)
    return picked


def value(q: Quote) -> int:
    """Traded value in KRW (volume at the current price: the model keeps no intraday VWAP)."""
    return q.volume * q.price


def _rate(q: Quote) -> float:
    return q.change / q.prev_close * 100


def _value_floor(code: str) -> int:
    # 거래대금 codes count ten-millions of KRW (10 = 1억), except ka10030's 4 = 5천만원.
    return 50_000_000 if code == "4" else int(code) * 10_000_000


def _rank_10030(market: SimMarket, p: Mapping[str, str]) -> list[Quote]:
    low, high = _PRICE_BANDS_10030[p["price_filter"]]
    picked = [q for q in market.quotes(p["market"], 1, versus_previous_day=True)
              if q.volume >= int(p["min_volume"]) * 1000 and low <= q.price < high
              and value(q) >= _value_floor(p["min_value"])]
    keys: dict[str, Callable[[Quote], float]] = {
        "1": lambda q: q.volume, "2": lambda q: q.volume / q.listed_shares, "3": value}
    return sorted(picked, key=keys[p["sort"]], reverse=True)


def _rank_10027(market: SimMarket, p: Mapping[str, str]) -> list[Quote]:
    low, high = _PRICE_BANDS_10027[p["price_filter"]]
    picked = [q for q in market.quotes(p["market"], 1, versus_previous_day=True)
              if q.volume >= int(p["min_volume"]) * 1000 and low <= q.price < high
              and value(q) >= _value_floor(p["min_value"])
              and (p["include_limits"] == "1" or direction(q)[0] not in ("1", "4"))]
    sort = p["sort"]
    if sort == "5":
        return [q for q in picked if q.change == 0]
    rising = sort in ("1", "2")
    picked = [q for q in picked if (q.change > 0 if rising else q.change < 0)]
    key: Callable[[Quote], float] = _rate if sort in ("1", "3") else (lambda q: q.change)
    return sorted(picked, key=key, reverse=rising)


def _rank_10032(market: SimMarket, p: Mapping[str, str]) -> list[Quote]:
    return sorted(market.quotes(p["market"], 1, versus_previous_day=True), key=value, reverse=True)


def direction(q: Quote) -> tuple[str, str]:
    """(전일대비기호 1..5, ``+``/``-``/empty mark) of a quote versus the previous close."""
    change = q.change
    limit_down, limit_up = limit_prices(q.prev_close)
    sign = "1" if q.price >= limit_up else "4" if q.price <= limit_down else (
        "2" if change > 0 else "5" if change < 0 else "3")
    return sign, "+" if change > 0 else "-" if change < 0 else ""


def _marked(price: int, prev_close: int) -> str:
    """A price as Kiwoom writes it: ``+``/``-`` for above/below the previous close."""
    return f"{'+' if price > prev_close else '-' if price < prev_close else ''}{price}"


class RankingDay:
    """What the rows of one answer share, computed once and only when a TR asks for it."""

    def __init__(self, market: SimMarket) -> None:
        self.market = market

    @cached_property
    def prev_value_ranks(self) -> dict[str, int]:
        return prev_value_ranks(self.market)


def _fields_10023(q: Quote, index: int, day: RankingDay) -> dict[str, str]:
    return {"prev_volume": str(q.prev_volume), "surge_volume": f"+{q.surge}", "surge_rate": f"+{q.surge_rate:.2f}"}


def _fields_10030(q: Quote, index: int, day: RankingDay) -> dict[str, str]:
    ratio = q.volume / q.prev_day_volume * 100 if q.prev_day_volume else 0.0
    return {"volume_ratio": f"{ratio:.2f}", "turnover_rate": f"{q.volume / q.listed_shares * 100:.2f}",
            "trade_value": str(value(q) // 1_000_000)}


def _fields_10027(q: Quote, index: int, day: RankingDay) -> dict[str, str]:
    # Order-book depth and execution strength follow the move: buyers pile up behind a rising stock.
    rate = _rate(q)
    depth = max(100, q.volume // 40)
    tilt = max(-0.8, min(0.8, rate / 20))
    strength = max(10.0, min(500.0, 100.0 + rate * 8))
    return {"stock_class": "", "ask_volume": str(int(depth * (1 - tilt))), "bid_volume": str(int(depth * (1 + tilt))),
            "strength": f"{strength:.2f}", "count": str(1 + int(abs(rate)) // 3)}


def _fields_10032(q: Quote, index: int, day: RankingDay) -> dict[str, str]:
    tick = tick_size(q.price)
    return {"now_rank": str(index + 1), "prev_rank": str(day.prev_value_ranks.get(q.code, 0)),
            "ask": _marked(q.price + tick, q.prev_close), "bid": _marked(q.price, q.prev_close),
            "prev_volume": str(q.prev_day_volume), "trade_value": str(value(q) // 1_000_000)}


@dataclass(frozen=True, slots=True)
class SimTr:
    """How the simulated market answers one ranking TR."""

    #: The quotes it answers for a query (validated English parameter names), in Kiwoom's order.
    rank: Callable[[SimMarket, Mapping[str, str]], list[Quote]]
    #: The TR's own raw fields of one row (the core's come from :func:`raw_fields`): quote, 0-based position, day.
    fields: Callable[[Quote, int, RankingDay], dict[str, str]]


#: Every TR's simulator entry, by TR code: the simulated control and the fake REST server both answer from it.
SIM_TRS: Final[Mapping[str, SimTr]] = MappingProxyType({
    "opt10023": SimTr(rank, _fields_10023),
    "opt10030": SimTr(_rank_10030, _fields_10030),
    "opt10027": SimTr(_rank_10027, _fields_10027),
    "opt10032": SimTr(_rank_10032, _fields_10032),
})


def ranked(tr: str, market: SimMarket, params: Mapping[str, str]) -> list[Quote]:
    """The quotes TR ``tr`` answers for ``params`` (validated English parameter names), in Kiwoom's order."""
    return SIM_TRS[tr].rank(market, params)


def raw_fields(tr: str, q: Quote, index: int, day: RankingDay) -> dict[str, str]:
    """Kiwoom's raw strings for one row of ``tr`` (unpadded), keyed by row field; ``index`` is the row's position
    (0-based)."""
    sign, mark = direction(q)
    rate = _rate(q)
    out = {"code": q.code, "name": q.name, "price": f"{mark}{q.price}", "sign": sign,
           "change": f"{mark}{abs(q.change)}", "change_rate": f"{mark}{abs(rate):.2f}", "volume": str(q.volume)}
    out.update(SIM_TRS[tr].fields(q, index, day))
    return out


def raw_rows(tr: str, market: SimMarket, quotes: Sequence[Quote]) -> list[dict[str, str]]:
    """:func:`raw_fields` of every quote of one answer, in order."""
    day = RankingDay(market)
    return [raw_fields(tr, q, i, day) for i, q in enumerate(quotes)]


def prev_value_ranks(market: SimMarket) -> dict[str, int]:
    """Each stock's rank by the previous day's traded value (전일순위 of opt10032)."""
    stocks = sorted(market.stocks, key=lambda s: s.prev_day_volume * s.prev_close, reverse=True)
    return {s.code: i + 1 for i, s in enumerate(stocks)}


def _check() -> None:
    missing, unknown = sorted(set(TRS) - set(SIM_TRS)), sorted(set(SIM_TRS) - set(TRS))
    if missing or unknown:
        raise RuntimeError(f"simulator entries (publisher/controls/sim_ranking.py SIM_TRS) missing for {missing}, "
                           f"for no TR of the catalogue: {unknown}")


_check()
