"""IMAP at scale: one mailbox of N realistic messages (100,000 by default) in postroom and
in Dovecot, the same bytes in both, side by side in one run (issue 19's targets).

Each server is filled through its own fastest real path and indexed before anything is
timed (:mod:`imap_fill`: Dovecot's Maildir written directly, then ``doveadm index``;
postroom's HTTP import of mbox chunks, then its indexer). Then, alternating the servers
so that machine load hits both alike:

* ``SELECT`` of the big mailbox (median of several, each on a new connection), and
  ``SELECT`` right after one new message was APPENDed, and right after another session's
  ``STORE +FLAGS`` (median of several each);
* ``NOOP`` on the selected big mailbox with nothing changed (median of five per connection);
* ``UID SORT (DATE)`` and ``UID SORT (SUBJECT)``: the first run and the median of warm runs;
* ``UID SEARCH TEXT`` of a word in 1% of the messages: first and warm, and the memory of
  the server's whole process tree (PSS, summed) just before and after it;
* the first ``FETCH 1:* (ENVELOPE BODYSTRUCTURE)`` of 1,000 messages appended just
  before into a mailbox of their own (new mail nobody has fetched yet), right after the
  APPENDs (postroom parses them then) and once postroom's indexer has been through them
  (:data:`SETTLE` seconds later: it stores their IMAP data after their text index, so
  this is the usual case of mail fetched some time after delivery).

With ``--select-only`` only the SELECT phases run (no SORT, SEARCH or first FETCH);
with ``--base REV`` a second postroom, built from git revision REV (``git archive``) on a
copy of the filled database, is timed in the same SELECT phases, interleaved (A/B).

  python benchmarks/run.py imap-scale [--quick]
  python benchmarks/imap_scale_bench.py [--quick] [--n N] [--select-only] [--base REV]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import socket
import sqlite3
import statistics
import sys
import time
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fixtures import VOCAB  # noqa: E402
from imap_bench import USER, Dovecot, FastWire, Postroom, emit, load, load_average, server_pair  # noqa: E402
from imap_fill import fill_dovecot, fill_postroom, same_bytes  # noqa: E402

WORD = "zanzibar"  # in 1% of the messages
BIG = "INBOX"  # the big mailbox (the fill delivers into INBOX)
FRESH = 1000  # new messages for the first FETCH ENVELOPE/BODYSTRUCTURE
SETTLE = 4.0  # seconds between those APPENDs and the FETCH "once indexed"
WARM = 3  # warm runs per operation (median)
NAMES = ["Anna Berg", "Jörg Müller", "Chen Wei", "Sofia Núñez", "Olu Ade", "Marie Dubois", "Kim Lee"]
TOPICS = ["quarterly report", "lunch on friday", "build failure", "Your order", "release plan", "Rechnung"]


def _name(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    # non-ASCII display names RFC 2047 encoded, as real mail has them
    return f'"{name}"' if name.isascii() else Header(name, "utf-8").encode()


def messages(n: int, seed: int = 7) -> list[bytes]:
    """n messages with varied senders (some RFC 2047 names), subjects with Re:/Fwd:, dates
    over two years, threads (In-Reply-To), a third multipart/alternative with HTML, a
    few with a small attachment; ``WORD`` in 1% of them."""
    rng = random.Random(seed)
    base = 1_735_689_600  # 2025-01-01
    out = []
    for i in range(n):
        words = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(40, 400)))
        if i % 100 == 7:
            words += f" {WORD}"
        who = rng.randrange(len(NAMES))
        subject = f"{rng.choice(['', '', 'Re: ', 'RE: ', 'Fwd: '])}{rng.choice(TOPICS)} {i % 977}"
        date = format_datetime(dt.datetime.fromtimestamp(base + rng.randrange(63_000_000), dt.UTC))
        head = (
            f"From: {_name(rng)} <user{who}@example.com>\r\nTo: Alice <alice@example.org>\r\n"
            f"Subject: {subject}\r\nDate: {date}\r\nMessage-ID: <m{i}.{seed}@example.com>\r\n"
            + (f"In-Reply-To: <m{i - 3}.{seed}@example.com>\r\n" if i % 4 == 3 else "")
            + "MIME-Version: 1.0\r\n"
        )
        if i % 3 == 0:
            html = f"<html><body><p>{words}</p></body></html>"
            body = (
                'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\n'
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n--b1\r\n"
                f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b1--\r\n"
            )
        elif i % 50 == 1:
            body = (
                'Content-Type: multipart/mixed; boundary="b2"\r\n\r\n--b2\r\n'
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n--b2\r\n"
                'Content-Type: application/pdf; name="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
                'Content-Disposition: attachment; filename="r.pdf"\r\n\r\n'
                + "JVBERi0xLjQKJeLjz9MK\r\n" * 40
                + "--b2--\r\n"
            )
        else:
            body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n"
        out.append((head + body).encode())
    return out


# -- memory of a server's process tree ----------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def tree_pss_mb(pid: int) -> float:
    """PSS of pid and all its descendants, in MB (smaps_rollup)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += _children(p)
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024


