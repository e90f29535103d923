"""Hostile traffic at the edge (issue 22 item 1): connections that never finish their request head are closed."""

from __future__ import annotations

import re
import selectors
import socket
from collections.abc import Callable

import httpx
import pytest

from api.deadline import REQUEST_TIMEOUT
from tests.api.conftest import Replica
from tests.waiting import wait_until

HALF_OPEN = 400
NOFILE = 256
HEAD_TIMEOUT_S = 1.0


def _half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` loopback connections, each having sent half a request head."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        socks.append(sock)
    return socks


def test_half_open_connections_are_closed_at_the_fd_limit(replica: Callable[..., Replica], redis_url: str) -> None:
    rep = replica(redis_url, nofile=NOFILE, header_timeout_s=str(HEAD_TIMEOUT_S))
    socks = _half_open(rep.port, HALF_OPEN)
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    answers: dict[socket.socket, bytes] = {}
    open_socks = set(socks)

    def all_closed() -> bool:
        # A health checker keeps asking meanwhile; it must be answered (possibly once descriptors are freed).
        assert httpx.get(rep.url + "/healthz", timeout=30).status_code == 200
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            answers[sock] = answers.get(sock, b"") + data
            if not data:
                selector.unregister(sock)
                open_socks.discard(sock)
        return not open_socks

    try:
        wait_until(all_closed, 40, f"{HALF_OPEN} half-open connections closed by the replica")
        assert httpx.get(rep.url + "/healthz", timeout=5).status_code == 200
        # Accepted ones are answered 408; at the fd limit the event loop (libuv's reserve descriptor) accepts and
        # drops the rest at once, so none is left hanging.
        timed_out = sum(answer == REQUEST_TIMEOUT for answer in answers.values())
        assert set(answers.values()) <= {REQUEST_TIMEOUT, b""}
        assert timed_out > 0
        assert rep.metric("kiwoom_api_request_head_timeouts_total") == timed_out
        assert "request head not complete within 1.0 s" in rep.log()
    finally:
        selector.close()
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("first", [b"", b"G", b"GET / HTTP/1.1\r\n"])
def test_an_incomplete_head_gets_408(replica: Callable[..., Replica], redis_url: str, first: bytes) -> None:
    rep = replica(redis_url, header_timeout_s=str(HEAD_TIMEOUT_S))
    with socket.create_connection(("127.0.0.1", rep.port), timeout=30) as sock:
        sock.sendall(first)
        assert _until_closed(sock) == REQUEST_TIMEOUT


def _until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response: head and body may arrive in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-body: {data!r}"
        body += chunk
    assert len(body) == length, "more than one response arrived"
    return head + b"\r\n\r\n" + body


def test_a_served_keep_alive_connection_is_not_cut(replica: Callable[..., Replica], redis_url: str) -> None:
    """The deadline covers the head only: a keep-alive connection idle after its answer is left to keep-alive."""
    rep = replica(redis_url, header_timeout_s=str(HEAD_TIMEOUT_S))
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", rep.port), timeout=30) as kept:
        kept.sendall(request)
        assert _response(kept).startswith(b"HTTP/1.1 200")
        # Opened after the kept one was answered: once it is cut, the kept one has been idle past a deadline.
        with socket.create_connection(("127.0.0.1", rep.port), timeout=30) as silent:
            assert _until_closed(silent) == REQUEST_TIMEOUT
        kept.sendall(request)
        assert _response(kept).startswith(b"HTTP/1.1 200")
