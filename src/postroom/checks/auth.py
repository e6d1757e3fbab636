"""Authentication check: DKIM (and ARC), SPF and DMARC of a captured message.

What a receiving provider would conclude about the message, as an
``Authentication-Results``-style report (RFC 8601):

- **DKIM** (RFC 6376): every ``DKIM-Signature`` verified with dkimpy, keys read
  through :class:`postroom.checks.dns.Dns`; ``pass``, ``fail`` (the signature or body
  hash does not match), ``permerror`` (no or bad key), ``temperror``.
- **ARC** (RFC 8617): the chain's validation (``pass``, ``fail``, ``none``) by dkimpy.
- **SPF** (RFC 7208): the envelope sender (``MAIL FROM``) and the connecting IP as the
  store kept them for the message (its envelope's ``MailFrom`` and ``Peer``).
- **DMARC** (RFC 7489): the From domain's policy (``_dmarc.`` of the domain, else of
  its organizational domain), and whether a passing SPF or DKIM domain *aligns* with
  the From domain, strictly (equal) or relaxed (same organizational domain) as
  ``aspf``/``adkim`` say.

When DNS cannot be reached at all (offline, ``--checks-dns off``) the DNS-based parts
say ``not checked``: a developer's laptop on a train must not see failures that a
real receiver would not produce. A DNS server that answers with an error gives
``temperror`` as the RFCs say.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Any

import dkim

from .dns import Dns, DnsError, Offline, TempError, organizational_domain
from .spf import spf_check

__all__ = ["NOT_CHECKED", "AuthInput", "authenticate", "dmarc_record", "input_from_headers", "peer_ip"]

NOT_CHECKED = "not checked"


@dataclass(frozen=True, slots=True)
class AuthInput:
    """The message and what its SMTP transaction said (from the store's envelope)."""

    raw: bytes
    ip: str = ""  # connecting client; "" when unknown (a file on the command line)
    mail_from: str = ""
    helo: str = ""


def peer_ip(peer: str) -> str:
    """The IP of an envelope's ``Peer`` (``ip:port`` or ``[v6]:port``)."""
    p = peer.strip()
    for cand in (p, p.rpartition(":")[0].strip("[]")):
        try:
            return str(ipaddress.ip_address(cand))
        except ValueError:
            continue
    return ""


def input_from_headers(raw: bytes) -> AuthInput:
    """The envelope as the message's own headers tell it (for a file with no stored envelope).

    The sender is the ``Return-Path`` (RFC 5321 4.4: the MAIL FROM a final delivery
    recorded); the IP and HELO come from the topmost ``Received`` field, the one the
    last hop (postroom, when the file was exported from it) added:
    ``from HELO ([IP])``.
    """
    msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
    rp = str(msg.get("Return-Path", "") or "").strip().strip("<>").strip()
    received = " ".join(str(msg.get("Received", "") or "").split())[:1000]
    ip = helo = ""
    if received.lower().startswith("from "):
        helo = received[5:].split(" ", 1)[0]
        start = received.find("[")
        end = received.find("]", start + 1)
        if start >= 0 and end > start:
            literal = received[start + 1 : end].removeprefix("IPv6:")
            ip = peer_ip(literal)
    return AuthInput(raw=raw, ip=ip, mail_from=rp, helo=helo)


def _txt_func(dns: Dns) -> Any:
    """dkimpy's ``dnsfunc``: the first TXT record as bytes, None when there is none."""

    def get_txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        n = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            records = dns.txt(n.rstrip("."))
        except DnsError as e:
            raise dkim.DnsTimeoutError(str(e)) from e
        return records[0].encode("utf-8") if records else None

    return get_txt


def _tags(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";"):
        k, eq, v = part.partition("=")
        if eq:
            out[k.strip().lower()] = "".join(v.split())
    return out


def _dkim_key(dns: Dns, selector: str, domain: str) -> tuple[str, bytes | None, str]:
    """(result so far, key record, reason): the key is fetched here, not inside dkimpy,
    because dkimpy turns every key or DNS problem into a plain "did not verify"."""
    name = f"{selector}._domainkey.{domain}"
    try:
        records = dns.txt(name)
    except Offline as e:
        return NOT_CHECKED, None, str(e)
    except TempError as e:
        return "temperror", None, str(e)
    if not records:
        return "permerror", None, f"no key record at {name}"
    record = records[0].encode("utf-8")
    try:
        dkim.evaluate_pk(name.encode(), record)
    except dkim.DKIMException as e:
        return "permerror", None, f"bad key record at {name}: {e}"
    except Exception as e:  # base64 and ASN.1 errors of a malformed p=
        return "permerror", None, f"bad key record at {name}: {type(e).__name__}"
    return "", record, ""


def _dkim(raw: bytes, dns: Dns, headers: list[tuple[str, str]]) -> list[dict[str, str]]:
    sigs = [v for k, v in headers if k.lower() == "dkim-signature"]
    results = []
    for idx, value in enumerate(sigs):
        tags = _tags(value)
        entry = {"Domain": tags.get("d", ""), "Selector": tags.get("s", ""), "Result": "", "Reason": ""}
        results.append(entry)
        if not entry["Domain"] or not entry["Selector"]:
            entry["Result"], entry["Reason"] = "permerror", "signature without d= or s="
            continue
        state, record, reason = _dkim_key(dns, entry["Selector"], entry["Domain"])
        if record is None:
            entry["Result"], entry["Reason"] = state, reason
            continue

        def known_key(name: bytes | str, timeout: float = 5, record: bytes = record) -> bytes:
            return record

        try:
            ok = dkim.DKIM(raw, timeout=5).verify(idx=idx, dnsfunc=known_key)
            entry["Result"] = "pass" if ok else "fail"
            if not ok:
                entry["Reason"] = "signature does not match the signed header fields"
        except dkim.ValidationError as e:  # body hash mismatch, expired (RFC 6376 6.1.1)
            entry["Result"], entry["Reason"] = "fail", str(e).split(" (got", 1)[0]
        except dkim.DKIMException as e:
            entry["Result"], entry["Reason"] = "permerror", str(e)
    return results


def _arc(raw: bytes, dns: Dns, headers: list[tuple[str, str]]) -> dict[str, str]:
    if not any(k.lower() == "arc-seal" for k, _ in headers):
        return {"Result": "none", "Reason": "no ARC headers"}
    if dns.offline:
        return {"Result": NOT_CHECKED, "Reason": "DNS unreachable"}
    try:
        cv, _results, comment = dkim.arc_verify(raw, dnsfunc=_txt_func(dns))
    except dkim.DnsTimeoutError as e:
        return {"Result": NOT_CHECKED if isinstance(e.__cause__, Offline) else "temperror", "Reason": str(e)}
    except dkim.DKIMException as e:
        return {"Result": "fail", "Reason": str(e)}
    if dns.offline:  # dkimpy reads a failed key lookup as a failed chain
        return {"Result": NOT_CHECKED, "Reason": "DNS unreachable"}
    return {"Result": cv.decode() if isinstance(cv, bytes) else str(cv), "Reason": str(comment or "")}


def dmarc_record(dns: Dns, domain: str) -> tuple[dict[str, str] | None, str]:
    """The DMARC record for ``domain`` (its own, else its organizational domain's)."""
    org = organizational_domain(domain)
    for name in dict.fromkeys((domain, org)):
        records = [t for t in dns.txt("_dmarc." + name) if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(records) == 1:
            return _tags(records[0]), name
    return None, org


def _aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def _dmarc(dns: Dns, from_domain: str, spf: dict[str, str], dkims: list[dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {"Result": "none", "Domain": from_domain, "Policy": "", "Reason": ""}
    if not from_domain:
        out.update(Result="permerror", Reason="no single From address (RFC 7489 6.6.1)")
        return out
    if dns.offline:
        out.update(Result=NOT_CHECKED, Reason="DNS unreachable")
        return out
    try:
        record, where = dmarc_record(dns, from_domain)
    except Offline as e:
        out.update(Result=NOT_CHECKED, Reason=str(e))
        return out
    except TempError as e:
        out.update(Result="temperror", Reason=str(e))
        return out
    if record is None:
        out["Reason"] = f"no DMARC record for {from_domain} or {where}"
        return out
    aspf, adkim = record.get("aspf", "r"), record.get("adkim", "r")
    policy = record.get("p", "none")
    if where != from_domain.lower():
        policy = record.get("sp", policy)  # a subdomain of the record's domain
    spf_ok = spf.get("Result") == "pass" and _aligned(spf.get("Domain", ""), from_domain, aspf)
    dkim_ok = [
        d["Domain"] for d in dkims if d["Result"] == "pass" and _aligned(d["Domain"], from_domain, adkim)
    ]
    out.update(
        Policy=policy,
        Record=where,
        Alignment={
            "SPF": "strict" if aspf == "s" else "relaxed",
            "DKIM": "strict" if adkim == "s" else "relaxed",
        },
        SPFAligned=spf_ok,
        DKIMAligned=bool(dkim_ok),
    )
    if spf_ok or dkim_ok:
        out.update(Result="pass", Reason="aligned " + ("SPF" if spf_ok else f"DKIM d={dkim_ok[0]}"))
    else:
        out.update(
            Result="fail", Reason=f"neither SPF nor DKIM passes aligned with {from_domain}; policy {policy}"
        )
    return out


def _from_domain(headers: list[tuple[str, str]]) -> str:
    values = [v for k, v in headers if k.lower() == "from"]
    if len(values) != 1:
        return ""
    addrs = [a for _, a in getaddresses(values) if a]
    if len(addrs) != 1 or "@" not in addrs[0]:
        return ""
    try:
        return Address(addr_spec=addrs[0]).domain.lower()
    except (ValueError, IndexError):
        return addrs[0].rpartition("@")[2].lower()


def authenticate(inp: AuthInput, dns: Dns | None, *, hostname: str = "postroom") -> dict[str, Any]:
    """SPF, DKIM, ARC and DMARC of one message, and an Authentication-Results line.

    Args:
        inp: the message and its envelope.
        dns: the resolver; None means DNS is off (everything DNS-based is not checked).
        hostname: the authserv-id of the Authentication-Results line.
    """
    msg = BytesHeaderParser(policy=default_policy).parsebytes(inp.raw)
    headers = [(k, str(v)) for k, v in msg.raw_items()]
    if dns is None:
        dns = Dns.off()
    if not inp.ip:
        spf = {"Result": NOT_CHECKED, "Domain": "", "Reason": "connecting IP unknown"}
    else:
        try:
            r = spf_check(dns, inp.ip, inp.mail_from, inp.helo)
            spf = {"Result": r.result, "Domain": r.domain, "Reason": r.reason}
        except Offline as e:
            spf = {"Result": NOT_CHECKED, "Domain": inp.mail_from.rpartition("@")[2], "Reason": str(e)}
    spf["IP"], spf["MailFrom"] = inp.ip, inp.mail_from
    dkims = _dkim(inp.raw, dns, headers)
    arc = _arc(inp.raw, dns, headers)
    from_domain = _from_domain(headers)
    dmarc = _dmarc(dns, from_domain, spf, dkims)
    parts = [f"spf={spf['Result'].replace(' ', '-')} smtp.mailfrom={inp.mail_from or '<>'}"]
    parts += [
        f"dkim={d['Result'].replace(' ', '-')} header.d={d['Domain']} header.s={d['Selector']}" for d in dkims
    ]
    if not dkims:
        parts.append("dkim=none")
    parts.append(f"arc={arc['Result'].replace(' ', '-')}")
    parts.append(f"dmarc={dmarc['Result'].replace(' ', '-')} header.from={from_domain}")
    return {
        "Offline": dns.offline,
        "SPF": spf,
        "DKIM": dkims,
        "ARC": arc,
        "DMARC": dmarc,
        "AuthenticationResults": f"{hostname}; " + ";\r\n\t".join(parts),
    }