def server_pid(s: Postroom | Dovecot) -> int:
    if isinstance(s, Postroom):
        assert s.proc is not None
        return s.proc.pid
    return int((s.base / "run" / "master.pid").read_text().split()[0])


# -- the run ----------------------------------------------------------------------------------
def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _connect(port: int) -> FastWire:
    w = FastWire("127.0.0.1", port, timeout=3600)
    w.ok(f"LOGIN {USER} secret")
    return w


def _select_ms(port: int, folder: str, n: int) -> float:
    with _connect(port) as w:
        t0 = time.perf_counter()
        lines = w.ok(f"SELECT {folder}")
        ms = _ms(t0)
    assert any(x == b"* %d EXISTS\r\n" % n for x in lines), lines[:4]
    return ms


def _noop_ms(port: int, folder: str) -> float:
    """A NOOP on the selected big mailbox with nothing changed (median of five)."""
    with _connect(port) as w:
        w.ok(f"SELECT {folder}")
        w.ok("NOOP")  # (what the SELECT's own sync left)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            w.ok("NOOP")
            times.append(_ms(t0))
    return statistics.median(times)


def _sort(w: FastWire, key: str, n: int) -> float:
    t0 = time.perf_counter()
    [line] = [x for x in w.ok(f"UID SORT ({key}) UTF-8 ALL") if x.startswith(b"* SORT")]
    ms = _ms(t0)
    assert len(line.split()) - 2 == n, (key, line[:80])
    return ms


def _search(w: FastWire, n: int) -> float:
    t0 = time.perf_counter()
    [line] = [x for x in w.ok(f'UID SEARCH TEXT "{WORD}"') if x.startswith(b"* SEARCH")]
    ms = _ms(t0)
    assert len(line.split()) - 2 == len(range(7, n, 100)), line[:80]
    return ms


def _wait_indexed(db: Path, timeout: float = 1800) -> None:
    """Until postroom's indexer has indexed every message and stored its IMAP data (read
    from the database: the server says nothing about it)."""
    deadline = time.monotonic() + timeout
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        while time.monotonic() < deadline:
            pending, lacking = conn.execute(
                "SELECT (SELECT count(*) FROM message WHERE indexed = 0), "
                "(SELECT count(*) FROM message m WHERE NOT EXISTS (SELECT 1 FROM imap_meta c WHERE c.id = m.id))"
            ).fetchone()
            if not pending and not lacking:
                return
            time.sleep(0.5)
    finally:
        conn.close()
    raise RuntimeError("postroom's indexer did not catch up")


def _fresh_fetch(port: int, folder: str, msgs: list[bytes], settle: float = 0.0) -> float:
    with _connect(port) as w:
        load(w, folder, msgs)
        time.sleep(settle)
        w.ok(f"SELECT {folder}")
        t0 = time.perf_counter()
        lines = w.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
        ms = _ms(t0)
    assert len(lines) == len(msgs), len(lines)
    return ms


def _base_build(tmp: Path, postroom: Postroom, rev: str) -> Postroom:
    """A postroom built from git revision ``rev`` on a copy of ``postroom``'s database
    (stopped for the copy and started again)."""
    from imap_stress_ab import export_src  # (it imports this module)

    postroom.stop()
    for f in tmp.glob(postroom.db.name + "*"):
        shutil.copy(f, tmp / ("base" + f.name[len(postroom.db.name) :]))
    base = Postroom(tmp, src=export_src(rev, tmp / "base-src"), db="base")
    base.name = "base"  # type: ignore[misc]
    postroom.start()
    base.start()
    return base


