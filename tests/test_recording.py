"""Record raw TR answers, replay them through the same parser and writer, and refuse bad recordings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from kiwoom_cache.contract import Ranking
from publisher.controls import ocx
from publisher.controls.replay import ReplayControl, feeds_from_recording
from publisher.controls.simulated import SimulatedControl
from publisher.parser import ranking_from_response
from publisher.recording import Recorder, RecordingError, read_recording
from publisher.settings import FeedSettings, load_settings
from publisher.trs import OPT10023, Provider, RawResponse
from tests.publishers import ocx_publisher

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "publisher" / "recordings" / "sim-sample.jsonl"
FEEDS = [FeedSettings(feed="kospi-surge", market="001", interval_s=0.2),
         FeedSettings(feed="all-rate", market="000", sort="2", interval_s=0.2)]


def fast(redis_url: str, **over: object):
    return load_settings(redis_url=redis_url, tr_limits=[(50, 1.0)], heartbeat_s=0.5, status_ttl_s=2.0, **over)


@pytest.mark.integration
def test_record_then_replay_gives_identical_rows(qtbot, tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "day.jsonl"
    sim = SimulatedControl(seed=4, latency_ms=2, limits=((50, 1.0),))
    live = ocx_publisher(fast(redis_url, feeds=FEEDS), sim)
    sim.faults.malformed_rate = 0.05  # dropped rows must replay identically too
    recorder = Recorder(path, source="sim")
    live.source.responseReceived.connect(recorder.record)
    recorded: list[Ranking] = []
    live.poller.rankingReady.connect(recorded.append)
    live.start()
    qtbot.waitUntil(lambda: len(recorded) >= 8, timeout=10000)
    live.stop()
    recorder.close()

    header, responses = read_recording(path)
    assert header["source"] == "sim" and "not real market data" in header["note"]
    assert len(responses) == recorder.count >= len(recorded)
    control = ReplayControl(responses, loop=False, latency_ms=1)
    settings = fast(redis_url, source="replay", feeds=feeds_from_recording(responses, speed=10))
    replay = ocx_publisher(settings, control)
    replayed: list[Ranking] = []
    replay.poller.rankingReady.connect(replayed.append)
    replay.start()
    qtbot.waitUntil(lambda: len(replayed) >= len(responses), timeout=15000)
    replay.stop()
    for feed in ("kospi-surge", "all-rate"):
        want = [(r.rows, r.dropped, dict(r.params)) for r in recorded if r.feed == feed]
        got = [(r.rows, r.dropped, dict(r.params)) for r in replayed if r.feed == feed][: len(want)]
        assert got == want
    assert all(r.source == "replay" for r in replayed)
    assert any(r.dropped for r in replayed)


def test_feeds_from_recording_scale_with_speed() -> None:
    _, responses = read_recording(SHIPPED)
    feeds = {f.feed: f for f in feeds_from_recording(responses, speed=5)}
    assert set(feeds) == {"kospi-surge", "kosdaq-surge"}
    assert feeds["kosdaq-surge"].params["market"] == "101" and feeds["kosdaq-surge"].tr == "opt10023"
    assert feeds["kospi-surge"].interval_s == pytest.approx(1.0, rel=0.2)  # recorded every ~5 s
    with pytest.raises(ValueError, match="speed must be positive"):
        feeds_from_recording(responses, speed=0)


def test_shipped_recording_is_labelled_simulated() -> None:
    header, responses = read_recording(SHIPPED)
    assert header["source"] == "sim" and "not real market data" in header["note"]
    assert len(responses) >= 20 and all(r.rows for r in responses)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty recording"),
        ("not json\n", ":1: not JSON"),
        ('{"format":"other"}\n', ":1: not a kiwoom-cache.tr-recording header of version 1 or 2"),
        ('{"format":"kiwoom-cache.tr-recording","version":3}\n', ":1: not a kiwoom-cache.tr-recording header"),
        ('{"format":"kiwoom-cache.tr-recording","version":1}\n{"feed":"x","trcode":"opt10001","inputs":[],'
         '"rows":[]}\n', ":2: bad TR record (ValueError: unknown TR 'opt10001'"),
        ('{"format":"kiwoom-cache.tr-recording","version":2}\n{"feed":"x","trcode":"opt10023","screen":"",'
         '"inputs":[],"prev_next":"0","rows":[],"requested_at_ms":1,"received_at_ms":2,"provider":"fax"}\n',
         ":2: bad TR record (ValueError: 'fax' is not a valid Provider"),
        ('{"format":"kiwoom-cache.tr-recording","version":1}\n{"feed":"x"}\n', ":2: bad TR record (KeyError"),
    ],
)
def test_bad_recordings_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RecordingError, match=message.replace("(", r"\(")):
        read_recording(path)


def test_version_1_recordings_are_read_by_parameter_and_field() -> None:
    """The shipped recording is version 1 (inputs and rows under the OCX's names): it reads as today's records."""
    header, responses = read_recording(SHIPPED)
    assert header["version"] == 1
    fields = {o.field for o in OPT10023.outputs}
    for response in responses:
        assert response.provider is Provider.ocx and response.trcode == "opt10023"
        assert [k for k, _ in response.inputs] == list(OPT10023.params)
        assert all(set(row) == fields for row in response.rows)
    first = responses[0].rows[0]
    line = json.loads(SHIPPED.read_text(encoding="utf-8").splitlines()[1])
    assert first["price"] == line["rows"][0]["현재가"] and first["code"] == line["rows"][0]["종목코드"]


def test_each_provider_is_recorded_and_replayed_through_the_ocx_spelling(qtbot, tmp_path: Path) -> None:
    """A REST answer is recorded by field with its provider and replays through the replay control under the OCX's
    item names; the provider comes back so a refused value is still named by its REST key."""
    rows = ({"code": "005930", "name": "삼성전자", "price": "-152000", "sign": "5", "change": "-100",
             "change_rate": "-0.07", "prev_volume": "1", "volume": "12a4", "surge_volume": "+1", "surge_rate": "+1"},)
    answer = RawResponse(feed="rest-feed", trcode="opt10023", screen="", inputs=FEEDS[0].inputs(), prev_next="0",
                         rows=rows, requested_at_ms=1, received_at_ms=2, provider=Provider.rest)
    recorder = Recorder(tmp_path / "rest.jsonl", source="rest")
    recorder.record(answer)
    recorder.close()
    header, [back] = read_recording(tmp_path / "rest.jsonl")
    assert header["version"] == 2 and back == answer
    dropped = ranking_from_response(back, source="rest").dropped
    assert [(d.field, d.value) for d in dropped] == [("now_trde_qty", "12a4")]
    control = ReplayControl([back], latency_ms=1)
    with qtbot.waitSignal(control.OnEventConnect, timeout=1000):
        control.dynamicCall(ocx.COMM_CONNECT)
    for param, value in FEEDS[0].inputs():
        control.dynamicCall(ocx.SET_INPUT_VALUE, OPT10023.ocx.inputs[param], value)
    seen: list[str] = []
    control.OnReceiveTrData.connect(lambda *_: seen.append(
        control.dynamicCall(ocx.GET_COMM_DATA, "opt10023", OPT10023.ocx.record, 0, "현재거래량")))
    with qtbot.waitSignal(control.OnReceiveTrData, timeout=1000):
        assert control.dynamicCall(ocx.COMM_RQ_DATA, "rq", "opt10023", 0, "2000") == 0
    assert seen == ["12a4"]


def test_recording_never_appends_to_an_older_version(tmp_path: Path) -> None:
    """Version 2 lines after a version 1 header would be read the version 1 way (by the OCX's names): refused."""
    old = tmp_path / "old.jsonl"
    old.write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(RecordingError, match=r"not a kiwoom-cache\.tr-recording v2 recording .*version 1"):
        Recorder(old, source="sim")
    assert old.read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8"), "nothing written"
    current = tmp_path / "current.jsonl"
    Recorder(current, source="sim").close()
    again = Recorder(current, source="sim")  # the same version: appended to
    again.close()
    assert len(current.read_text(encoding="utf-8").splitlines()) == 1


def test_replay_refuses_unrecorded_inputs(qtbot) -> None:
    _, responses = read_recording(SHIPPED)
    control = ReplayControl(responses)
    with qtbot.waitSignal(control.OnEventConnect, timeout=1000):
        control.dynamicCall(ocx.COMM_CONNECT)
    control.dynamicCall(ocx.SET_INPUT_VALUE, "시장구분", "000")
    with qtbot.waitSignal(control.OnReceiveMsg, timeout=1000) as msg:
        assert control.dynamicCall(ocx.COMM_RQ_DATA, "rq", "opt10023", 0, "2000") == -202
    assert "no recorded answer" in msg.args[3]


@pytest.mark.integration
def test_cli_replays_the_shipped_recording_once(redis_url: str, redis_client: redis.Redis) -> None:
    proc = subprocess.run([sys.executable, "-m", "publisher", "--source", "replay", str(SHIPPED), "--speed", "20",
                           "--once", "--headless", "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    _, responses = read_recording(SHIPPED)
    # Each recorded answer is written or, when the writer lagged behind the 20x replay (a loaded machine), counted
    # as superseded by its feed's next one (the writer conflates by design); none is lost.
    stopped = re.search(r"publisher stopped: (\d+) written, (\d+) superseded, 0 unsent", proc.stderr)
    assert stopped is not None, proc.stderr
    written, superseded = map(int, stopped.groups())
    assert written + superseded == len(responses)
    assert sum(redis_client.xlen(c.history_key(f)) for f in ("kospi-surge", "kosdaq-surge")) == written
    doc = json.loads(redis_client.get(c.latest_key("kospi-surge")))
    assert doc["source"] == "replay"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "replay"], "needs a recording FILE"),
        (["--source", "sim", "x.jsonl"], "only used with --source replay"),
        (["--source", "replay", "/nonexistent.jsonl"], "cannot read recording"),
        (["--source", "kiwoom", "--headless"], "needs Windows"),
    ],
)
def test_cli_errors_are_clear(argv: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "publisher", *argv, "--redis-url", "redis://127.0.0.1:1/0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and message in proc.stderr
