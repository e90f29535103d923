"""A DNS server on loopback that answers A queries for names a test sets (what Docker's embedded DNS does for a
compose service: one address per replica, changing as replicas come and go). UDP only, TTL 0, no recursion;
every other question gets NXDOMAIN. Enough for nginx's ``resolver``."""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType


class FakeDns(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="fake-dns")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop_flag = threading.Event()
        #: Questions answered, by name (tests see nginx re-resolving).
        self.queries: dict[str, int] = {}

    def set(self, name: str, addresses: list[str]) -> None:
        with self._lock:
            self._records[name.lower().rstrip(".")] = list(addresses)

    def run(self) -> None:
        while not self._stop_flag.is_set():
            try:
                packet, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._answer(packet)
            if answer:
                self._sock.sendto(answer, peer)

    def _answer(self, packet: bytes) -> bytes | None:
        if len(packet) < 12:
            return None
        qid, _, qdcount = struct.unpack(">HHH", packet[:6])
        if qdcount != 1:
            return None
        labels, pos = [], 12
        while pos < len(packet) and packet[pos]:
            length = packet[pos]
            labels.append(packet[pos + 1:pos + 1 + length].decode(errors="replace"))
            pos += 1 + length
        question_end = pos + 5  # the zero label, QTYPE, QCLASS
        if question_end > len(packet):
            return None
        qtype = struct.unpack(">H", packet[pos + 1:pos + 3])[0]
        name = ".".join(labels).lower()
        with self._lock:
            addresses = list(self._records.get(name, [])) if qtype == 1 else []
            known = name in self._records
            self.queries[name] = self.queries.get(name, 0) + 1
        rcode = 0 if known else 3  # NXDOMAIN for names never set
        header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(addresses), 0, 0)
        answers = b"".join(struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(a) for a in addresses)
        return header + packet[12:question_end] + answers

    def stop(self) -> None:
        self._stop_flag.set()
        self._sock.close()
        self.join(2)

    def __enter__(self) -> FakeDns:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
