"""``kiwoom-publisher doctor``: what a Windows user runs first. One line per check, ✔ or ✘ with the fix.

Checks, in order: Python (32-bit for the OCX), PyQt5 and QAxContainer, the control's registration, the Korean
locale, the configuration and its feeds, Redis with the configured user, the clock against Redis' TIME, the
commands the publisher needs, the login and one TR request with its parsed rows (REST: the token and one call).
Checks that only mean something on Windows with ``--source kiwoom`` say so and are skipped elsewhere; the exit
status is 1 when any check fails.

The checks live in :mod:`publisher.doctor_checks` (the machine, the configuration, Redis) and
:mod:`publisher.doctor_source` (the login and one request); this module runs them and prints the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

from pydantic import ValidationError

from kiwoom_cache.contract import Source
from publisher.doctor_checks import (
    MARKS,
    PLAIN,
    Check,
    Outcome,
    check_clock,
    check_config,
    check_locale,
    check_permissions,
    check_python,
    check_qt,
    check_redis,
    check_registration,
    skipped,
)
from publisher.doctor_source import check_source
from publisher.settings import PublisherSettings, load_settings


def run_checks(source: Source, load: Callable[[], PublisherSettings], *, timeout_s: float = 30.0) -> Iterator[Check]:
    yield check_python(source)
    yield check_qt(source)
    yield check_registration(source)
    yield check_locale(source)
    config, settings = check_config(load)
    yield config
    if settings is None:
        yield skipped("Redis", "no valid configuration")
        return
    redis_check, client = check_redis(settings)
    yield redis_check
    if client is None:
        yield skipped("clock", "no Redis")
        yield skipped("Redis permissions", "no Redis")
    else:
        with client:
            yield check_clock(client)
            yield check_permissions(client)
    yield from check_source(settings, timeout_s)


def _marks_for(stream: TextIO) -> dict[Outcome, str]:
    """✔/✘ where the console can show them; OK/FAIL where it cannot (a cp949 file, an old console)."""
    try:
        "".join(MARKS.values()).encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return PLAIN
    return MARKS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiwoom-publisher doctor",
                                description="Check this machine, the configuration, Redis and Kiwoom before a run.")
    p.add_argument("--source", choices=[s.value for s in Source], help="the source to check (default: the config's)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (feeds, limits, Redis URL)")
    p.add_argument("--redis-url", help="Redis URL (default redis://127.0.0.1:6379/0 or $KIWOOM_CACHE_REDIS_URL)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="how long the login and the request may take (default 30s; --source kiwoom: 180s, the time "
                        "to type the password into Kiwoom's login window)")
    return p


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.timeout is not None and args.timeout <= 0:
        parser.error("--timeout must be positive")
    overrides = {"source": args.source, "redis_url": args.redis_url}

    def load() -> PublisherSettings:
        return load_settings(args.config, **overrides)

    try:
        source = Source(args.source) if args.source else Source(load().source)
    except (ValidationError, FileNotFoundError, ValueError):
        source = Source.sim  # the configuration check says what is wrong
    marks = _marks_for(out)
    failures = 0
    timeout = args.timeout or (180.0 if source is Source.kiwoom else 30.0)
    for check in run_checks(source, load, timeout_s=timeout):
        failures += check.outcome is Outcome.failed
        print(check.line(marks), file=out, flush=True)
    print(f"{failures} check(s) failed" if failures else "all checks passed", file=out)
    return 1 if failures else 0
