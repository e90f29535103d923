"""The source seam: one list of names, lazy imports (no Qt outside OCX sources), a loop-agnostic poller that
reacts to error families, proven with a source written here (like broadcaster's CustomBackend test)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Sequence

import pytest

from kiwoom_cache import contract
from kiwoom_cache.clock import now_ms
from kiwoom_cache.contract import Source
from publisher.aio_loop import AsyncioLoop
from publisher.arguments import build_parser
from publisher.kiwoom_errors import ConnectionClosedError, ErrorInfo, RateLimitError, RequestInputError
from publisher.limiter import RateLimiter, Window
from publisher.loop import Signal
from publisher.poller import Poller
from publisher.settings import FeedSettings, PublisherSettings
from publisher.sources import REGISTRY, create_source, spec_for
from publisher.trs import OPT10023, Provider, RawResponse, TrRequest

ROW = {"code": "005930", "name": "삼성전자", "price": "-152000", "sign": "5", "change": "-100", "change_rate": "-0.07",
       "prev_volume": "22532511", "volume": "31103523", "surge_volume": "+8571012", "surge_rate": "+38.04"}


def test_opt10023_names_are_kiwoom_spelling() -> None:
    assert [OPT10023.ocx.inputs[p] for p in OPT10023.params] == [
        "시장구분", "정렬구분", "시간구분", "거래량구분", "시간", "종목조건", "가격구분"]
    assert [OPT10023.ocx.outputs[o.field] for o in OPT10023.outputs] == [
        "종목코드", "종목명", "현재가", "전일대비기호", "전일대비", "등락률",
        "이전거래량", "현재거래량", "급증량", "급증률"]
    assert {o.field for o in OPT10023.outputs} | {"rank"} == set(
        contract.ROW_SCHEMAS[contract.RowSchemaName.volume_surge].field_names)


def test_one_list_of_source_names() -> None:
    names = [s.value for s in Source]
    assert list(contract.SOURCES) == names
    assert set(REGISTRY) == set(Source), "every name has a factory, every factory a name"
    choices = next(a.choices for a in build_parser()._actions if a.dest == "source")
    assert list(choices or ()) == names
    for name in names:
        assert PublisherSettings(source=name).source == name
    with pytest.raises(ValueError, match="source"):
        PublisherSettings(source="ocx")
    with pytest.raises(ValueError, match="unknown source 'ocx'; expected one of"):
        spec_for("ocx")


def test_core_imports_no_qt() -> None:
    """The poller, the publisher, the registry and the asyncio loop import without PyQt5 installed."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "PyQt5" or name.startswith("PyQt5."):
                    raise ImportError("PyQt5 is blocked in this test")
        sys.meta_path.insert(0, Block())
        import publisher.aio_loop, publisher.app, publisher.poller, publisher.sources, publisher.settings, publisher.cli
        assert not [m for m in sys.modules if m.startswith("PyQt5")]
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


class ScriptedSource:
    """A source written against the protocol only: answers or fails each request as the test scripts it."""

    def __init__(self, script: Sequence[object]) -> None:
        self.loggedIn, self.responseReceived = Signal(), Signal()
        self.requestFailed, self.messageReceived = Signal(), Signal()
        self.account_mode, self.exhausted = "sim", False
        self.script = list(script)
        self.sent: list[TrRequest] = []

    def login(self) -> None:
        self.loggedIn.emit(None)

    def is_connected(self) -> bool:
        return True

    def request(self, req: TrRequest, limiter: RateLimiter) -> None:
        self.sent.append(req)
        step = self.script.pop(0) if self.script else "answer"
        if isinstance(step, Exception):
            raise step
        loop = asyncio.get_running_loop()
        if step == "fail-later":
            loop.call_soon(self.requestFailed.emit, req.feed, RateLimitError(1700, "ka10023", _REST_1700))
            return
        raw = RawResponse(feed=req.feed, trcode=req.trcode, screen="", inputs=req.inputs, prev_next="",
                          rows=(ROW,), requested_at_ms=now_ms(), received_at_ms=now_ms(), provider=Provider.rest)
        loop.call_soon(self.responseReceived.emit, raw)

    def forget(self, feed: str) -> None:
        pass

    def pending_feeds(self) -> Sequence[str]:
        return []

    def close(self) -> None:
        pass


_REST_1700 = ErrorInfo(1700, "SOME_REST_RATE_LIMIT", "허용된 요청 개수 초과", "too many requests")


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_poller_reacts_to_error_families_not_codes() -> None:
    source = ScriptedSource([RateLimitError(-200), "fail-later", RequestInputError(-202), "answer",
                             ConnectionClosedError(-106)])
    penalties: list[float] = []
    limiter = RateLimiter([Window(100, 1.0)])
    limiter.penalize = penalties.append  # type: ignore[method-assign]
    feed = FeedSettings(feed="kospi-surge", market="001", interval_s=0.1)
    poller = Poller(source, [feed], limiter, loop=AsyncioLoop(asyncio.get_running_loop()), source_name="sim",
                    refusal_backoff_s=0.0)
    got, failed, lost = [], [], []
    poller.rankingReady.connect(got.append)
    poller.requestFailed.connect(lambda *a: failed.append(a))
    poller.connectionLost.connect(lambda: lost.append(True))
    poller.start()
    await wait_for(lambda: bool(lost))
    poller.stop()
    state = poller.feeds["kospi-surge"]
    assert [f[1] for f in failed] == [-200, 1700, -202, -106]
    assert state.refusals == 2 and penalties == [0.0, 0.0], "an OCX -200 and a REST 1700 are the same event"
    assert state.errors == 2 and state.rankings >= 1
    assert got[0].rows[0].code == "005930" and got[0].source == "sim"


def test_unknown_factory_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        create_source("nope", None)  # type: ignore[arg-type]
