"""IMAP under concurrent clients: Dovecot's imaptest in stress mode against postroom and
Dovecot, side by side in one run (issue 19: postroom at ≥ 0.8x Dovecot's commands/s).

imaptest (built from ``../shared/tools/imaptest/build.sh``) runs N clients for S seconds,
each doing a random mix of commands on one user's INBOX, with messages APPENDed from an
mbox of 200 realistic messages (the same file for both servers). Three mixes:

* ``default``: imaptest's own mix (LOGIN, LIST, STATUS, SELECT, FETCH, STORE, EXPUNGE,
  APPEND, LOGOUT ...);
* ``logout=0``: the same without LOGOUT (long sessions, no reconnects);
* ``search``: ``logout=0`` plus SEARCH, SORT, THREAD and COPY (to a second mailbox).

Each mix runs once per server per round, alternating which server goes first; the figure
is commands/s (imaptest's totals summed over every command kind, divided by the seconds)
and the ratio to Dovecot's in the same round. Memory (PSS of the whole process tree) is
read after each run.

  python benchmarks/run.py imap-stress [--quick]
  python benchmarks/imap_stress_bench.py [--quick] [--secs S] [--clients N] [--rounds R] [--mix M]

One mix only, e.g. ``--mix logout=0 --secs 10 --rounds 3``; two builds of postroom against
each other (CPU per command, no Dovecot): ``benchmarks/imap_stress_ab.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from imap_bench import USER, Dovecot, Postroom, Wire, emit, load_average, server_pair  # noqa: E402
from imap_scale_bench import messages, server_pid, tree_pss_mb  # noqa: E402

BUILD = ROOT.parent / "shared" / "tools" / "imaptest" / "build.sh"
MIXES: dict[str, list[str]] = {
    "default": [],
    "logout=0": ["logout=0"],
    "search": ["logout=0", "search=30", "sort=30", "thread=30", "copybox=Copies"],
}
COPYBOX = "Copies"


def imaptest_binary() -> Path:
    r = subprocess.run(["sh", str(BUILD)], capture_output=True, text=True, check=True)
    return Path(r.stdout.strip().splitlines()[-1])


def write_mbox(path: Path, n: int = 200) -> None:
    with path.open("wb") as f:
        for m in messages(n, seed=3):
            f.write(b"From bench@example.com Mon Nov  2 12:00:00 2026\r\n" + m + b"\r\n")


def parse_totals(out: str) -> dict[str, int]:
    """imaptest's ``Totals:`` block: command short name -> count."""
    lines = out[out.rindex("Totals:") :].splitlines()[1:]
    names = lines[0].split()
    counts = next(x for x in lines[1:] if x.strip() and "%" not in x).split()
    return dict(zip(names, (int(c) for c in counts), strict=True))


def run_imaptest(
    binary: Path, port: int, mbox: Path, clients: int, secs: int, mix: list[str]
) -> dict[str, Any]:
    cmd = [str(binary), "host=127.0.0.1", f"port={port}", f"user={USER}", "pass=secret",
           f"mbox={mbox}", f"clients={clients}", f"secs={secs}", *mix]  # fmt: skip
    env = {**os.environ, "LD_LIBRARY_PATH": "/usr/lib/dovecot"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 120, env=env)
    out = r.stdout + r.stderr
    if "Totals:" not in out:
        raise RuntimeError(f"imaptest gave no totals (exit {r.returncode}): {out[-2000:]}")
    totals = parse_totals(out)
    errors = len(re.findall(r"^Error:", out, re.MULTILINE))
    return {"totals": totals, "ops_per_s": round(sum(totals.values()) / secs, 1), "errors": errors}


def _prepare(s: Postroom | Dovecot) -> None:
    with Wire("127.0.0.1", s.port, timeout=60) as w:
        w.ok(f"LOGIN {USER} secret")
        w.send(w.tag().encode() + f" CREATE {COPYBOX}\r\n".encode())  # may exist already
        w.read_line()


def suite(
    quick: bool,
    secs: int | None = None,
    clients: int = 10,
    rounds: int | None = None,
    mixes: list[str] | None = None,
) -> dict[str, Any]:
    secs = secs or (10 if quick else 30)
    rounds = rounds or (1 if quick else 2)
    binary = imaptest_binary()
    chosen = {m: MIXES[m] for m in mixes or MIXES}
    res: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"postroom": [], "dovecot": []} for m in chosen}
    loads = []
    with server_pair("postroom-imap-stress-") as (tmp, postroom, dovecot):
        mbox = tmp / "source.mbox"
        write_mbox(mbox)
        servers: list[Postroom | Dovecot] = [postroom, dovecot]
        for s in servers:
            s.start()
            _prepare(s)
        for r in range(rounds):
            for mix, args in chosen.items():
                for s in servers if r % 2 == 0 else servers[::-1]:
                    run = run_imaptest(binary, s.port, mbox, clients, secs, args)
                    run["pss_mb"] = round(tree_pss_mb(server_pid(s)), 1)
                    res[mix][s.name].append(run)
                    print(f"  {mix} {s.name}: {run['ops_per_s']} cmds/s, errors {run['errors']}, "
                          f"PSS {run['pss_mb']} MB", file=sys.stderr)  # fmt: skip
            loads.append(load_average())
    return report(clients, secs, rounds, res, loads)


def report(clients: int, secs: int, rounds: int, res: dict[str, Any], loads: list[str]) -> dict[str, Any]:
    rows = []
    lines = [
        f"imaptest stress, {clients} clients, {secs} s per run, {rounds} round(s) alternating the "
        f"servers; commands/s summed over every command kind (median over rounds). Load average "
        f"after each round: {', '.join(loads)}.",
        "",
        "| mix | postroom cmds/s | Dovecot cmds/s | ratio (target ≥ 0.8x) | postroom PSS MB | Dovecot PSS MB | errors p/d |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mix, by in res.items():
        p = statistics.median(x["ops_per_s"] for x in by["postroom"])
        d = statistics.median(x["ops_per_s"] for x in by["dovecot"])
        row = {"mix": mix, "postroom_ops_s": p, "dovecot_ops_s": d, "ratio": round(p / d, 2) if d else None,
               "postroom_pss_mb": by["postroom"][-1]["pss_mb"], "dovecot_pss_mb": by["dovecot"][-1]["pss_mb"],
               "errors": [sum(x["errors"] for x in by["postroom"]), sum(x["errors"] for x in by["dovecot"])],
               "runs": by}  # fmt: skip
        rows.append(row)
        lines.append(
            f"| {mix} | {p:.1f} | {d:.1f} | **{row['ratio']}x** | {row['postroom_pss_mb']} | "
            f"{row['dovecot_pss_mb']} | {row['errors'][0]}/{row['errors'][1]} |"
        )
    return {
        "title": "IMAP stress (imaptest): postroom vs Dovecot",
        "rows": rows,
        "markdown": "\n".join(lines),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 s per run, one round")
    ap.add_argument("--secs", type=int, help="seconds per run (default 30)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, help="rounds (default 2)")
    ap.add_argument("--mix", action="append", choices=list(MIXES), help="only this mix (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    a = ap.parse_args()
    emit(suite(a.quick, a.secs, a.clients, a.rounds, a.mix), a.json)


if __name__ == "__main__":
    socket.setdefaulttimeout(600)
    main()
