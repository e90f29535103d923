"""A seeded market model behind the simulated control: prices and volumes that move like KRX's.

Prices are mean-reverting (an Ornstein-Uhlenbeck walk of the log price) around an anchor near the previous
close, so however long the simulation runs they keep a realistic daily range instead of drifting to the
±30% band: the anchor is the stock's own bias for the day plus a market-wide mood, most stocks end within
a few percent, a few movers run 5-15%, and a rare "theme" stock is pinned to a limit. A volume surge
(several times the usual pace for a few steps, which is what opt10023 ranks) moves the anchor by a news
impulse, mostly upward, that fades over a couple of hours. Cumulative volumes grow at a per-stock base
rate with log-normal noise. Prices land on KRX ticks within the band. One step is one simulated minute.
This is simulated data, never presented as real market data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: (code, name, market "001" KOSPI / "101" KOSDAQ, previous close in KRW, typical volume per minute)
UNIVERSE: tuple[tuple[str, str, str, int, int], ...] = (
    ("005930", "삼성전자", "001", 71500, 45000),
    ("000660", "SK하이닉스", "001", 178000, 9000),
    ("373220", "LG에너지솔루션", "001", 352000, 900),
    ("207940", "삼성바이오로직스", "001", 1012000, 200),
    ("005380", "현대차", "001", 213500, 1800),
    ("000270", "기아", "001", 98700, 3500),
    ("068270", "셀트리온", "001", 176400, 2200),
    ("005490", "POSCO홀딩스", "001", 318000, 900),
    ("035420", "NAVER", "001", 198300, 1600),
    ("035720", "카카오", "001", 38250, 9500),
    ("051910", "LG화학", "001", 276000, 800),
    ("006400", "삼성SDI", "001", 245500, 900),
    ("105560", "KB금융", "001", 93400, 3000),
    ("055550", "신한지주", "001", 55700, 3800),
    ("012330", "현대모비스", "001", 251000, 700),
    ("066570", "LG전자", "001", 78900, 2900),
    ("096770", "SK이노베이션", "001", 112300, 1700),
    ("015760", "한국전력", "001", 22150, 14000),
    ("010130", "고려아연", "001", 812000, 150),
    ("009150", "삼성전기", "001", 131200, 1400),
    ("017670", "SK텔레콤", "001", 56400, 1700),
    ("030200", "KT", "001", 47850, 2600),
    ("033780", "KT&G", "001", 118700, 900),
    ("011200", "HMM", "001", 19870, 16000),
    ("042660", "한화오션", "001", 68900, 8000),
    ("012450", "한화에어로스페이스", "001", 724000, 700),
    ("329180", "HD현대중공업", "001", 398500, 900),
    ("010140", "삼성중공업", "001", 15420, 40000),
    ("003490", "대한항공", "001", 23950, 7000),
    ("034020", "두산에너빌리티", "001", 61200, 25000),
    ("323410", "카카오뱅크", "001", 28450, 6000),
    ("259960", "크래프톤", "001", 334500, 500),
    ("010950", "S-Oil", "001", 57600, 1300),
    ("003550", "LG", "001", 76800, 1200),
    ("247540", "에코프로비엠", "101", 128400, 4500),
    ("086520", "에코프로", "101", 62300, 6500),
    ("028300", "HLB", "101", 54800, 5200),
    ("196170", "알테오젠", "101", 412500, 1200),
    ("066970", "엘앤에프", "101", 88700, 2100),
    ("277810", "레인보우로보틱스", "101", 298000, 900),
    ("058470", "리노공업", "101", 201500, 300),
    ("293490", "카카오게임즈", "101", 16240, 6000),
    ("263750", "펄어비스", "101", 41150, 2400),
    ("112040", "위메이드", "101", 27300, 3400),
    ("035900", "JYP Ent.", "101", 63400, 1700),
    ("041510", "에스엠", "101", 97800, 1200),
    ("145020", "휴젤", "101", 312000, 250),
    ("039030", "이오테크닉스", "101", 143600, 500),
    ("240810", "원익IPS", "101", 29850, 2800),
    ("357780", "솔브레인", "101", 236500, 350),
    ("141080", "리가켐바이오", "101", 118900, 1100),
    ("253450", "스튜디오드래곤", "101", 42600, 900),
    ("036930", "주성엔지니어링", "101", 33750, 3600),
    ("067310", "하나마이크론", "101", 12480, 9000),
    ("078600", "대주전자재료", "101", 86300, 900),
    ("048410", "현대바이오", "101", 7630, 35000),
)

_TICKS = ((2000, 1), (5000, 5), (20000, 10), (50000, 50), (200000, 100), (500000, 500))


def tick_size(price: int) -> int:
    """KRX tick size (2023 unified table, KOSPI and KOSDAQ alike)."""
    for bound, tick in _TICKS:
        if price < bound:
            return tick
    return 1000


def limit_prices(prev_close: int) -> tuple[int, int]:
    """KRX's daily price band: ±30% of the previous close, rounded inward to the tick size."""
    high, low = int(prev_close * 1.3), int(prev_close * 0.7)
    high -= high % tick_size(high)
    low += -low % tick_size(low)
    return low, high


