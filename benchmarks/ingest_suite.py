"""Ingest suite for ``benchmarks/run.py``: postroom vs MailDev, aiosmtpd's sink and Postfix's smtp-sink."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ingest import PEERS_DIR, run_one

HERE = Path(__file__).resolve().parent


def _ensure_peers() -> list[str]:
    peers = ["postroom", "postroom-1-process"]
    if not (PEERS_DIR / "node_modules/.bin/maildev").exists() or not (PEERS_DIR / "venv/bin/python").exists():
        subprocess.run(["sh", str(HERE / "setup_peers.sh")], check=False)
    if (PEERS_DIR / "node_modules/.bin/maildev").exists():
        peers.append("maildev")
    if (PEERS_DIR / "venv/bin/python").exists():
        peers.append("aiosmtpd-sink")
    if shutil.which("smtp-sink") and os.geteuid() == 0:
        peers.append("smtp-sink")
    return peers


def suite(quick: bool) -> dict[str, Any]:
    if not shutil.which("smtp-source"):
        raise SystemExit(
            "bench: smtp-source (Debian postfix) is needed: run benchmarks/setup_peers.sh as root"
        )
    n = 600 if quick else 5000  # the shared benchmark's default
    rows = []
    for peer in _ensure_peers():
        n_peer = n  # the same number of messages for every peer
        rows.append(run_one(peer, n_peer, 10, "html", False))
        if peer == "postroom":
            rows.append(run_one(peer, n, 10, "html", True))
            rows.append(run_one(peer, n, 10, "small", False))
            rows.append(run_one(peer, max(200, n // 5), 10, "attachment", False))
    by = {(r["peer"], r["msg"], r["keep_conn"]): r for r in rows}
    maildev = by.get(("maildev", "html", False))
    lines = [
        "| server | fixture | connections | messages | SMTP msgs/s | visible msgs/s | captured "
        "| peak RSS MB, main process | summed over all its processes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['peer']} | {r['msg']} | {'kept' if r['keep_conn'] else 'one per message'} | {r['n']} | "
            f"{r['msgs_per_s']} | {r['visible_msgs_per_s'] or '—'} | {r['captured'] if r['captured'] is not None else '—'}"
            f" | {r['peak_rss_mb']} | {r['tree_peak_rss_mb']} |"
        )
    for name in ("postroom", "postroom-1-process"):
        pr = by.get((name, "html", False))
        if pr and maildev and maildev.get("visible_msgs_per_s") and pr.get("visible_msgs_per_s"):
            ratio = pr["visible_msgs_per_s"] / maildev["visible_msgs_per_s"]
            lines.append("")
            lines.append(f"{name} / MailDev (html, visible): **{ratio:.1f}x**")
    return {
        "title": "SMTP ingest with smtp-source, 10 parallel sessions; visible = listed by the server's API",
        "rows": rows,
        "markdown": "\n".join(lines),
    }
