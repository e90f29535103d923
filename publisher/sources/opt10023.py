"""opt10023 (거래량급증요청, volume-surge ranking): the one TR the publisher polls, its exact Kiwoom names.

The OCX spells inputs and outputs with these Korean names; the REST API's ka10023 asks the same question
with the same ten answer fields under English keys (its source maps them onto these names once, see
:mod:`publisher.sources.rest`). The Redis contract never needs any of this: a document carries ``tr`` and
English ``params``/row fields only.

Paging: one request answers one page. KOA Studio's dump gives opt10023 up to 200 rows per answer, more
than any volume-surge ranking we publish is long, so OCX sources publish the first page and ignore
``sPrevNext = "2"`` (logged once). The REST source follows ``cont-yn``/``next-key`` and merges the pages,
each through the shared limiter.
"""

from __future__ import annotations

from typing import Final

OPT10023: Final = "opt10023"
OPT10023_RQNAME: Final = "거래량급증요청"
#: Record name passed to GetRepeatCnt/GetCommData.
OPT10023_RECORD: Final = "거래량급증"
#: Rows per opt10023 answer (KOA Studio: ``max_repeat_count`` 200).
OPT10023_PAGE_ROWS: Final = 200
#: (Kiwoom input name, parameter name in our documents), in the order SetInputValue must follow.
OPT10023_INPUTS: Final[tuple[tuple[str, str], ...]] = (
    ("시장구분", "market"),
    ("정렬구분", "sort"),
    ("시간구분", "time_unit"),
    ("거래량구분", "min_volume"),
    ("시간", "minutes"),
    ("종목조건", "stock_filter"),
    ("가격구분", "price_filter"),
)
#: Allowed values of the enumerated inputs (KOA Studio's OCX list).
OPT10023_CHOICES: Final[dict[str, dict[str, str]]] = {
    "market": {"000": "전체", "001": "코스피", "101": "코스닥"},
    "sort": {"1": "급증량", "2": "급증률"},
    "time_unit": {"1": "분", "2": "전일"},
    "min_volume": {
        "5": "5천주이상", "10": "만주이상", "50": "5만주이상", "100": "10만주이상",
        "200": "20만주이상", "300": "30만주이상", "500": "50만주이상", "1000": "백만주이상",
    },
    "stock_filter": {
        "0": "전체조회", "1": "관리종목제외", "5": "증100제외", "6": "증100만보기",
        "7": "증40만보기", "8": "증30만보기", "9": "증20만보기",
    },
    "price_filter": {
        "0": "전체조회", "2": "5만원이상", "5": "1만원이상", "6": "5천원이상", "8": "1천원이상", "9": "10만원이상",
    },
}
#: (Kiwoom output item name, row field name), the multi-data record of opt10023.
OPT10023_OUTPUTS: Final[tuple[tuple[str, str], ...]] = (
    ("종목코드", "code"),
    ("종목명", "name"),
    ("현재가", "price"),
    ("전일대비기호", "sign"),
    ("전일대비", "change"),
    ("등락률", "change_rate"),
    ("이전거래량", "prev_volume"),
    ("현재거래량", "volume"),
    ("급증량", "surge_volume"),
    ("급증률", "surge_rate"),
)
#: 전일대비기호 (FID 25): 1 상한, 2 상승, 3 보합, 4 하한, 5 하락.
SIGN_NAMES: Final[dict[int, str]] = {1: "limit_up", 2: "up", 3: "flat", 4: "limit_down", 5: "down"}
