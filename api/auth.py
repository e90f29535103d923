"""API keys: what a key may read, where keys come from, and how a request presents one.

Why opaque keys and not JWTs: a replica must decide on every snapshot request and every new event stream,
so the check is a SHA-256 of the presented key and one dict lookup (no signature to verify, no clock to
trust); a removed key is refused at the next file check, with no token lifetime to wait out; and there is
no identity provider in this deployment to issue tokens. Keys are stored only as SHA-256 digests: they are
32 random bytes, so a fast unsalted hash is enough (nothing to brute-force), and the lookup compares digests
of the presented key, so response timing tells an attacker nothing about a stored key.

Keys are scoped: ``feeds`` (names, or ``*``) x ``scopes`` (:class:`Scope`). They come from the settings
(``KIWOOM_API_AUTH_KEYS``, JSON; fixed for the process) and/or a TOML file (``KIWOOM_API_AUTH_KEYS_FILE``)
that is re-read when it changes, so keys are added, rotated and revoked without a restart.

    python -m api.auth new --name dashboard --feeds '*' --scopes rankings
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

#: The cookie the login form sets for browsers (EventSource cannot send an Authorization header).
COOKIE: Final = "kiwoom_key"
_COOKIE_PREFIX: Final = COOKIE.encode() + b"="
#: Every generated key starts with this, so a leaked one is recognisable (e.g. by secret scanners).
KEY_PREFIX: Final = "kc_"
ALL_FEEDS: Final = "*"


class Scope(StrEnum):
    """Operations a key may perform."""

    #: Snapshots, history and event streams of the key's feeds, and the /v1/feeds listing (of those feeds).
    RANKINGS = "rankings"
    #: ``GET /metrics`` (Prometheus).
    METRICS = "metrics"
    #: ``/docs``, ``/redoc`` and ``/openapi.json``.
    DOCS = "docs"


class KeySpec(BaseModel):
    """One key as written in the key file or ``KIWOOM_API_AUTH_KEYS``: its digest, never the key itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, description="Who holds the key (logs, never sent)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key (python -m api.auth hash)")
    feeds: list[str] = Field(default_factory=lambda: [ALL_FEEDS], min_length=1)
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.RANKINGS], min_length=1)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the request path sees it: set lookups only."""

    name: str
    feeds: frozenset[str] | None  # None: every feed
    scopes: frozenset[Scope]

    @classmethod
    def from_spec(cls, spec: KeySpec) -> ApiKey:
        feeds = None if ALL_FEEDS in spec.feeds else frozenset(spec.feeds)
        return cls(spec.name, feeds, frozenset(spec.scopes))

    def may_read(self, feed: str) -> bool:
        return Scope.RANKINGS in self.scopes and (self.feeds is None or feed in self.feeds)


class KeyFileError(ValueError):
    """The key file (or ``KIWOOM_API_AUTH_KEYS``) cannot be used; the message says where and why."""


def digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def new_key() -> str:
    """32 random bytes, URL- and cookie-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_key_file(text: str, source: str) -> list[KeySpec]:
    """``[[keys]]`` tables of a TOML key file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"keys"}
    if unknown:
        raise KeyFileError(f"{source}: unknown top-level entries {sorted(unknown)} (expected [[keys]] tables)")
    return parse_specs(data.get("keys", []), source)


def parse_specs(items: object, source: str) -> list[KeySpec]:
    if not isinstance(items, list):
        raise KeyFileError(f"{source}: expected a list of keys")
    specs = []
    for i, item in enumerate(items):
        try:
            specs.append(KeySpec.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'key'}: {e['msg']}" for e in exc.errors())
            raise KeyFileError(f"{source}: key #{i + 1}: {problems}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise KeyFileError(f"{source}: duplicate key names {sorted({n for n in names if names.count(n) > 1})}")
    return specs


def _index(specs: Iterable[KeySpec]) -> dict[bytes, ApiKey]:
    return {bytes.fromhex(s.sha256): ApiKey.from_spec(s) for s in specs}


class KeyStore:
    """Digest -> key, from fixed specs plus a file that is re-read (at most every ``reload_s``) when it changes.

    A file that becomes unreadable or invalid is logged and the keys loaded before stay in force (bad input
    loses nothing); at start it is an error, so a replica never comes up with a key file it cannot read.
    """

    def __init__(self, specs: Iterable[KeySpec] = (), path: Path | None = None, *, reload_s: float = 1.0) -> None:
        self._fixed = list(specs)
        self.path = path
        self.reload_s = reload_s
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._keys = _index(self._fixed)
        #: Presented key -> its entry, for keys that matched: the hot path then skips the SHA-256. Only valid keys
        #: enter (so its size is bounded by the key file), and it is emptied whenever the keys change.
        self._hits: dict[bytes, ApiKey] = {}
        if path is not None:
            try:
                stamp = self._stat(path)
            except OSError as exc:
                raise KeyFileError(f"{path}: {exc.strerror}") from exc
            self._load(path, stamp, initial=True)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, secret: bytes) -> ApiKey | None:
        if self.path is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self.reload_s
                self.refresh()
        key = self._hits.get(secret)
        if key is None:
            key = self._keys.get(hashlib.sha256(secret).digest())
            if key is not None:
                self._hits[secret] = key
        return key

    def refresh(self) -> None:
        """Re-read the file if its modification time, size or inode changed."""
        assert self.path is not None
        try:
            stamp = self._stat(self.path)
        except OSError as exc:
            if self._stamp is not None:
                log.error("auth: key file %s unreadable (%s); keeping the %d keys loaded before",
                          self.path, exc.strerror, len(self._keys))
                self._stamp = None
            return
        if stamp != self._stamp:
            self._load(self.path, stamp, initial=False)

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int]:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self, path: Path, stamp: tuple[int, int, int], *, initial: bool) -> None:
        self._stamp = stamp  # a bad file is reported once per change, not once per check
        try:
            specs = parse_key_file(path.read_text(encoding="utf-8"), str(path))
            fixed = {s.name for s in self._fixed}
            clash = sorted(fixed & {s.name for s in specs})
            if clash:
                raise KeyFileError(f"{path}: key names {clash} are also in KIWOOM_API_AUTH_KEYS")
        except (OSError, UnicodeDecodeError, KeyFileError) as exc:
            if initial:
                raise KeyFileError(str(exc)) from exc
            log.error("auth: %s; keeping the %d keys loaded before", exc, len(self._keys))
            return
        self._keys, self._hits = _index([*self._fixed, *specs]), {}
        log.info("auth: %d keys in force (%s%d from %s)", len(self._keys),
                 f"{len(self._fixed)} from settings, " if self._fixed else "", len(specs), path)


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request carries: ``Authorization: Bearer <key>``, else the login cookie; None if neither."""
    authorization = cookie = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"cookie" and cookie is None:
            cookie = value
    return key_from(authorization, cookie)


