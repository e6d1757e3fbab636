"""Deliverability lint: what would make real mail land in spam, each with a one-line fix.

The rules follow what the large mailbox providers publish for senders (Gmail's and
Yahoo's 2024 sender requirements: authentication, one-click unsubscribe for bulk
mail, RFC 5322 conformance) and the RFCs behind them. Each finding has a ``Code``,
a ``Severity`` (``error``: providers reject or junk such mail; ``warning``: it hurts
placement or rendering; ``info``), a ``Message`` saying what was found and a
one-line ``Fix``.

:func:`lint` looks at the message alone; :func:`findings_from_checks` turns the
other checks' results (authentication, SpamAssassin, links) into findings of the
same form, so one list answers "why would this land in spam".

All scans are linear: substring searches on lower-cased text, an HTML parse by
Lexbor, no regular expression with nested repetition.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from typing import Any
from urllib.parse import urlsplit

from ..message import ParsedMessage
from .html import parse_html

__all__ = [
    "HUGE_MESSAGE",
    "IMAGE_LIMIT",
    "SEVERITIES",
    "SPAMMY_PHRASES",
    "Finding",
    "findings_from_checks",
    "lint",
]

SEVERITIES = ("error", "warning", "info")
HUGE_MESSAGE = 10 * 1024 * 1024  # bytes; many providers cap at 10-25 MB and large mail is throttled
GMAIL_CLIP = 102 * 1024  # Gmail clips an HTML body beyond 102 KB ("[Message clipped]")
IMAGE_LIMIT = 1024 * 1024  # bytes per image; larger ones load slowly and look like padding
IMAGE_ONLY_TEXT = 200  # characters of visible text under which an HTML mail with images is "image-only"
# Phrases content filters weigh (SpamAssassin's rule descriptions and provider guidance).
SPAMMY_PHRASES = (
    "100% free",
    "act now",
    "apply now",
    "as seen on",
    "buy direct",
    "cash bonus",
    "click below",
    "congratulations, you",
    "dear friend",
    "double your",
    "earn extra cash",
    "eliminate debt",
    "exclusive deal",
    "get paid",
    "guaranteed",
    "increase sales",
    "limited time offer",
    "lowest price",
    "miracle",
    "no credit check",
    "no obligation",
    "once in a lifetime",
    "risk-free",
    "risk free",
    "this is not spam",
    "urgent response",
    "winner",
    "you have been selected",
)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"Code": self.code, "Severity": self.severity, "Message": self.message, "Fix": self.fix}


def _defects(raw: bytes) -> list[str]:
    """MIME structure defects the stdlib parser records (missing boundaries and the like)."""
    msg: Message = message_from_bytes(raw, policy=compat32)
    names: list[str] = []
    for part in msg.walk():
        for d in part.defects:
            names.append(type(d).__name__)
    return names


def _domain_of(text: str) -> str:
    """The host a link's text shows, when the text looks like a URL or a domain; else ""."""
    t = text.strip().lower().rstrip("/.")
    if not t or " " in t or len(t) > 200 or "." not in t:
        return ""
    if "://" not in t:
        if "@" in t:
            return ""  # an e-mail address
        t = "http://" + t
    host = urlsplit(t).hostname or ""
    labels = host.split(".")
    return host if len(labels) >= 2 and labels[-1].isalpha() and len(labels[-1]) >= 2 else ""


def _same_site(a: str, b: str) -> bool:
    a, b = a.removeprefix("www."), b.removeprefix("www.")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _visible_text(root: Any) -> str:
    """The words of the document outside <head>, <title>, <style> and <script>."""
    parts: list[str] = []
    for node in root.iter():
        if isinstance(node.tag, str) and node.tag not in ("head", "title", "style", "script") and node.text:
            parts.append(node.text)
        if node.tail:
            parts.append(node.tail)
    return " ".join(" ".join(parts).split())