@dataclass(slots=True)
class SimStock:
    code: str
    name: str
    market: str
    prev_close: int
    base_rate: int
    price: int = 0
    #: Cumulative volume after each step; index 0 is the open.
    volumes: list[int] = field(default_factory=list)
    surge_left: int = 0
    surge_factor: float = 1.0
    prev_day_volume: int = 0
    #: Log price (ln(price / prev_close)) the walk reverts to, before news: the day's bias plus the mood.
    anchor: float = 0.0
    #: News from surges, added to the anchor and fading back to zero.
    news: float = 0.0
    #: The walk's state, ln(price / prev_close); the quoted price is this on the tick grid.
    level: float = 0.0
    #: The day's price band and its log bounds (fixed by prev_close; computed once, used every step).
    band: tuple[int, int] = (0, 0)
    log_band: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Quote:
    """One stock's opt10023 numbers at the current step (before Kiwoom's string formatting)."""

    code: str
    name: str
    price: int
    prev_close: int
    prev_volume: int
    volume: int
    #: The previous day's total volume and the listed shares (for the other rankings' numbers).
    prev_day_volume: int = 0
    listed_shares: int = 1

    @property
    def change(self) -> int:
        return self.price - self.prev_close

    @property
    def surge(self) -> int:
        return self.volume - self.prev_volume

    @property
    def surge_rate(self) -> float:
        return self.surge / self.prev_volume * 100 if self.prev_volume else 0.0


#: Mean reversion per step (minute): the gap to the anchor halves in about 30 minutes.
REVERSION = math.log(2) / 30
#: Per-step noise of the log price; the walk's spread around its anchor is VOLATILITY / sqrt(2 * REVERSION)
#: (about 0.7%), so minute-to-minute moves are a tick or two for most stocks.
VOLATILITY = 0.0015
#: News from a surge fades with a half-life of two hours.
NEWS_DECAY = 0.5 ** (1 / 120)
#: Spread of the market-wide mood and of each stock's own bias for the day.
MOOD_SD, BIAS_SD = 0.006, 0.01
#: Probability that a stock is a mover today (biased 5-15%), and that it is a limit-bound theme stock.
MOVER_PROBABILITY, THEME_PROBABILITY = 0.06, 0.008


class SimMarket:
    """Deterministic for a given seed and sequence of :meth:`advance` calls."""

    #: Steps of history kept (a trading day has 390 minutes).
    HISTORY = 400

    def __init__(self, seed: int | None = 0, surge_probability: float = 0.01) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.surge_probability = surge_probability
        self.step = 0
        self.stocks = [SimStock(code, name, mkt, close, rate) for code, name, mkt, close, rate in UNIVERSE]
        moods = {market: rng.gauss(0.0, MOOD_SD) for market in ("001", "101")}
        for stock in self.stocks:
            stock.price = stock.prev_close
            stock.volumes = [0]
            stock.prev_day_volume = int(stock.base_rate * 390 * rng.uniform(0.6, 1.4))
            stock.anchor = moods[stock.market] + self._day_bias(rng)
            stock.band = limit_prices(stock.prev_close)
            stock.log_band = (math.log(stock.band[0] / stock.prev_close), math.log(stock.band[1] / stock.prev_close))
        self.advance(30)  # start with half an hour of trading so every window has data

    @staticmethod
    def _day_bias(rng: random.Random) -> float:
        draw = rng.random()
        if draw < THEME_PROBABILITY:  # 상한가/하한가 territory: the band clamps it
            return rng.choice((1, 1, 1, -1)) * rng.uniform(0.26, 0.34)
        if draw < THEME_PROBABILITY + MOVER_PROBABILITY:
            return rng.choice((1, 1, -1)) * rng.uniform(0.05, 0.15)
        return rng.gauss(0.0, BIAS_SD)

    def advance(self, steps: int = 1) -> None:
        rng = self.rng
        for _ in range(steps):
            self.step += 1
            for s in self.stocks:
                if s.surge_left:
                    s.surge_left -= 1
                elif rng.random() < self.surge_probability:
                    s.surge_left = rng.randint(3, 15)
                    s.surge_factor = rng.uniform(4.0, 30.0)
                    # The news behind a surge moves the price, more often upward; it fades, so no ratchet.
                    s.news += rng.choice((1, 1, 1, -1, -1)) * abs(rng.gauss(0.0, 0.012))
                factor = s.surge_factor if s.surge_left else 1.0
                traded = int(s.base_rate * factor * rng.lognormvariate(0.0, 0.5))
                s.volumes.append(s.volumes[-1] + traded)
                if len(s.volumes) > self.HISTORY:
                    del s.volumes[0]
                s.news *= NEWS_DECAY
                # Surging stocks are jumpier (up to 3x the usual noise) while the surge lasts.
                noise = VOLATILITY * min(3.0, math.sqrt(factor))
                s.level += REVERSION * (s.anchor + s.news - s.level) + rng.gauss(0.0, noise)
                low, high = s.band
                # Keep the walk inside the band too, or a limit-bound stock would take hours to come off it.
                s.level = min(max(s.level, s.log_band[0]), s.log_band[1])
                target = s.prev_close * math.exp(s.level)
                tick = tick_size(int(target))  # the band of the new price, so crossing 50,000 lands on 100s
                s.price = max(low, min(high, max(tick, round(target / tick) * tick)))
    def quotes(self, market: str, minutes: int, versus_previous_day: bool) -> list[Quote]:
        """Every stock of ``market`` ("000" all) with opt10023's comparison volume.

        이전거래량 is the cumulative volume at the comparison point (``minutes`` ago, or the previous
        day's total), 현재거래량 the cumulative volume now; 급증량/급증률 follow from the two.
        """
        out = []
        for s in self.stocks:
            if market not in ("000", s.market):
                continue
            if versus_previous_day:
                prev = s.prev_day_volume
            else:
                back = min(max(1, minutes), len(s.volumes) - 1)
                prev = s.volumes[-1 - back]
            # Listed shares: a stock trades about 0.5% of them on an ordinary day (a plausible turnover).
            out.append(Quote(s.code, s.name, s.price, s.prev_close, prev, s.volumes[-1], s.prev_day_volume,
                             max(1, s.base_rate * 390 * 200)))
        return out
