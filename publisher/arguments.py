"""``kiwoom-publisher`` / ``python -m publisher``: run the publisher against a source.

Examples::

    kiwoom-publisher --source kiwoom                         # Windows, 32-bit Python, operator window
    kiwoom-publisher --source sim --headless --redis-url redis://127.0.0.1:6379/0
    kiwoom-publisher --source sim --record day.jsonl --duration 600
    kiwoom-publisher --source replay day.jsonl --speed 5
    kiwoom-publisher --source rest      # Kiwoom's REST API; keys in $KIWOOM_PUBLISHER_REST_APPKEY/_SECRETKEY
    kiwoom-publisher doctor --source kiwoom                  # check this PC before the first run
    kiwoom-publisher supervise -- --source kiwoom            # restart after Kiwoom's version update or a crash

Exit status: 0 stopped as asked, 1 rankings left unsent, 2 bad configuration (do not restart: fix it),
75 restart me (Kiwoom's version update, logins refused in a row).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kiwoom_cache.contract import Source

# The command's arguments live apart from what runs it (publisher.cli), so the supervisor can check a child's
# arguments without importing the CLI that starts it.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiwoom-publisher", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("recording", nargs="?", metavar="FILE", help="recording to replay (with --source replay)")
    p.add_argument("--source", choices=[s.value for s in Source], help="where rankings come from (default sim)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (feeds, limits, Redis URL)")
    p.add_argument("--redis-url", help="Redis URL (default redis://127.0.0.1:6379/0 or $KIWOOM_CACHE_REDIS_URL)")
    p.add_argument("--record", metavar="FILE", help="append every raw TR answer to FILE (JSON Lines)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor (default 1)")
    p.add_argument("--once", action="store_true", help="replay the recording once instead of looping")
    p.add_argument("--headless", action="store_true", help="no operator window (default when no display)")
    p.add_argument("--seed", type=int, help="simulated market seed")
    p.add_argument("--duration", type=float, metavar="S", help="stop cleanly after S seconds (demos, tests)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    return p


def check_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The publisher's arguments, checked; argparse's SystemExit(2) with the reason on stderr when they are bad."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.source == "replay" and not args.recording:
        parser.error("--source replay needs a recording FILE")
    if args.recording and args.source != "replay":
        parser.error("a FILE argument is only used with --source replay")
    if args.speed <= 0:
        parser.error("--speed must be positive")
    return args