def _html_findings(pm: ParsedMessage, out: list[Finding]) -> None:
    html = pm.html
    if len(html.encode("utf-8", "replace")) > GMAIL_CLIP:
        out.append(
            Finding(
                "html-clipped",
                "warning",
                f"the HTML part is {len(html) // 1024} KB; Gmail clips HTML beyond 102 KB",
                "Trim the HTML (inline CSS once, drop comments and unused markup) below 102 KB.",
            )
        )
    root = parse_html(html)
    if root is None:
        return
    images = list(root.iter("img"))
    visible = " ".join(pm.text.split()) if pm.text_from_html else _visible_text(root)
    if images and len(visible) < IMAGE_ONLY_TEXT:
        out.append(
            Finding(
                "image-only",
                "warning",
                f"{len(images)} image(s) and only {len(visible)} characters of text",
                "Put the message in text too: filters distrust image-only mail and many clients block images.",
            )
        )
    for img in images:
        if not (img.get("alt") or "").strip():
            out.append(
                Finding(
                    "image-without-alt",
                    "info",
                    f"an image has no alt text ({(img.get('src') or '')[:80]})",
                    "Give each image an alt attribute: it shows when images are blocked.",
                )
            )
            break
    for a in root.iter("a"):
        href = (a.get("href") or "").strip()
        if not href.lower().startswith(("http://", "https://")):
            continue
        shown = _domain_of(a.text_content()[:300])
        target = (urlsplit(href).hostname or "").lower()
        if shown and target and not _same_site(shown, target):
            out.append(
                Finding(
                    "link-domain-mismatch",
                    "error",
                    f"a link shows {shown} but goes to {target}",
                    "Make the link text match its destination (or use words, not a URL, as the text).",
                )
            )


def lint(raw: bytes, pm: ParsedMessage) -> list[Finding]:
    """Findings about one message, errors first.

    Args:
        raw: the message as received (size and MIME structure).
        pm: the same message parsed (headers, text, HTML, parts).
    """
    out: list[Finding] = []
    froms = [v for k, v in pm.raw_headers if k.lower() == "from"]
    if len(froms) != 1:
        out.append(
            Finding(
                "from-count",
                "error",
                f"{len(froms)} From header fields (RFC 5322 3.6 requires exactly one)",
                "Send exactly one From header with one address.",
            )
        )
    if not pm.header("Date"):
        out.append(
            Finding("no-date", "error", "no Date header (RFC 5322 3.6.1)", "Add a Date header when you send.")
        )
    if not pm.message_id:
        out.append(
            Finding(
                "no-message-id",
                "warning",
                "no Message-ID header (RFC 5322 3.6.4); Gmail may reject such mail",
                "Add a unique Message-ID, e.g. <uuid@your-sending-domain>.",
            )
        )
    if not pm.subject.strip():
        out.append(Finding("no-subject", "warning", "the subject is empty", "Write a subject line."))
    elif len(pm.subject) > 12 and pm.subject.upper() == pm.subject and any(c.isalpha() for c in pm.subject):
        out.append(
            Finding(
                "subject-caps", "warning", "the subject is all capitals", "Write the subject in normal case."
            )
        )
    defects = sorted(set(_defects(raw)))
    if defects:
        out.append(
            Finding(
                "broken-mime",
                "error",
                "MIME structure defects: " + ", ".join(d.removesuffix("Defect") for d in defects),
                "Build the message with a MIME library instead of by hand (boundaries, encodings).",
            )
        )
    if pm.html and pm.text_from_html:
        out.append(
            Finding(
                "no-text-part",
                "warning",
                "HTML without a text/plain alternative",
                "Send multipart/alternative with a text/plain part next to the HTML.",
            )
        )
    if pm.html:
        _html_findings(pm, out)
    bulk = bool(pm.header("List-Id")) or pm.header("Precedence").strip().lower() in ("bulk", "list")
    bulk = bulk or "unsubscribe" in (pm.text or "").lower()[:200_000]
    unsub = pm.header("List-Unsubscribe")
    if bulk and not unsub:
        out.append(
            Finding(
                "no-list-unsubscribe",
                "error",
                "bulk mail (List-Id, Precedence or an unsubscribe link) without List-Unsubscribe (RFC 2369)",
                "Add List-Unsubscribe: <https://...>, <mailto:...> and List-Unsubscribe-Post (RFC 8058).",
            )
        )
    elif (
        unsub
        and "https://" in unsub.lower()
        and "one-click" not in pm.header("List-Unsubscribe-Post").lower()
    ):
        out.append(
            Finding(
                "no-one-click",
                "error" if bulk else "warning",
                "List-Unsubscribe without List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058)",
                "Add List-Unsubscribe-Post: List-Unsubscribe=One-Click and accept the POST.",
            )
        )
    if len(raw) > HUGE_MESSAGE:
        out.append(
            Finding(
                "huge-message",
                "warning",
                f"the message is {len(raw) / 1048576:.1f} MB",
                "Link large files instead of attaching them; keep mail under a few MB.",
            )
        )
    for part in list(pm.inline) + list(pm.attachments):
        if part.content_type.startswith("image/") and len(part.payload) > IMAGE_LIMIT:
            out.append(
                Finding(
                    "large-image",
                    "warning",
                    f"image {part.filename or part.part_id} is {len(part.payload) // 1024} KB",
                    "Resize and compress images (under ~200 KB each; 1 MB at most).",
                )
            )
    text = (pm.subject + "\n" + (pm.text or "")).lower()[:200_000]
    hits = [p for p in SPAMMY_PHRASES if p in text]
    if hits:
        out.append(
            Finding(
                "spammy-phrases",
                "warning" if len(hits) > 2 else "info",
                "phrases content filters weigh: " + ", ".join(f'"{h}"' for h in hits[:6]),
                "Say it plainly; drop sales clichés and urgency words.",
            )
        )
    if text.count("!!!") or text.count("$$$"):
        out.append(Finding("shouting", "info", "'!!!' or '$$$' in the text", "Drop repeated ! and $."))
    out.sort(key=lambda f: SEVERITIES.index(f.severity))
    return out


