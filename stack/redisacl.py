"""Render the shipped Redis ACL (``deploy/redis-users.acl``) with generated passwords, and hand out each role's URL.

The demo, the tests and compose's ``secrets`` service all go through :func:`prepare`: passwords are generated
once and kept (mode 600) in the data dir, the ACL file Redis loads carries only their SHA-256, and each process
gets a URL for its own user::

    python -m stack.redisacl --dir /secrets --redis-host redis     # compose: writes users.acl, *.env, *.password

With ``--sentinels HOST:PORT,…`` (compose's ``sentinel`` profile) it also writes each role's
``<role>.sentinel.env`` (a ``redis+sentinel://`` URL), ``sentinel.conf`` for the sentinels (they log in to the data
nodes as ``kiwoom-sentinel``) and ``replica.conf`` (``masteruser``/``masterauth``: how a data node replicates from
whichever node is primary, including the old primary after a failover).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE: Final = ROOT / "deploy" / "redis-users.acl"
_TOKEN: Final = re.compile(r"\{\{password:([a-z]+)\}\}")


class Role(StrEnum):
    """One Redis user per role; the value is the template's token name."""

    #: Writes rankings (the publisher process).
    PUBLISHER = "publisher"
    #: Reads rankings (every API replica).
    API = "api"
    #: Operators and the tests' clean-up.
    ADMIN = "admin"
    #: A Redis replica copying the primary (masteruser): replication only.
    REPLICA = "replica"
    #: The sentinels watching and reconfiguring the data nodes (sentinel auth-user).
    SENTINEL = "sentinel"

    @property
    def user(self) -> str:
        return f"kiwoom-{self.value}"


def render(template: str, passwords: dict[Role, str]) -> str:
    """The ACL file Redis loads: comments dropped, each ``{{password:ROLE}}`` replaced by ``#<sha256>``."""
    lines = []
    for line in template.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue

        def digest(match: re.Match[str]) -> str:
            role = Role(match.group(1))
            return "#" + hashlib.sha256(passwords[role].encode()).hexdigest()

        lines.append(_TOKEN.sub(digest, line))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RedisUsers:
    """Where the rendered ACL is and each role's password."""

    acl_file: Path
    passwords: dict[Role, str]

    def url(self, base_url: str, role: Role) -> str:
        """``base_url`` (``redis://host:port/db``) with ``role``'s user name and password in it."""
        scheme, rest = base_url.split("://", 1)
        rest = rest.split("@", 1)[-1]
        return f"{scheme}://{role.user}:{quote(self.passwords[role], safe='')}@{rest}"


def prepare(directory: Path, template: Path = TEMPLATE) -> RedisUsers:
    """Passwords from ``directory/redis-passwords.json`` (generated on first use), and ``users.acl`` rendered."""
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "redis-passwords.json"
    stored = json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    passwords = {role: stored.get(role.value) or secrets.token_urlsafe(24) for role in Role}
    if stored != {role.value: pw for role, pw in passwords.items()}:
        _write_private(store, json.dumps({role.value: pw for role, pw in passwords.items()}, indent=1) + "\n")
    acl = directory / "users.acl"
    _write_private(acl, render(template.read_text(encoding="utf-8"), passwords))
    return RedisUsers(acl, passwords)


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def sentinel_conf(users: RedisUsers, service: str, host: str, port: int, quorum: int = 2) -> str:
    """A sentinel's configuration for compose: the primary by host name (``resolve-hostnames``), announced by name
    too, so clients in other containers reach what the sentinels name. Sentinel rewrites its file: each copies it."""
    return (f"sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"
            f"sentinel monitor {service} {host} {port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} 5000\nsentinel failover-timeout {service} 60000\n"
            f"sentinel parallel-syncs {service} 1\nsentinel auth-user {service} {Role.SENTINEL.user}\n"
            f"sentinel auth-pass {service} {users.passwords[Role.SENTINEL]}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.redisacl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="where passwords and the rendered ACL go")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help=f"the ACL template (default {TEMPLATE})")
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--sentinels", default="",
                        help="HOST:PORT,... of the sentinels: also write <role>.sentinel.env, sentinel.conf and "
                             "replica.conf")
    parser.add_argument("--service", default="kiwoom", help="the Sentinel service name (default kiwoom)")
    parser.add_argument("--mode", type=lambda s: int(s, 8), default=0o600,
                        help="file mode of the outputs (compose: 644, the volume is shared by other users' uids)")
    args = parser.parse_args(argv)
    users = prepare(args.dir, args.template)
    base = f"redis://{args.redis_host}:{args.redis_port}/0"
    for role in Role:
        _write_private(args.dir / f"{role.value}.env",
                       f"KIWOOM_CACHE_REDIS_URL={users.url(base, role)}\n", args.mode)
    if args.sentinels:
        sentinel_base = f"redis+sentinel://{args.sentinels}/{args.service}/0"
        for role in Role:
            _write_private(args.dir / f"{role.value}.sentinel.env",
                           f"KIWOOM_CACHE_REDIS_URL={users.url(sentinel_base, role)}\n", args.mode)
        _write_private(args.dir / "sentinel.conf", sentinel_conf(users, args.service, args.redis_host,
                                                                 args.redis_port), args.mode)
        _write_private(args.dir / "replica.conf", f"masteruser {Role.REPLICA.user}\n"
                       f"masterauth {users.passwords[Role.REPLICA]}\n", args.mode)
    for path in args.dir.iterdir():
        path.chmod(args.mode)
    print(f"redis users ready in {args.dir}: {', '.join(r.user for r in Role)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
