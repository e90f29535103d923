"""The doctor's checks of the machine, the configuration and Redis, and the record every check returns.

The Redis permission probes change nothing: they name keys and a channel no publisher or replica uses (an
invalid feed slug, ``doctor:probe``) and use conditional forms (``SET XX``, ``XADD NOMKSTREAM``) or delete what
they create.
"""

from __future__ import annotations

import platform
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from pydantic import ValidationError

from kiwoom_cache import contract
from kiwoom_cache.connect import sync_client
from kiwoom_cache.contract import Source
from publisher.settings import PublisherSettings

#: Larger clock offsets than this fail the clock check: publish times, freshness and lease expiry are compared
#: across machines.
MAX_CLOCK_OFFSET_S = 1.0
#: The probes' name: not a valid feed slug, so replicas ignore the channel and no feed uses the keys.
PROBE = "doctor:probe"


class Outcome(StrEnum):
    ok = "ok"
    failed = "failed"
    skipped = "skipped"


#: How a check's outcome is marked where the console can show it, and where it cannot.
MARKS = {Outcome.ok: "✔", Outcome.failed: "✘", Outcome.skipped: "–"}
PLAIN = {Outcome.ok: "OK  ", Outcome.failed: "FAIL", Outcome.skipped: "SKIP"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    fix: str = ""

    def line(self, marks: dict[Outcome, str] = MARKS) -> str:
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
    # The publisher's own way to a URL: redis://, rediss://, unix://, redis+sentinel:// and redis+cluster://.
    client = sync_client(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        started = time.perf_counter()
        client.ping()
        elapsed_ms = (time.perf_counter() - started) * 1000
    except redis.RedisError as exc:
        client.close()
        return failed("Redis", f"{url}: {type(exc).__name__}: {exc}", _redis_fix(exc, url)), None
    user = unquote(urlsplit(settings.redis_url).username or "") or "default"
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