def findings_from_checks(
    auth: dict[str, Any] | None, spam: dict[str, Any] | None, links: dict[str, Any] | None
) -> list[Finding]:
    """Findings from the other checks' results (None: that check did not run)."""
    out: list[Finding] = []
    if auth is not None and not auth.get("Offline"):
        spf = auth["SPF"]["Result"]
        if spf in ("fail", "softfail", "permerror"):
            out.append(
                Finding(
                    "spf-" + spf,
                    "error" if spf != "softfail" else "warning",
                    f"SPF {spf} for {auth['SPF'].get('Domain')} from {auth['SPF'].get('IP')}",
                    "Add the sending IP or service to the domain's SPF record (one v=spf1 TXT record).",
                )
            )
        elif spf == "none" and auth["SPF"].get("Domain"):
            out.append(
                Finding(
                    "spf-none",
                    "warning",
                    f"{auth['SPF']['Domain']} publishes no SPF record",
                    'Publish a TXT record "v=spf1 include:<your provider> -all".',
                )
            )
        dkims = auth["DKIM"]
        if not dkims:
            out.append(
                Finding(
                    "dkim-none", "error", "the message is not DKIM-signed", "Sign outgoing mail with DKIM."
                )
            )
        for d in dkims:
            if d["Result"] in ("fail", "permerror"):
                out.append(
                    Finding(
                        "dkim-" + d["Result"],
                        "error",
                        f"DKIM d={d['Domain']} s={d['Selector']}: {d['Reason']}",
                        "Sign after the last change to the message, with the key published at the selector.",
                    )
                )
        dmarc = auth["DMARC"]
        if dmarc["Result"] == "none" and dmarc.get("Domain"):
            out.append(
                Finding(
                    "dmarc-none",
                    "warning",
                    f"{dmarc['Domain']} publishes no DMARC record",
                    'Publish _dmarc TXT "v=DMARC1; p=none; rua=mailto:..." (then tighten the policy).',
                )
            )
        elif dmarc["Result"] == "fail":
            out.append(
                Finding(
                    "dmarc-fail",
                    "error",
                    dmarc["Reason"],
                    "Sign with DKIM d= the From domain (or send from an SPF-authorised, aligned domain).",
                )
            )
    if spam is not None and not spam.get("Error") and spam.get("IsSpam"):
        top = sorted(spam.get("Rules", []), key=lambda r: -r["Score"])[:3]
        out.append(
            Finding(
                "spamassassin",
                "error",
                f"SpamAssassin scores {spam['Score']:g}: " + ", ".join(r["Name"] for r in top),
                "Fix the top-scoring rules listed in the Spam section.",
            )
        )
    if links is not None and links.get("Errors"):
        out.append(
            Finding(
                "broken-links",
                "warning",
                f"{links['Errors']} link(s) fail or answer an error",
                "Fix or remove the links listed in the Link Check section.",
            )
        )
    return out
