"""``kiwoom-publisher`` / ``python -m publisher``: run the publisher against a source.

Examples::

    kiwoom-publisher --source sim --redis-url redis://127.0.0.1:6379/0
    kiwoom-publisher --source sim --config feeds.toml --duration 60
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from publisher.settings import PublisherSettings, load_settings

log = logging.getLogger("publisher")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiwoom-publisher", description=__doc__.split("\n")[0])
    p.add_argument("--source", choices=("sim", "kiwoom", "replay"), help="where rankings come from (default sim)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (feeds, limits, Redis URL)")
    p.add_argument("--redis-url", help="Redis URL (default redis://127.0.0.1:6379/0 or $KIWOOM_CACHE_REDIS_URL)")
    p.add_argument("--seed", type=int, help="simulated market seed")
    p.add_argument("--duration", type=float, metavar="S", help="stop cleanly after S seconds (demos, tests)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, source=args.source, redis_url=args.redis_url, sim_seed=args.seed,
                                 log_level=args.log_level)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"kiwoom-publisher: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(settings, duration_s=args.duration)


def run(settings: PublisherSettings, *, duration_s: float | None = None) -> int:
    # Headless on Linux: no display needed for the simulated or replayed control.
    if settings.source != "kiwoom":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtCore import QCoreApplication, QTimer  # noqa: PLC0415 - Qt starts only when we run

    from publisher.app import Publisher  # noqa: PLC0415
    from publisher.controls.simulated import SimulatedControl  # noqa: PLC0415

    if settings.source != "sim":
        print(f"kiwoom-publisher: --source {settings.source} is not available in this build yet", file=sys.stderr)
        return 2
    app = QCoreApplication.instance() or QCoreApplication(sys.argv[:1])
    control = SimulatedControl(settings.sim_seed, step_s=settings.sim_step_s)
    publisher = Publisher(settings, control)
    log.info("publishing %s to %s", ", ".join(f.feed for f in settings.feeds), settings.masked_url())

    def shutdown(*_: object) -> None:
        app.quit()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    # Python runs signal handlers only between bytecodes; a idle Qt loop never yields to it without this.
    pulse = QTimer()
    pulse.start(200)
    pulse.timeout.connect(lambda: None)
    if duration_s is not None:
        QTimer.singleShot(int(duration_s * 1000), app.quit)
    publisher.start()
    app.exec_()
    publisher.stop()
    stats = publisher.writer.stats()
    return 0 if stats.pending == 0 else 1
