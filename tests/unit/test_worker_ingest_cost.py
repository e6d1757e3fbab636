"""What an SMTP worker process runs for one message, counted in calls (issue 15: ingest on
SQLite must cost no more than before the storage renovation).

A worker's CPU per message is Python's: the session (servers/smtp_session.py), the protocol
core, the trace lines (servers/smtp_trace.py), the header scan (store/headers.py,
charsets.py) and the journal record (store/ingest.py, store/journal.py). Timing it in a test
would measure the machine; the number of calls it makes does not move with the machine, and
each one costs CPU. The budgets are what the path costs now (2026-12-05, Python 3.11): a
change that adds calls on it has to raise them, and say why in its commit. Before this test,
the path made 179 Python calls and 448 in all for this message (benchmarks/worker_cpu.py
measures the CPU).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from postroom.config import Settings
from postroom.servers import smtp, smtp_workers
from postroom.servers.smtp_gate import GATE_KEY, SharedGate
from postroom.store.base import Envelope
from postroom.store.compactjson import compact
from postroom.store.ingest import WorkerJournalWriter

PYTHON_CALLS = 162
ALL_CALLS = 405

_HTML = "".join(
    f"<p>line {i} of the message <a href='https://shop.example.com/t/{i}'>link</a></p>\r\n"
    for i in range(200)
)
MESSAGE = (
    "From: Shop <noreply@shop.example.com>\r\nTo: Alice <alice@example.org>\r\n"
    "Subject: Your order #12345 has shipped\r\nDate: Sun, 01 Nov 2026 12:00:00 +0000\r\n"
    "Message-ID: <bench-2@shop.example.com>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: text/html; charset="utf-8"\r\nList-Unsubscribe: <https://shop.example.com/unsub>\r\n'
    "\r\n" + _HTML + ".\r\n"
).encode()
READS = [
    b"EHLO client.example\r\n",
    b"MAIL FROM:<sender@shop.example.com>\r\n",
    b"RCPT TO:<alice@example.org>\r\n",
    b"DATA\r\n",
    *(MESSAGE[i : i + 4096] for i in range(0, len(MESSAGE), 4096)),
    b"QUIT\r\n",
]


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


class _Pipe:
    def write(self, data: bytes) -> None:
        pass


async def _count_one_message(tmp: Path) -> Counter[str]:
    settings = Settings()
    writer = WorkerJournalWriter(str(tmp / "w"))
    store = smtp_workers._JournalStore(writer, _Pipe())  # type: ignore[arg-type]
    app = smtp_workers._WorkerApp(settings, store)
    gate = SharedGate.create(3, settings.smtp_max_connections)
    app.extras[GATE_KEY] = SharedGate(gate.fd, 1, 3, settings.smtp_max_connections)
    listener = smtp.SMTPListener(app, False)

    def one() -> list[bytes]:
        session = listener.new_session()
        transport = _Transport()
        session.connection_made(transport)  # type: ignore[arg-type]
        for data in READS:
            session.data_received(data)
        session.connection_lost(None)
        return transport.out

    for _ in range(3):  # caches warm (dates, field names, the journal file)
        one()
    counts: Counter[str] = Counter()

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counts[f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"] += 1
        elif event == "c_call":
            counts[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

    sys.setprofile(count)
    try:
        out = one()
    finally:
        sys.setprofile(None)
    assert any(o.startswith(b"250 2.0.0 Ok: queued as ") for o in out), out
    writer.close()
    gate.close()
    return counts


def test_a_worker_message_stays_within_its_call_budget(tmp_path: Path) -> None:
    counts = asyncio.run(_count_one_message(tmp_path))
    counts.pop("C:setprofile", None)
    python = sum(n for name, n in counts.items() if not name.startswith("C:"))
    every = sum(counts.values())
    assert python <= PYTHON_CALLS and every <= ALL_CALLS, (python, every, counts.most_common(25))


def test_a_record_is_encoded_without_building_an_encoder() -> None:
    """``json.JSONEncoder.encode`` builds a C encoder per call: the journal's metadata and
    the envelope use one built once (store/compactjson.py), with the same text."""
    import json.encoder

    values: list[Any] = [
        ("Subject", ("Shop", "s@x"), [("A", "a@x")], [], [], 1.5, "id@x", "", [], ["t"]),
        {"MailFrom": "s@x", "RcptTo": ["a@x"], "TLS": False, "AuthUser": "", "Received": 1796461234.123456},
        ["ü", float("nan"), None, True, 10**20, -0.0],
    ]
    made: list[Any] = []

    # building an encoder is a call of JSONEncoder.__init__ (json.dumps with any option) and
    # encoding through one is iterencode; calling the C encoder type itself is no profile event
    watched = {json.encoder.JSONEncoder.__init__.__code__, json.encoder.JSONEncoder.iterencode.__code__}

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in watched:
            made.append(frame.f_code)

    sys.setprofile(watch)
    try:
        got = [compact(v) for v in values]
    finally:
        sys.setprofile(None)
    assert got == [json.dumps(v, separators=(",", ":")) for v in values]
    assert not made


_TEXT = st.text(
    alphabet=st.sampled_from(["a", '"', "\\", "é", "\u2028", "\x00", "@", " ", "\ud800", "😀"]), max_size=6
)


@given(
    st.builds(
        Envelope,
        mail_from=_TEXT,
        rcpt_to=st.lists(_TEXT, max_size=2).map(tuple),
        peer=_TEXT,
        helo=_TEXT,
        tls=st.booleans(),
        auth_user=st.none() | _TEXT,
        smtputf8=st.booleans(),
        received_at=st.floats() | st.integers(-(10**20), 10**20),
    )
)
def test_an_envelope_written_out_is_what_the_encoder_writes(env: Envelope) -> None:
    assert env.dumps() == compact(env.to_json())


def test_the_per_message_paths_read_states_from_globals() -> None:
    """An attribute of an Enum class is looked up through its metaclass's ``__getattr__``
    hook (~70 ns, where a global takes ~6), and a session checked ``State.X`` ~100 times per
    message: the protocol core and the session compare with module globals instead."""
    import dis

    from postroom.protocols.smtp import connection
    from postroom.servers import smtp_session

    core = connection.SMTPConnection
    hot = [
        *(getattr(core, n) for n in ("receive_data", "next_event", "send", "_read_line", "_command")),
        *(getattr(core, n) for n in ("_read_data", "_end_data", "_reset_transaction", "_after_data")),
        smtp_session.SMTPSession._process,
        smtp_session.SMTPSession._resume,
    ]
    for fn in hot:
        ins = list(dis.get_instructions(fn))
        for a, b in itertools.pairwise(ins):
            assert not (a.opname == "LOAD_GLOBAL" and a.argval == "State" and b.opname == "LOAD_ATTR"), (
                fn.__qualname__,
                b.argval,
            )
