"""``kiwoom-publisher`` / ``python -m publisher``: run the publisher against a source (the arguments, with
examples and exit statuses: :mod:`publisher.arguments`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from pydantic import ValidationError

from kiwoom_cache.contract import PublisherRole, Source
from kiwoom_cache.errors import KiwoomCacheError
from publisher.arguments import check_arguments
from publisher.event_loops import make_asyncio_loop, make_qt_loop
from publisher.exit_codes import ExitCode
from publisher.settings import PublisherSettings, load_settings

log = logging.getLogger("publisher")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["supervise"]:
        from publisher.supervisor import main as supervise  # noqa: PLC0415

        return supervise(argv[1:])
    if argv[:1] == ["doctor"]:
        from publisher.doctor import main as doctor  # noqa: PLC0415

        return doctor(argv[1:])
    args = check_arguments(argv)
    overrides: dict[str, Any] = {"source": args.source, "redis_url": args.redis_url, "sim_seed": args.seed,
                                 "log_level": args.log_level}
    try:
        responses = None
        if args.source == "replay":
            from publisher.recording import read_recording  # noqa: PLC0415

            header, responses = read_recording(args.recording)
            overrides.update(_replay_overrides(responses, args.speed, args.config))
        settings = load_settings(args.config, **overrides)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"kiwoom-publisher: invalid configuration:\n{exc}", file=sys.stderr)
        return int(ExitCode.CONFIG)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per REST call is noise
    if responses is not None:
        log.info("replaying %d TR answers from %s (%s) at %gx", len(responses), args.recording,
                 header.get("note", header.get("source")), args.speed)
    try:
        return run(settings, duration_s=args.duration, record=args.record, headless=args.headless,
                   replay=responses, loop=not args.once)
    except KiwoomCacheError as exc:
        print(f"kiwoom-publisher: {exc}", file=sys.stderr)
        return int(ExitCode.CONFIG)


def _replay_overrides(responses: Sequence[Any], speed: float, config: str | None) -> dict[str, Any]:
    """Feeds from the recording (unless a config names them) and Kiwoom's limits compressed by ``speed``."""
    from publisher.controls.replay import feeds_from_recording  # noqa: PLC0415
    from publisher.limiter import KIWOOM_TR_LIMITS  # noqa: PLC0415

    out: dict[str, Any] = {"tr_limits": [(n, s / speed) for n, s in KIWOOM_TR_LIMITS]}
    if config is None:
        out["feeds"] = feeds_from_recording(responses, speed)
    return out


def _has_display() -> bool:
    return sys.platform == "win32" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(settings: PublisherSettings, *, duration_s: float | None = None, record: str | None = None,
        headless: bool = False, replay: Sequence[Any] | None = None, loop: bool = True) -> int:
    from publisher.sources import create_source, spec_for  # noqa: PLC0415
    from publisher.sources.base import SourceContext  # noqa: PLC0415

    spec = spec_for(settings.source)
    if not spec.qt and not headless:
        log.info("--source %s runs without Qt: no operator window (headless)", settings.source)
        headless = True
    if headless and settings.source == Source.kiwoom:
        log.warning("--headless with --source kiwoom: no operator window, but Qt keeps its native platform "
                    "(the OpenAPI+ ActiveX control needs a real window; 'offscreen' would break it)")
    if not headless and not _has_display():
        log.info("no display: running headless (the operator window needs a desktop)")
        headless = True
    event_loop = make_qt_loop(settings, headless=headless) if spec.qt else make_asyncio_loop()
    from publisher.app import Publisher  # noqa: PLC0415
    from publisher.writer_records import WriterState  # noqa: PLC0415

    limiter = settings.limiter()  # shared: the poller's requests and the source's own calls (REST tokens)
    source = create_source(settings.source, SourceContext(settings, event_loop, replay or (), loop, limiter))
    publisher = Publisher(settings, source, event_loop, limiter=limiter)
    publisher.exitRequested.connect(lambda _code: event_loop.quit())
    recorder = None
    if record:
        from publisher.recording import Recorder  # noqa: PLC0415

        recorder = Recorder(record, source=settings.source)
        source.responseReceived.connect(recorder.record)
        log.info("recording raw TR answers to %s", record)
    log.info("publishing %s to %s", ", ".join(f.feed for f in settings.feeds), settings.masked_url())
    if duration_s is not None:
        event_loop.timer(event_loop.quit, interval_s=duration_s).start()
    gave_up: list[str] = []
    if settings.source == Source.replay and not loop:
        from publisher.sources.ocx import feed_of  # noqa: PLC0415

        # Ask for a feed no more once its recorded answers are used up (else: -202 from an ended recording).
        cast(Any, source).control.answersExhausted.connect(
            lambda rqname: publisher.poller.retire(feed) if (feed := feed_of(rqname)) else None)

        def quit_when_replayed() -> None:
            if source.exhausted:
                event_loop.quit()
            elif publisher.role is PublisherRole.standby and publisher.writer.state is WriterState.disconnected:
                # Without Redis no publisher can take the feeds' leases, so a one-shot job would wait for ever.
                gave_up.append(f"Redis unreachable ({publisher.writer.stats().last_error}): a one-shot replay "
                               "cannot take the feeds' leases; nothing was replayed")
                log.error("%s", gave_up[-1])
                event_loop.quit()

        event_loop.timer(quit_when_replayed, interval_s=0.2, repeat=True).start()
    window = None
    if not headless:
        from publisher.window import OperatorWindow  # noqa: PLC0415

        window = OperatorWindow(publisher)
        window.show()
    publisher.start()
    try:
        event_loop.run()
    finally:
        publisher.stop()  # a no-op when closing the window already stopped it; releases the leases
        close = getattr(event_loop, "close", None)
        if close is not None:
            close()
    if recorder is not None:
        recorder.close()
        log.info("recorded %d TR answers to %s", recorder.count, record)
    if publisher.exit_code is not None:
        return int(publisher.exit_code)
    return int(ExitCode.OK if publisher.writer.stats().pending == 0 and not gave_up else ExitCode.UNSENT)
