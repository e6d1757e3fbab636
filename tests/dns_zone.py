"""A small authoritative DNS server for tests: dnspython answering given zones on loopback.

UDP and TCP on the same free port of 127.0.0.1, in a thread; a UDP answer larger than
the client's payload size is truncated (TC), so the client retries over TCP. Names listed in
``servfail`` answer SERVFAIL (a DNS temperror); names with no records answer NXDOMAIN.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

Records = dict[tuple[str, str], list[str]]


def txt(value: str) -> str:
    """A TXT rdata in zone-file syntax, split into 255-byte strings (RFC 7208 3.3)."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)


def answer(wire: bytes, records: Records, servfail: set[str], tcp: bool = False) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    question = q.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    rdtype = dns.rdatatype.to_text(question.rdtype)
    if name in servfail:
        r.set_rcode(dns.rcode.SERVFAIL)
    elif (name, rdtype) in records:
        r.answer.append(dns.rrset.from_text_list(name + ".", 60, "IN", rdtype, records[(name, rdtype)]))
    elif not any(n == name for n, _ in records):
        r.set_rcode(dns.rcode.NXDOMAIN)
    if tcp:
        return r.to_wire()
    limit = q.payload if q.edns >= 0 else 512  # RFC 1035 4.2.1, RFC 6891 6.2.5
    try:
        return r.to_wire(max_size=limit)
    except dns.exception.TooBig:  # truncated: the client retries over TCP (RFC 7766)
        r.answer.clear()
        r.flags |= dns.flags.TC
        return r.to_wire()


@contextmanager
def dns_server(records: Records, servfail: set[str] | None = None) -> Iterator[tuple[str, int]]:
    """Serve ``records`` (keys: (lower-case name without final dot, type)) until the block ends."""
    fail = {n.lower() for n in servfail or ()}
    recs = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in records.items()}
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket()
        try:
            tcp.bind(("127.0.0.1", port))
            break
        except OSError:
            udp.close()
            tcp.close()
    tcp.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sel = selectors.DefaultSelector()
        sel.register(udp, selectors.EVENT_READ)
        sel.register(tcp, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                if key.fileobj is udp:
                    data, addr = udp.recvfrom(65535)
                    udp.sendto(answer(data, recs, fail), addr)
                else:
                    conn, _ = tcp.accept()
                    with conn:
                        conn.settimeout(2)
                        try:
                            (n,) = struct.unpack("!H", conn.recv(2))
                            data = b""
                            while len(data) < n:
                                data += conn.recv(n - len(data))
                            out = answer(data, recs, fail, tcp=True)
                            conn.sendall(struct.pack("!H", len(out)) + out)
                        except (OSError, struct.error):
                            pass
        sel.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield "127.0.0.1", port
    finally:
        stop.set()
        t.join(5)
        udp.close()
        tcp.close()
