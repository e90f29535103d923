"""Seeing how much an event-stream client has not taken yet: the transport's buffer and the kernel's.

The kernel's send buffer (``net.ipv4.tcp_wmem``, up to megabytes) hides a peer that stopped reading for a
long time: the server's writes keep succeeding and a blocked send, the only thing the time-based check sees,
comes late or never at a low event rate. So each stream bounds its socket's send buffer
(``SO_SNDBUF``, :func:`limit_send_buffer`) and the hub reads what is queued in both places
(:func:`queued_bytes`: ``WriteTransport.get_write_buffer_size()`` plus Linux's ``SIOCOUTQ``).

Sources: ``WriteTransport.abort()`` closes at once and drops the buffer, where ``close()`` waits for it to
drain (https://docs.python.org/3/library/asyncio-protocol.html#asyncio.WriteTransport.abort); ``SIOCOUTQ``
is the amount of unsent data in a TCP socket's send queue (tcp(7),
https://man7.org/linux/man-pages/man7/tcp.7.html).

The transport is the server's: uvicorn passes its per-request cycle's bound ``send`` method, whose object
holds the connection's ``transport`` (:func:`transport_of`). Under any other server (or behind middleware
that wraps ``send``) there is none and only the blocked-send check applies.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import socket
import sys
import termios
from typing import Any

_OUTQ = getattr(termios, "TIOCOUTQ", None) if sys.platform == "linux" else None


def transport_of(send: Any) -> asyncio.WriteTransport | None:
    """The connection's transport, duck-typed: uvloop's transports do not subclass asyncio's."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    needed = ("get_write_buffer_size", "abort", "is_closing", "get_extra_info")
    return transport if all(callable(getattr(transport, name, None)) for name in needed) else None


def writes_chunked(send: Any) -> bool:
    """True once uvicorn's httptools cycle has started a chunked response: then bytes framed by
    :func:`api.frames.chunk` may go straight to the transport, exactly what its ``send`` would write."""
    return getattr(getattr(send, "__self__", None), "chunked_encoding", None) is True


def limit_send_buffer(transport: asyncio.WriteTransport, size: int) -> None:
    """Cap the kernel's send buffer for this connection (0 leaves the system default)."""
    sock = transport.get_extra_info("socket")
    if size and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def queued_bytes(transport: asyncio.WriteTransport) -> int:
    """Bytes written by the server that the peer has not acknowledged yet (0 once the connection is closed)."""
    if transport.is_closing():
        return 0
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if _OUTQ is not None and sock is not None:
        buf = array.array("i", [0])
        with contextlib.suppress(OSError, ValueError):
            fcntl.ioctl(sock.fileno(), _OUTQ, buf)
            queued += buf[0]
    return queued