def suite(
    quick: bool, n: int | None = None, select_only: bool = False, rev: str | None = None
) -> dict[str, Any]:
    n = n or (1000 if quick else 100_000)
    big = messages(n)
    fresh = messages(FRESH, seed=11)
    settled = messages(FRESH, seed=12)
    res: dict[str, dict[str, Any]] = {"postroom": {}, "dovecot": {}}
    loads: list[str] = []
    with server_pair("postroom-imap-scale-", http=True) as (tmp, postroom, dovecot):
        servers: list[Postroom | Dovecot] = [postroom, dovecot]
        for s in servers:
            s.start()
        try:
            _suite(n, big, fresh, settled, res, loads, tmp, servers, select_only, rev)
        finally:
            for s in servers[2:]:
                s.stop()
    return report(n, res, loads, rev)


def _suite(
    n: int,
    big: list[bytes],
    fresh: list[bytes],
    settled: list[bytes],
    res: dict[str, dict[str, Any]],
    loads: list[str],
    tmp: Path,
    servers: list[Postroom | Dovecot],
    select_only: bool,
    rev: str | None,
) -> None:
    postroom, dovecot = servers
    assert isinstance(postroom, Postroom) and isinstance(dovecot, Dovecot)
    # each server filled through its own fastest path (imap_fill.py), then indexed:
    # postroom's indexer works through new mail in the background (the text index, then
    # the IMAP data), so it must finish before SEARCH and SORT are timed
    t0 = time.perf_counter()
    fill_postroom(postroom.http_port, big)
    res["postroom"]["load_s"] = round(time.perf_counter() - t0, 1)
    _wait_indexed(postroom.db)
    res["postroom"]["indexed_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    fill_dovecot(dovecot, big)
    res["dovecot"]["load_s"] = res["dovecot"]["indexed_s"] = round(time.perf_counter() - t0, 1)
    for s in servers:
        same_bytes(s.port, big)
    if rev is not None:
        base = _base_build(tmp, postroom, rev)
        _wait_indexed(base.db)
        servers.append(base)
        res["base"] = {}
    loads.append(load_average())
    for s in servers:
        res[s.name]["select"] = [_select_ms(s.port, BIG, n) for _ in range(WARM + 2)]
    for s in servers[::-1]:
        res[s.name]["noop"] = [_noop_ms(s.port, BIG) for _ in range(WARM)]
    if select_only:
        _selects_after_changes(n, res, servers[::-1])
        loads.append(load_average())
        return
    order = servers[:2]  # (the base build takes part in the SELECTs only)
    conns = {s.name: _connect(s.port) for s in order}
    for w in conns.values():
        w.ok(f"SELECT {BIG}")
    for key in ("DATE", "SUBJECT"):
        for s in order:
            res[s.name][f"sort_{key}"] = [_sort(conns[s.name], key, n) for _ in range(WARM + 1)]
        order = order[::-1]
    for s in order:
        res[s.name]["pss_before_mb"] = round(tree_pss_mb(server_pid(s)), 1)
        res[s.name]["search"] = [_search(conns[s.name], n) for _ in range(WARM + 1)]
        res[s.name]["pss_after_mb"] = round(tree_pss_mb(server_pid(s)), 1)
    for w in conns.values():
        w.close()
    _selects_after_changes(n, res, [*order, *servers[2:]])
    loads.append(load_average())
    for s in order[::-1]:
        res[s.name]["first_fetch"] = _fresh_fetch(s.port, "fresh", fresh)
    for s in order:
        res[s.name]["first_fetch_settled"] = _fresh_fetch(s.port, "settled", settled, SETTLE)
    loads.append(load_average())


def _selects_after_changes(n: int, res: dict[str, dict[str, Any]], order: list[Postroom | Dovecot]) -> None:
    """SELECT right after one new message arrived (its listing changed since the last),
    and right after another session changed a message's flags: each server in turn."""
    extra = messages(WARM, seed=13)
    for i, m in enumerate(extra, 1):
        for s in order:
            with _connect(s.port) as w:
                w.append(BIG, m)
            res[s.name].setdefault("select_new", []).append(_select_ms(s.port, BIG, n + i))
    for i in range(1, WARM + 1):
        for s in order:
            with _connect(s.port) as w:
                w.ok(f"SELECT {BIG}")
                w.ok(f"STORE {i * 7} +FLAGS (\\Flagged)")
            res[s.name].setdefault("select_flagged", []).append(_select_ms(s.port, BIG, n + WARM))


def report(
    n: int, res: dict[str, dict[str, Any]], loads: list[str], rev: str | None = None
) -> dict[str, Any]:
    p, d, b = res["postroom"], res["dovecot"], res.get("base")
    rows: list[dict[str, Any]] = []

    def add(op: str, pv: float, dv: float, target: str, unit: str = "ms", bv: float | None = None) -> None:
        rows.append(
            {"operation": op, "postroom": round(pv, 1), "dovecot": round(dv, 1),
             "ratio": round(pv / dv, 2) if dv else None, "unit": unit, "target": target,
             "base": None if bv is None else round(bv, 1)}
        )  # fmt: skip

    for key, op in (
        ("select", "SELECT (median)"),
        ("select_new", "SELECT after one new message (median)"),
        ("select_flagged", "SELECT after a flag change (median)"),
        ("noop", "NOOP, nothing changed (median)"),
    ):
        bv = statistics.median(b[key]) if b is not None else None
        add(op, statistics.median(p[key]), statistics.median(d[key]), "≤ 10 ms", bv=bv)
    if "search" in p:
        _full_rows(p, d, add)
    add("fill (not a target)", p["load_s"], d["load_s"], "", "s")
    add("fill + indexed (not a target)", p["indexed_s"], d["indexed_s"], "", "s")
    head = "| operation | postroom | Dovecot | ratio | target |"
    if b is not None:
        head = f"| operation | postroom | postroom {rev} | Dovecot | ratio | target |"
    lines = [
        f"{n:,} messages in one mailbox, the same bytes in both servers; milliseconds unless "
        f"marked. First = first run after loading; warm = median of {WARM}. PSS = the whole "
        f"process tree. Load average at each phase: {', '.join(loads)}.",
        "",
        head,
        "| --- | ---: | " + ("---: | " if b is not None else "") + "---: | ---: | --- |",
    ]
    for r in rows:
        u = "" if r["unit"] == "ms" else f" {r['unit']}"
        base = "" if b is None else (f" {r['base']}{u} |" if r["base"] is not None else " |")
        lines.append(
            f"| {r['operation']} | {r['postroom']}{u} |{base} {r['dovecot']}{u} | {r['ratio']}x | {r['target']} |"
        )
    return {"title": f"IMAP at {n:,} messages: postroom vs Dovecot", "rows": rows,
            "markdown": "\n".join(lines), "loads": loads, "raw": res}  # fmt: skip


def _full_rows(p: dict[str, Any], d: dict[str, Any], add: Any) -> None:
    """The rows of the phases after SELECT (not with --select-only)."""
    for key in ("DATE", "SUBJECT"):
        add(f"UID SORT ({key}) first", p[f"sort_{key}"][0], d[f"sort_{key}"][0], "≤ 1x")
        add(
            f"UID SORT ({key}) warm",
            statistics.median(p[f"sort_{key}"][1:]),
            statistics.median(d[f"sort_{key}"][1:]),
            "≤ 1x",
        )
    add("UID SEARCH TEXT first", p["search"][0], d["search"][0], "≤ 1x")
    add(
        "UID SEARCH TEXT warm", statistics.median(p["search"][1:]), statistics.median(d["search"][1:]), "≤ 1x"
    )
    add(
        f"first FETCH 1:* (ENVELOPE BODYSTRUCTURE) of {FRESH:,} new",
        p["first_fetch"],
        d["first_fetch"],
        "≤ 1.5x",
    )
    add(
        f"... of {FRESH:,} new, {SETTLE:g} s after their APPEND",
        p["first_fetch_settled"],
        d["first_fetch_settled"],
        "≤ 1.5x",
    )
    add("PSS before SEARCH TEXT", p["pss_before_mb"], d["pss_before_mb"], "", "MB")
    add("PSS after SEARCH TEXT", p["pss_after_mb"], d["pss_after_mb"], "≤ before + 100 MB", "MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 messages")
    ap.add_argument("--n", type=int, help="messages in the big mailbox (default 100,000)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--select-only", action="store_true", help="only the SELECT phases")
    ap.add_argument(
        "--base", metavar="REV", help="also time a postroom built from git revision REV (SELECTs)"
    )
    a = ap.parse_args()
    result = suite(a.quick, a.n, a.select_only, a.base)
    emit(result, a.json, {"rows": result["rows"], "raw": result["raw"]})


if __name__ == "__main__":
    socket.setdefaulttimeout(3600)
    main()
