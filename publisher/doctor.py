"""``kiwoom-publisher doctor``: what a Windows user runs first. One line per check, ✔ or ✘ with the fix.

Checks, in order: Python (32-bit for the OCX), PyQt5 and QAxContainer, the control's registration, the Korean
locale, the configuration and its feeds, Redis with the configured user, the clock against Redis' TIME, the
commands the publisher needs, the login and one TR request with its parsed rows (REST: the token and one call).
Checks that only mean something on Windows with ``--source kiwoom`` say so and are skipped elsewhere; the exit
status is 1 when any check fails.

The Redis permission probes change nothing: they name keys and a channel no publisher or replica uses (an
invalid feed slug, ``doctor:probe``) and use conditional forms (``SET XX``, ``XADD NOMKSTREAM``) or delete what
they create.
"""

from __future__ import annotations

import argparse
import platform
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import redis
from pydantic import ValidationError

from kiwoom_cache import contract
from kiwoom_cache.contract import Source
from kiwoom_cache.errors import KiwoomCacheError
from publisher.kiwoom_errors import LoginRefusedError, VersionUpdateError
from publisher.settings import PublisherSettings, load_settings

#: Larger clock offsets than this fail the clock check: publish times, freshness and lease expiry are compared
#: across machines.
MAX_CLOCK_OFFSET_S = 1.0
#: The probes' name: not a valid feed slug, so replicas ignore the channel and no feed uses the keys.
PROBE = "doctor:probe"


class Outcome(StrEnum):
    ok = "ok"
    failed = "failed"
    skipped = "skipped"


