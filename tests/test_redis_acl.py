"""The shipped Redis ACL (deploy/redis-users.acl) on a real redis-server: each user can do its job and nothing else,
and the whole system runs on those users (publisher -> two replicas -> SSE resume without a gap)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from kiwoom_cache import contract as c
from stack import Stack
from stack.localredis import LocalRedis
from stack.redisacl import TEMPLATE, RedisUsers, Role, prepare, render
from tests.api.sse_client import read_events
from tests.api.writer import Writer
from tests.waiting import wait_until

FEED = "kospi-surge"


@pytest.fixture
def users_redis(tmp_path: Path) -> Iterator[tuple[LocalRedis, RedisUsers]]:
    users = prepare(tmp_path / "users")
    server = LocalRedis(tmp_path / "redis", aclfile=users.acl_file).start()
    yield server, users
    server.stop()


def client(server: LocalRedis, users: RedisUsers, role: Role) -> redis.Redis:
    return redis.Redis.from_url(users.url(server.url, role))


def test_rendered_file_has_no_comments_or_plain_passwords(tmp_path: Path) -> None:
    users = prepare(tmp_path)
    text = users.acl_file.read_text()
    assert text.startswith("user default off\n") and all(line.startswith("user ") for line in text.splitlines())
    for pw in users.passwords.values():
        assert pw not in text
    assert users.acl_file.stat().st_mode & 0o777 == 0o600
    assert prepare(tmp_path).passwords == users.passwords, "passwords are generated once and kept"
    with pytest.raises(KeyError):
        render("user x on {{password:api}}", {})
    assert "&kiwoom:{*}:updates" in TEMPLATE.read_text()


def test_anonymous_is_refused(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, _ = users_redis
    with pytest.raises((AuthenticationError, ResponseError), match=r"NOAUTH|[Aa]uthenticat"):
        redis.Redis.from_url(server.url).get(c.latest_key(FEED))


def test_api_user_reads_and_nothing_else(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, users = users_redis
    writer = Writer(users.url(server.url, Role.PUBLISHER))
    writer.register()
    rid = writer.write()
    api = client(server, users, Role.API)
    assert json.loads(api.get(c.latest_key(FEED)))["id"] == rid
    assert api.xrange(c.history_key(FEED))[0][0].decode() == rid
    assert FEED.encode() in api.hgetall(c.FEEDS_KEY) and api.hexists(c.FEEDS_KEY, FEED)
    assert api.exists(c.latest_key(FEED)) == 1 and api.ping()
    pubsub = api.pubsub()
    pubsub.psubscribe(c.UPDATES_PATTERN)  # the literal pattern is allowed
    assert wait_until(lambda: pubsub.get_message(timeout=0.2), 5, "psubscribe confirmed")["type"] == "psubscribe"
    pubsub.close()
    refused = [
        lambda: api.set(c.latest_key(FEED), b"{}"),
        lambda: api.set("elsewhere", b"x"),
        api.flushall,
        lambda: api.config_get("*"),
        lambda: api.keys("*"),
        lambda: api.delete(c.latest_key(FEED)),
        lambda: api.xadd(c.history_key(FEED), {"x": "y"}),
        lambda: api.publish(c.updates_channel(FEED), b"forged"),
        lambda: api.get("elsewhere"),
        lambda: api.eval("return 1", 0),
    ]
    for attempt in refused:
        with pytest.raises(NoPermissionError):
            attempt()
    wide = api.pubsub()
    with pytest.raises(NoPermissionError):
        wide.psubscribe("kiwoom:*")  # not the literal rule: refused, which is why the rule is literal
        wide.get_message(timeout=1)
    wide.close()
    api.close()
    writer.close()


def test_publisher_user_writes_its_keys_only(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    server, users = users_redis
    writer = Writer(users.url(server.url, Role.PUBLISHER))
    writer.register()
    writer.heartbeat()
    first, second = writer.write(), writer.write()
    admin = client(server, users, Role.ADMIN)
    assert [e[0].decode() for e in admin.xrange(c.history_key(FEED))] == [first, second]
    assert json.loads(admin.get(c.latest_key(FEED)))["seq"] == 2
    pub = writer.client
    admin.script_flush()  # the writer's fallback: NOSCRIPT -> SCRIPT LOAD -> EVALSHA, all allowed
    assert writer.write() and json.loads(admin.get(c.latest_key(FEED)))["seq"] == 3
    status = admin.get(c.STATUS_KEY)
    latest = admin.get(c.latest_key(FEED))
    other_stream = f"kiwoom:{{{FEED}}}:other"
    refused = [
        lambda: pub.keys("*"),
        lambda: pub.config_get("*"),
        lambda: pub.config_set("appendonly", "no"),
        pub.flushall,
        lambda: pub.set("elsewhere", b"x"),
        lambda: pub.hset("other:hash", "a", "b"),
        lambda: pub.xadd("other:stream", {"a": "b"}),
        lambda: pub.incr(c.seq_key(FEED)),
        lambda: pub.publish("other-channel", b"x"),
        lambda: pub.eval("return 1", 0),  # only the writer's own scripts, by digest
        # history: XADD and nothing else (a SET would turn the stream into a string, all history gone)
        lambda: pub.set(c.history_key(FEED), b"x"),
        lambda: pub.delete(c.history_key(FEED)),
        lambda: pub.xtrim(c.history_key(FEED), maxlen=0),
        lambda: pub.xdel(c.history_key(FEED), first),
        lambda: pub.pexpire(c.history_key(FEED), 1),
        lambda: pub.xadd(other_stream, {"a": "b"}),  # XADD only on a history key
        lambda: pub.xadd(c.latest_key(FEED), {"a": "b"}),
        # a ranking and the status cannot be deleted, expired or renamed
        lambda: pub.delete(c.latest_key(FEED)),
        lambda: pub.pexpire(c.latest_key(FEED), 1),
        lambda: pub.expire(c.STATUS_KEY, 1),
        lambda: pub.delete(c.STATUS_KEY),
        lambda: pub.rename(c.latest_key(FEED), "kiwoom:x"),
        # the registry and the publishers hash: HSET (and HDEL of publishers) only; no other write
        lambda: pub.set(c.FEEDS_KEY, b"x"),
        lambda: pub.delete(c.FEEDS_KEY),
        lambda: pub.hdel(c.FEEDS_KEY, FEED),
        lambda: pub.set(c.PUBLISHERS_KEY, b"x"),
        lambda: pub.hset(c.STATUS_KEY, "a", "b"),
        # SET only on the keys the publisher writes with SET
        lambda: pub.set(c.FEEDS_KEY.replace("feeds", "elsewhere"), b"x"),
    ]
    for attempt in refused:
        with pytest.raises(NoPermissionError):
            attempt()
    # A script is held to the same rules: one of the writer's own digests cannot be swapped for another script,
    # and a script an operator loaded that writes outside the publisher's rules fails (the wording differs
    # between Redis and Valkey; what counts is that nothing was written).
    sha = admin.script_load("return redis.call('SET', KEYS[1], 'x')")
    for key in ("elsewhere", c.history_key(FEED)):
        with pytest.raises(ResponseError):
            pub.evalsha(sha, 1, key)
    assert admin.exists("elsewhere", "other:hash", "other:stream", other_stream) == 0
    assert admin.type(c.history_key(FEED)) == b"stream" and admin.xlen(c.history_key(FEED)) == 3
    assert admin.get(c.STATUS_KEY) == status and admin.get(c.latest_key(FEED)) == latest
    assert admin.pttl(c.latest_key(FEED)) == -1, "latest never expires"
    admin.close()
    writer.close()


def test_what_the_publisher_user_can_still_do(users_redis: tuple[LocalRedis, RedisUsers]) -> None:
    """The limits of the ACL, as docs/security.md states them: these are the publisher's own keys, so its user
    can overwrite them, TTL included, and it can take or drop any feed's lease (Redis ACLs cannot tell SET NX
    from SET, nor a script's call from a direct one). Fencing in WRITE_RANKING_LUA, not the ACL, keeps two
    publishers from interleaving rankings."""
    server, users = users_redis
    writer = Writer(users.url(server.url, Role.PUBLISHER))
    writer.register()
    writer.write()
    pub = writer.client
    admin = client(server, users, Role.ADMIN)
    assert pub.set(c.latest_key(FEED), b"x", px=60_000) and admin.pttl(c.latest_key(FEED)) > 0
    assert pub.set(c.STATUS_KEY, b"x", px=60_000)
    assert pub.set(c.seq_key(FEED), 7) and pub.set(c.epoch_key(FEED), b"e")
    assert pub.set(c.lease_key("another-feed"), b"someone-else") and pub.delete(c.lease_key("another-feed")) == 1
    assert pub.hset(c.PUBLISHERS_KEY, "x", "{}") == 1 and pub.hdel(c.PUBLISHERS_KEY, "x") == 1
    admin.close()
    writer.close()


@pytest.mark.integration
def test_whole_system_on_least_privilege_users(tmp_path: Path) -> None:
    """Publisher (kiwoom-publisher) -> Redis -> two replicas (kiwoom-api) -> SSE, resumed on the other replica."""
    with Stack(tmp_path, replicas=2, pace="fast", balancer="python", persist=False) as stack:
        assert stack.users is not None
        a, b = stack.replicas
        wait_until(lambda: httpx.get(f"{a.url}/v1/rankings/{FEED}").status_code == 200, 30, "a first ranking")
        first = read_events(f"{a.url}/v1/rankings/{FEED}/events", 3)
        seqs = [json.loads(e.data)["seq"] for e in first]
        assert seqs == list(range(seqs[0], seqs[0] + 3))
        resumed = read_events(f"{b.url}/v1/rankings/{FEED}/events", 3, headers={"Last-Event-ID": first[-1].id})
        assert [json.loads(e.data)["seq"] for e in resumed] == list(range(seqs[-1] + 1, seqs[-1] + 4))
        admin = redis.Redis.from_url(stack.redis_url)
        try:
            users = {entry["user"] for entry in admin.client_list() if entry.get("user")}
            assert {"kiwoom-api", "kiwoom-publisher"} <= users, users
        finally:
            admin.close()
        for replica in (a, b):
            assert "NOPERM" not in (stack.data / f"{replica.name}.log").read_text()
        assert "NOPERM" not in (stack.data / "publisher.log").read_text()


def test_security_page_documents_every_rule_of_the_shipped_file() -> None:
    """docs/security.md, "Redis users", states each user's rules as the shipped file has them."""
    page = (TEMPLATE.parents[1] / "docs/security.md").read_text(encoding="utf-8")
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("user kiwoom-"):
            rest = line.split("}}", 1)[1].replace("resetkeys ", "").replace("resetchannels ", "")
            selectors = re.findall(r"\([^)]*\)", rest)  # Redis 7 selectors: each one is a rule of its own
            rules = re.sub(r"\([^)]*\)", "", rest).split()
            commands = " ".join(rules[rules.index("-@all"):]) if "-@all" in rules else ""
            documented = [r for r in rules if not r.startswith(("-@all", "+"))] + ([commands] if commands else [])
            for rule in documented + selectors:
                assert rule.replace("|", "\\|") in page, rule
