"""The simulated market's price distribution over a simulated day: near the previous close, a few movers.

Seeded, so deterministic; the thresholds hold for every seed listed, not just a lucky one.
"""

from __future__ import annotations

import statistics

import pytest

from publisher.controls.sim_market import SimMarket, limit_prices

SEEDS = range(5)
DAY = 390  # minutes of regular trading; SimMarket opens with 30 of them done


def simulate_day(seed: int) -> tuple[SimMarket, list[float], list[float], int]:
    """Close-to-previous-close changes, intraday high-low ranges (both as fractions) and surge minutes."""
    market = SimMarket(seed)
    high = {s.code: s.price for s in market.stocks}
    low = dict(high)
    surge_minutes = 0
    for _ in range(DAY - market.step):
        before = [s.volumes[-1] for s in market.stocks]
        market.advance()
        for s, volume in zip(market.stocks, before, strict=True):
            high[s.code] = max(high[s.code], s.price)
            low[s.code] = min(low[s.code], s.price)
            surge_minutes += s.volumes[-1] - volume >= 4 * s.base_rate
    changes = [s.price / s.prev_close - 1 for s in market.stocks]
    ranges = [(high[s.code] - low[s.code]) / s.prev_close for s in market.stocks]
    return market, changes, ranges, surge_minutes


@pytest.fixture(scope="module")
def days() -> list[tuple[SimMarket, list[float], list[float], int]]:
    return [simulate_day(seed) for seed in SEEDS]


def test_most_stocks_close_within_a_few_percent(days) -> None:
    changes = [abs(c) for _, day, _, _ in days for c in day]
    assert statistics.median(changes) <= 0.02
    assert sum(c <= 0.03 for c in changes) >= 0.7 * len(changes)


def test_a_few_movers_and_rare_limit_hits(days) -> None:
    changes = [abs(c) for _, day, _, _ in days for c in day]
    movers = sum(c > 0.05 for c in changes)
    assert 3 <= movers <= 0.15 * len(changes)
    at_limit = sum(s.price in limit_prices(s.prev_close) for market, _, _, _ in days for s in market.stocks)
    assert at_limit <= 0.02 * len(changes)


def test_intraday_ranges_are_realistic(days) -> None:
    ranges = [r for _, _, day, _ in days for r in day]
    assert 0.01 <= statistics.median(ranges) <= 0.08


def test_volumes_still_surge(days) -> None:
    for market, _, _, surge_minutes in days:
        assert surge_minutes >= len(market.stocks)  # on average a stock trades 4x its pace for a minute or more
        assert all(s.volumes == sorted(s.volumes) for s in market.stocks), "cumulative volume never falls"


def test_prices_revert_instead_of_drifting_over_days() -> None:
    market = SimMarket(seed=0)
    market.advance(2 * DAY)  # the simulated control keeps stepping for as long as it runs
    changes = [abs(s.price / s.prev_close - 1) for s in market.stocks]
    assert statistics.median(changes) <= 0.03
    assert sum(s.price in limit_prices(s.prev_close) for s in market.stocks) <= 2


def test_same_seed_same_prices() -> None:
    a, b = SimMarket(seed=3), SimMarket(seed=3)
    a.advance(60)
    b.advance(60)
    assert [s.price for s in a.stocks] == [s.price for s in b.stocks]