def key_from(authorization: bytes | None, cookie: bytes | None) -> bytes | None:
    """The key in an ``Authorization`` header value, else in a ``Cookie`` header value; None if neither.

    Another Authorization scheme yields ``b""`` (a key that matches nothing), never a fall-back to the cookie.
    """
    if authorization is not None:
        scheme, _, token = authorization.partition(b" ")
        return token.strip() if scheme.lower() == b"bearer" else b""
    return None if cookie is None else _cookie_value(cookie)


def _cookie_value(header: bytes) -> bytes | None:
    for part in header.split(b";"):
        pair = part.strip()
        if pair.startswith(_COOKIE_PREFIX):
            return pair[len(_COOKIE_PREFIX):]
    return None


def set_cookie(key: str, *, max_age_s: int, secure: bool) -> bytes:
    """``Set-Cookie`` for the login: HttpOnly (page scripts never see the key), SameSite=Lax (not sent on
    cross-site subrequests), Secure under TLS."""
    value = f"{COOKIE}={key}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax"
    return (value + ("; Secure" if secure else "")).encode()


def clear_cookie(*, secure: bool) -> bytes:
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{'; Secure' if secure else ''}".encode()


# --- python -m api.auth ---------------------------------------------------------------------------


def _toml_table(spec: KeySpec) -> str:
    return (f"[[keys]]\nname = {json.dumps(spec.name)}\nsha256 = \"{spec.sha256}\"\n"
            f"feeds = {json.dumps(spec.feeds, ensure_ascii=False)}\n"
            f"scopes = {json.dumps([s.value for s in spec.scopes])}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.auth", description="Create, hash and check API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="generate a key: prints the key once (stderr) and its [[keys]] table")
    new.add_argument("--name", required=True)
    new.add_argument("--feeds", default=ALL_FEEDS, help="comma-separated feed names, or * (default)")
    new.add_argument("--scopes", default=Scope.RANKINGS.value,
                     help=f"comma-separated: {', '.join(s.value for s in Scope)} (default rankings)")
    new.add_argument("--append", type=Path, help="append the table to this key file (replicas pick it up)")
    new.add_argument("--key-out", type=Path, help="write the key to this file (mode 600) instead of stderr")
    sub.add_parser("hash", help="print the sha256 of a key read from stdin")
    check = sub.add_parser("check", help="validate a key file")
    check.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    if args.command == "hash":
        print(hashlib.sha256(sys.stdin.readline().strip().encode()).hexdigest())
        return 0
    if args.command == "check":
        try:
            specs = parse_key_file(args.file.read_text(encoding="utf-8"), str(args.file))
        except (OSError, KeyFileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for spec in specs:
            print(f"{spec.name}: feeds {','.join(spec.feeds)}; scopes {','.join(s.value for s in spec.scopes)}")
        return 0
    key = new_key()
    try:
        spec = KeySpec(name=args.name, sha256=hashlib.sha256(key.encode()).hexdigest(),
                       feeds=[f.strip() for f in args.feeds.split(",") if f.strip()],
                       scopes=[Scope(s.strip()) for s in args.scopes.split(",") if s.strip()])
    except (ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = _toml_table(spec)
    if args.append is not None:
        existing = args.append.read_text(encoding="utf-8") if args.append.exists() else ""
        try:
            parse_key_file(existing + "\n" + table, str(args.append))
        except KeyFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        with args.append.open("a", encoding="utf-8") as out:
            out.write(("\n" if existing and not existing.endswith("\n\n") else "") + table)
    else:
        print(table, end="")
    if args.key_out is not None:
        fd = os.open(args.key_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key + "\n")
    else:
        print(f"key for {spec.name} (shown once, store it now): {key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