_MARKS = {Outcome.ok: "✔", Outcome.failed: "✘", Outcome.skipped: "–"}
_PLAIN = {Outcome.ok: "OK  ", Outcome.failed: "FAIL", Outcome.skipped: "SKIP"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def line(self, marks: dict[Outcome, str] = _MARKS) -> str:
        fix = f" → fix: {self.fix}" if self.fix and self.outcome is Outcome.failed else ""
        return f"{marks[self.outcome]} {self.name}: {self.detail}{fix}"


def ok(name: str, detail: str) -> Check:
    return Check(name, Outcome.ok, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Outcome.failed, detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, Outcome.skipped, detail)


WINDOWS_ONLY = "only on Windows with --source kiwoom"


def _wants_ocx(source: Source) -> bool:
    return source is Source.kiwoom


# --- the machine --------------------------------------------------------------------------------------------


def check_python(source: Source) -> Check:
    bits = struct.calcsize("P") * 8
    detail = f"Python {platform.python_version()} {bits}-bit on {platform.system() or sys.platform}"
    if _wants_ocx(source) and bits != 32:
        return failed("Python", detail + "; Kiwoom's OpenAPI+ control is 32-bit only",
                      "install 32-bit Python 3.11 (\"Windows installer (32-bit)\" on python.org) and the publisher "
                      "in it")
    return ok("Python", detail)


def check_qt(source: Source) -> Check:
    if source is Source.rest:
        return skipped("PyQt5", "not needed by --source rest")
    try:
        from PyQt5.QtCore import PYQT_VERSION_STR  # noqa: PLC0415
    except ImportError as exc:
        return failed("PyQt5", f"cannot import PyQt5 ({exc})", "pip install 'kiwoom-cache[publisher]'")
    if not _wants_ocx(source):
        return ok("PyQt5", f"PyQt5 {PYQT_VERSION_STR} (QAxContainer: {WINDOWS_ONLY})")
    if sys.platform != "win32":
        return failed("PyQt5", f"PyQt5 {PYQT_VERSION_STR}; QAxContainer (ActiveX): only on Windows",
                      "run --source kiwoom on Windows; here use --source rest, sim or replay")
    try:
        import PyQt5.QAxContainer  # noqa: F401, PLC0415
    except ImportError as exc:
        return failed("PyQt5", f"PyQt5 {PYQT_VERSION_STR}, QAxContainer missing ({exc})",
                      "reinstall PyQt5 in the 32-bit Python (pip install --force-reinstall PyQt5)")
    return ok("PyQt5", f"PyQt5 {PYQT_VERSION_STR} with QAxContainer")


def check_registration(source: Source) -> Check:
    from publisher.controls.ocx import PROG_ID  # noqa: PLC0415

    name = "OpenAPI+ control"
    if not _wants_ocx(source):
        return skipped(name, WINDOWS_ONLY)
    if sys.platform != "win32":
        return failed(name, f"only on Windows: {PROG_ID} is an ActiveX control in the Windows registry",
                      "run --source kiwoom on Windows")
    import winreg  # noqa: PLC0415

    try:
        with winreg.OpenKey(winreg.HKEY_CLASSES_ROOT, rf"{PROG_ID}\CLSID") as key:
            clsid = str(winreg.QueryValue(key, None))
        with winreg.OpenKey(winreg.HKEY_CLASSES_ROOT, rf"CLSID\{clsid}\InprocServer32") as key:
            server = str(winreg.QueryValue(key, None))
    except OSError as exc:
        return failed(name, f"{PROG_ID} is not registered ({exc})",
                      "install Kiwoom OpenAPI+ (OpenAPISetup.exe from Kiwoom's OpenAPI page), or register it again: "
                      r"regsvr32 C:\OpenAPI\khopenapi.ocx in an administrator prompt")
    if not Path(server).is_file():
        return failed(name, f"{PROG_ID} {clsid} points at {server}, which is missing",
                      "reinstall Kiwoom OpenAPI+")
    return ok(name, f"{PROG_ID} {clsid} -> {server}")


def check_locale(source: Source) -> Check:
    name = "Korean locale"
    if not _wants_ocx(source):
        return skipped(name, WINDOWS_ONLY)
    if sys.platform != "win32":
        return failed(name, "only on Windows: the code page for non-Unicode programs",
                      "run --source kiwoom on Windows")
    import ctypes  # noqa: PLC0415

    acp = int(ctypes.windll.kernel32.GetACP())
    if acp != 949:
        return failed(name, f"the code page for non-Unicode programs is {acp}, not 949 (Korean): Kiwoom supports "
                            "Korean Windows only and its texts arrive garbled",
                      "Settings → Time & language → Language & region → Administrative language settings → "
                      "Change system locale… → Korean (Korea), then restart Windows")
    return ok(name, "code page 949 (Korean)")


# --- configuration and Redis --------------------------------------------------------------------------------


def check_config(load: Callable[[], PublisherSettings]) -> tuple[Check, PublisherSettings | None]:
    try:
        settings = load()
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        text = " ".join(str(exc).split())
        return failed("configuration", text, "correct the config file (see feeds.example.toml) or the "
                                             "KIWOOM_PUBLISHER_* variables"), None
    feeds = ", ".join(f"{f.feed} ({f.tr})" for f in settings.feeds)
    return ok("configuration", f"source {settings.source}, {len(settings.feeds)} feed(s): {feeds}"), settings


def _redis_fix(exc: redis.RedisError, url: str) -> str:
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in str(exc) or "NOAUTH" in str(exc):
        return ("put the publisher's Redis user and password in the URL (redis://kiwoom-publisher:PASSWORD@host:6379/0"
                "); they must match the server's ACL (deploy/redis-users.acl)")
    return f"start Redis or correct the URL ({url}); check the firewall between this PC and the Redis host"


def check_redis(settings: PublisherSettings) -> tuple[Check, redis.Redis | None]:
    url = settings.masked_url()
    client: redis.Redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        started = time.perf_counter()
        client.ping()
        elapsed_ms = (time.perf_counter() - started) * 1000
    except redis.RedisError as exc:
        client.close()
        return failed("Redis", f"{url}: {type(exc).__name__}: {exc}", _redis_fix(exc, url)), None
    user = client.connection_pool.connection_kwargs.get("username") or "default"
    return ok("Redis", f"{url} answers PING in {elapsed_ms:.1f} ms as user {user}"), client


def server_time(client: redis.Redis) -> float:
    """The Redis server's clock, in seconds (TIME: deploy/redis-users.acl allows it to the publisher)."""
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6


def check_clock(client: redis.Redis) -> Check:
    try:
        before = time.time()
        server = server_time(client)
        after = time.time()
    except redis.RedisError as exc:
        return failed("clock", f"cannot read the server's clock ({exc})",
                      "give the publisher's Redis user the rules of deploy/redis-users.acl")
    offset = (before + after) / 2 - server
    detail = f"this PC is {abs(offset):.3f}s {'ahead of' if offset > 0 else 'behind'} the Redis server"
    if abs(offset) > MAX_CLOCK_OFFSET_S:
        return failed("clock", detail + f" (more than {MAX_CLOCK_OFFSET_S:g}s)",
                      "sync the clocks (Windows: Settings → Time & language → Date & time → Sync now, or "
                      "w32tm /resync; Linux: chrony or systemd-timesyncd)")
    return ok("clock", detail)


def _probe_publishers_hash(client: redis.Redis) -> None:
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(contract.PUBLISHERS_KEY, PROBE, "")
        pipe.hdel(contract.PUBLISHERS_KEY, PROBE)
        pipe.execute()


def _probes() -> Iterator[tuple[str, Callable[[redis.Redis], Any]]]:
    """(what the publisher uses it for, a call that changes nothing) for every command it sends."""
    key = f"{contract.PREFIX}:{{{PROBE}}}:latest"
    stream, lease = f"{contract.PREFIX}:{{{PROBE}}}:history", f"{contract.PREFIX}:{{{PROBE}}}:lease"
    yield "SCRIPT LOAD", lambda r: [r.script_load(s) for s in (contract.WRITE_RANKING_LUA, contract.RENEW_LEASE_LUA,
                                                                contract.RELEASE_LEASE_LUA)]
    yield "EVALSHA", lambda r: r.evalsha(r.script_load("return 1"), 0)
    yield "GET", lambda r: r.get(contract.STATUS_KEY)
    yield "EXISTS", lambda r: r.exists(lease)
    yield "SET", lambda r: r.set(key, "x", xx=True, px=1000)  # XX: only if it exists, and it does not
    # HSET is allowed on the registry and the publishers hash only: a probe field, set and deleted in one round
    # trip (a reader that catches it in between logs a bad entry and ignores it).
    yield "HSET, HDEL", _probe_publishers_hash
    yield "HGETALL", lambda r: r.hgetall(contract.PUBLISHERS_KEY)
    yield "XADD", lambda r: r.xadd(stream, {"probe": "x"}, nomkstream=True)  # no stream, nothing added
    yield "PUBLISH", lambda r: r.publish(f"{contract.PREFIX}:{{{PROBE}}}:updates", "")
    yield "PEXPIRE, DEL (leases)", lambda r: (r.pexpire(lease, 1000), r.delete(lease))


def check_permissions(client: redis.Redis) -> Check:
    refused: list[str] = []
    for what, probe in _probes():
        try:
            probe(client)
        except redis.exceptions.NoPermissionError as exc:
            refused.append(f"{what} ({str(exc).split(' for ')[0]})")
        except redis.RedisError as exc:
            refused.append(f"{what} ({type(exc).__name__}: {exc})")
    if refused:
        return failed("Redis permissions", "refused: " + "; ".join(refused),
                      "give the publisher's Redis user the rules of `user kiwoom-publisher` in "
                      "deploy/redis-users.acl (ACL LOAD after editing the ACL file)")
    return ok("Redis permissions", "every command the publisher sends is allowed on kiwoom:* keys and channels")


# --- the source: login and one request ----------------------------------------------------------------------


def _login_fix(error: KiwoomCacheError, source: Source) -> str:
    from publisher.sources.rest_codes import CredentialsError  # noqa: PLC0415

    if isinstance(error, VersionUpdateError):
        return "Kiwoom updated OpenAPI+: close every program using it (KOA Studio, HTS) and run the doctor again"
    if isinstance(error, LoginRefusedError):
        return ("log in by hand once and save the account password again (tray icon → 계좌비밀번호 저장, AUTO), or "
                "check the ID and password")
    if isinstance(error, CredentialsError):
        return ("set KIWOOM_PUBLISHER_REST_APPKEY and KIWOOM_PUBLISHER_REST_SECRETKEY to the keys issued for "
                "this rest_mode (real or mock) and register this PC's IP with Kiwoom")
    if source is Source.rest:
        return "check the network to Kiwoom's REST domain (rest_base_url / rest_mode)"
    return "check the network and Kiwoom's service hours (daily maintenance 05:05–05:10, Sunday 04:00–04:30 KST)"


def check_source(settings: PublisherSettings, timeout_s: float) -> list[Check]:
    """Log in and send one request for the first feed; two checks (login, request)."""
    source_name = Source(settings.source)
    login_name = "REST token" if source_name is Source.rest else "login"
    request_name = "REST call" if source_name is Source.rest else "TR request"
    if source_name is Source.kiwoom and sys.platform != "win32":
        return [failed(login_name, "only on Windows: the OpenAPI+ control logs in there",
                       "run the doctor on the Windows PC"),
                skipped(request_name, "no login")]
    if source_name is Source.replay:
        return [skipped(login_name, "a replay needs no login"), skipped(request_name, "a replay sends no request")]
    from publisher.limiter import RateLimiter, with_margin  # noqa: PLC0415
    from publisher.parser import ranking_from_response  # noqa: PLC0415
    from publisher.sources import create_source, spec_for  # noqa: PLC0415
    from publisher.sources.base import SourceContext  # noqa: PLC0415
    from publisher.trs import RawResponse, TrRequest  # noqa: PLC0415

    loop = _make_loop(spec_for(source_name).qt, source_name)
    result: dict[str, Any] = {}
    feed = settings.feeds[0]
    limiter = RateLimiter(with_margin(settings.limits(), settings.safety_margin))
    try:
        source = create_source(source_name, SourceContext(settings, loop, (), True))
    except KiwoomCacheError as exc:
        return [failed(login_name, str(exc), _login_fix(exc, source_name)), skipped(request_name, "no login")]

    def on_login(error: KiwoomCacheError | None) -> None:
        if "login" in result:
            return
        result["login"] = error
        if error is not None:
            loop.quit()
            return
        try:
            source.request(TrRequest(feed=feed.feed, trcode=feed.tr, inputs=feed.inputs()), limiter)
        except KiwoomCacheError as exc:
            result["request"] = exc
            loop.quit()

    def on_response(raw: RawResponse) -> None:
        result["request"] = raw
        loop.quit()

    def on_failed(_feed: str, error: KiwoomCacheError) -> None:
        result["request"] = error
        loop.quit()

    source.loggedIn.connect(on_login)
    source.responseReceived.connect(on_response)
    source.requestFailed.connect(on_failed)

    def login() -> None:
        try:
            source.login()
        except KiwoomCacheError as exc:
            on_login(exc)

    start = loop.timer(login)
    start.start(0)
    deadline = loop.timer(loop.quit, interval_s=timeout_s)
    deadline.start()
    try:
        loop.run()
    finally:
        deadline.stop()
        source.close()
        close = getattr(loop, "close", None)
        if close is not None:
            close()
    checks: list[Check] = []
    if "login" not in result:
        return [failed(login_name, f"no answer within {timeout_s:g}s", _login_fix(KiwoomCacheError(), source_name)),
                skipped(request_name, "no login")]
    error = result["login"]
    if error is not None:
        return [failed(login_name, str(error), _login_fix(error, source_name)), skipped(request_name, "no login")]
    checks.append(ok(login_name, f"logged in ({source.account_mode} server)"))
    answer = result.get("request")
    what = f"{feed.tr} for {feed.feed}"
    if answer is None:
        checks.append(failed(request_name, f"{what}: no answer within {timeout_s:g}s",
                             "look at Kiwoom's messages in the publisher log; raise request_timeout_s"))
    elif isinstance(answer, KiwoomCacheError):
        checks.append(failed(request_name, f"{what}: {answer}", "check the feed's TR inputs against "
                                                                "docs/kiwoom-rankings.md"))
    else:
        ranking = ranking_from_response(answer, source=settings.source)
        detail = f"{what}: {len(answer.rows)} rows, {len(ranking.rows)} parsed, {len(ranking.dropped)} dropped"
        if answer.rows and not ranking.rows:
            checks.append(failed(request_name, detail, "the answer's fields do not parse: report it with the log"))
        else:
            checks.append(ok(request_name, detail))
    return checks


def _make_loop(qt: bool, source: Source) -> Any:
    if not qt:
        from publisher.aio_loop import AsyncioLoop  # noqa: PLC0415

        return AsyncioLoop()
    from publisher.cli import _make_loop as make_qt_loop  # noqa: PLC0415 - the CLI's QApplication, once

    return make_qt_loop(PublisherSettings(source=source), headless=True)


# --- the command --------------------------------------------------------------------------------------------


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
        "".join(_MARKS.values()).encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _PLAIN
    return _MARKS


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
