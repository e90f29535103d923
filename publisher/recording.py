"""Record raw TR answers as JSON Lines, and read them back for the replay control.

One line per answer: the inputs sent (by parameter), every raw string (by row field), whose item names they came
under, and the request and receive times. The first line is a header saying where the data came from, so a
recording of the simulated control can never pass for real market data.

Version 1 (until the providers' names moved out of the TR spec) keyed inputs and rows by the OCX's names, REST
answers included (renamed): it is still read, through each TR's OCX spelling.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from kiwoom_cache import __version__
from kiwoom_cache.clock import now_ms
from kiwoom_cache.errors import KiwoomCacheError
from publisher.trs import Provider, RawResponse, tr_spec

FORMAT = "kiwoom-cache.tr-recording"
VERSION = 2
#: Every version :func:`read_recording` reads.
READABLE = (1, 2)


class RecordingError(KiwoomCacheError, ValueError):
    """A recording file that cannot be replayed; the message names the file and line."""


class Recorder:
    """Appends each :class:`RawResponse` to ``path`` and flushes, so a crash loses at most one line."""

    def __init__(self, path: str | Path, *, source: str, note: str | None = None) -> None:
        self.path = Path(path)
        self.count = 0
        if self.path.exists() and self.path.stat().st_size > 0:
            _check_appendable(self.path)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        if self.path.stat().st_size == 0:
            header = {"format": FORMAT, "version": VERSION, "source": source, "recorded_by": __version__,
                      "started_at_ms": now_ms(),
                      "note": note or ("simulated data from kiwoom-cache's simulated control, not real market data"
                                       if source == "sim" else f"recorded from source {source!r}")}
            self._write(header)

    def record(self, response: RawResponse) -> None:
        line = asdict(response)
        line["inputs"] = [list(pair) for pair in response.inputs]
        self._write(line)
        self.count += 1

    def _write(self, obj: dict[str, Any]) -> None:
        self._file.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_recording(path: str | Path) -> tuple[dict[str, Any], list[RawResponse]]:
    """(header, responses) from a recording; :class:`RecordingError` for anything malformed."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc}") from exc
    header: dict[str, Any] | None = None
    responses: list[RawResponse] = []
    for number, line in _numbered(lines):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise RecordingError(f"{path}:{number}: not JSON ({exc})") from exc
        if header is None:
            if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") not in READABLE:
                raise RecordingError(f"{path}:{number}: not a {FORMAT} header of version "
                                     f"{' or '.join(map(str, READABLE))}")
            header = obj
            continue
        try:
            responses.append(_response(obj, int(header["version"])))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordingError(f"{path}:{number}: bad TR record ({type(exc).__name__}: {exc})") from exc
    if header is None:
        raise RecordingError(f"{path}: empty recording")
    return header, responses


def _check_appendable(path: Path) -> None:
    """Lines of this version may only follow this version's header: an older file would read them the old way."""
    try:
        with path.open(encoding="utf-8") as file:
            header = json.loads(file.readline())
    except (OSError, ValueError) as exc:
        raise RecordingError(f"cannot append to {path}: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        version = header.get("version") if isinstance(header, dict) else None
        raise RecordingError(f"cannot append to {path}: not a {FORMAT} v{VERSION} recording (its header says "
                             f"version {version}); record into a new file")


def _response(obj: dict[str, Any], version: int) -> RawResponse:
    inputs = tuple((str(k), str(v)) for k, v in obj["inputs"])
    rows = tuple({str(k): str(v) for k, v in row.items()} for row in obj["rows"])
    if version == 1:  # by the OCX's names: back to parameters and fields
        ocx = tr_spec(str(obj["trcode"])).ocx
        inputs, rows, provider = ocx.params_of(inputs), tuple(ocx.fields_of(row) for row in rows), Provider.ocx
    else:
        provider = Provider(obj["provider"])
    return RawResponse(
        feed=str(obj["feed"]), trcode=str(obj["trcode"]), screen=str(obj["screen"]), inputs=inputs,
        prev_next=str(obj["prev_next"]), rows=rows, requested_at_ms=int(obj["requested_at_ms"]),
        received_at_ms=int(obj["received_at_ms"]), provider=provider,
    )


def _numbered(lines: list[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield number, line
