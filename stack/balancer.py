"""A small round-robin TCP balancer: the demo's fallback when nginx is not installed.

It forwards bytes, so HTTP keep-alive and Server-Sent Events pass through unbuffered. A backend that
refuses the connection is skipped (the next one is tried), which is what a client reconnecting after a
replica died needs. For production use nginx (see deploy/nginx.conf); this exists so the demo runs
with nothing but Python.

    python -m stack.balancer --listen 8080 --backend 127.0.0.1:8001 --backend 127.0.0.1:8002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal

log = logging.getLogger("stack.balancer")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Balancer:
    def __init__(self, backends: list[tuple[str, int]], connect_timeout_s: float = 2.0) -> None:
        if not backends:
            raise ValueError("at least one backend")
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self._timeout = connect_timeout_s

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next)]
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(host, port), self._timeout)
            except (OSError, TimeoutError) as exc:
                log.warning("backend %s:%d unavailable (%s); trying the next", host, port, exc)
                continue
            await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
            return
        log.error("no backend available")
        client_w.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        with contextlib.suppress(Exception):
            await client_w.drain()
            client_w.close()


async def serve(listen: int, backends: list[tuple[str, int]], host: str = "127.0.0.1") -> None:
    balancer = Balancer(backends)
    server = await asyncio.start_server(balancer.handle, host, listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("balancing %s:%d over %s", host, listen, ", ".join(f"{h}:{p}" for h, p in backends))
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="round-robin TCP balancer (demo fallback for nginx)")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--backend", action="append", required=True, metavar="HOST:PORT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backends = [(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1])) for b in args.backend]
    asyncio.run(serve(args.listen, backends, args.host))


if __name__ == "__main__":
    main()
