"""SPF (RFC 7208): may this IP send mail for the envelope sender's domain?

``check_host()`` of RFC 7208 section 4 on :class:`postroom.checks.dns.Dns`: the
domain's one ``v=spf1`` record, its mechanisms left to right (``all``, ``include``,
``a``, ``mx``, ``ptr``, ``ip4``, ``ip6``, ``exists``, with CIDR lengths), the
``redirect`` modifier, macros (section 7), and the limits of section 4.6.4: at most
:data:`MAX_LOOKUPS` mechanisms that query DNS and :data:`MAX_VOID` lookups that find
nothing, else ``permerror``. Results are the RFC's: ``pass``, ``fail``,
``softfail``, ``neutral``, ``none``, ``temperror``, ``permerror``; :class:`Offline`
from the resolver propagates (the caller says "not checked").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .dns import Dns, TempError

__all__ = ["MAX_LOOKUPS", "MAX_VOID", "SpfResult", "check_host", "spf_check"]

MAX_LOOKUPS = 10  # RFC 7208 4.6.4
MAX_VOID = 2  # RFC 7208 4.6.4
MAX_MX = 10  # RFC 7208 4.6.4: MX names looked up per "mx"
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class _PermError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str
    domain: str  # the domain checked (the envelope sender's, or the HELO name)
    reason: str


@dataclass(slots=True)
class _State:
    ip: str
    sender: str
    helo: str
    lookups: int = 0
    void: int = 0


def _expand(spec: str, st: _State, domain: str) -> str:
    """Macro expansion of RFC 7208 section 7 (``%{s}``, ``%{l}``, ``%{ir}``, ...)."""
    local, _, sdomain = st.sender.rpartition("@")
    addr = ipaddress.ip_address(st.ip)
    if isinstance(addr, ipaddress.IPv6Address):
        ip_dotted = ".".join(addr.exploded.replace(":", ""))
    else:
        ip_dotted = str(addr)
    values = {
        "s": st.sender,
        "l": local or "postmaster",
        "o": sdomain,
        "d": domain,
        "i": ip_dotted,
        "h": st.helo,
        "v": "ip6" if addr.version == 6 else "in-addr",
        "p": "unknown",
    }
    out = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        nxt = spec[i + 1 : i + 2]
        if nxt == "%":
            out.append("%")
        elif nxt == "_":
            out.append(" ")
        elif nxt == "-":
            out.append("%20")
        elif nxt == "{":
            end = spec.find("}", i)
            if end < 0:
                raise _PermError("unterminated macro")
            body = spec[i + 2 : end]
            if not body or body[0].lower() not in values:
                raise _PermError(f"unknown macro %{{{body}}}")
            value = values[body[0].lower()]
            rest = body[1:]
            digits = ""
            while rest[:1].isdigit():
                digits, rest = digits + rest[0], rest[1:]
            reverse = rest[:1].lower() == "r"
            delims = rest[1:] if reverse else rest
            parts = [value]
            for d in delims or ".":
                parts = [p for part in parts for p in part.split(d)]
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits) :] if int(digits) else parts
            out.append(".".join(parts))
            i = end + 1
            continue
        else:
            raise _PermError(f"bad macro at {spec[i : i + 3]!r}")
        i += 2
    return "".join(out)


def _split_cidr(arg: str) -> tuple[str, int | None, int | None]:
    """``domain/24//64`` -> (domain, 24, 64)."""
    v6 = None
    if "//" in arg:
        arg, _, v6s = arg.partition("//")
        v6 = int(v6s)
    v4 = None
    if "/" in arg:
        arg, _, v4s = arg.rpartition("/")
        v4 = int(v4s)
    return arg, v4, v6


def _in_any(ip: str, addrs: list[str], v4: int | None, v6: int | None) -> bool:
    a = ipaddress.ip_address(ip)
    plen = (v6 if v6 is not None else 128) if a.version == 6 else (v4 if v4 is not None else 32)
    for other in addrs:
        net = ipaddress.ip_network(f"{other}/{plen}", strict=False)
        if a in net:
            return True
    return False


def _count(st: _State) -> None:
    st.lookups += 1
    if st.lookups > MAX_LOOKUPS:
        raise _PermError(f"more than {MAX_LOOKUPS} DNS lookups")


def _void(st: _State, found: list[str]) -> list[str]:
    if not found:
        st.void += 1
        if st.void > MAX_VOID:
            raise _PermError(f"more than {MAX_VOID} void lookups")
    return found


def _record(dns: Dns, domain: str) -> str | None:
    records = [t for t in dns.txt(domain) if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if len(records) > 1:
        raise _PermError(f"{domain} has {len(records)} SPF records")
    return records[0] if records else None


def _check(dns: Dns, st: _State, domain: str, depth: int) -> tuple[str, str]:
    if depth > MAX_LOOKUPS:
        raise _PermError("include/redirect loop")
    record = _record(dns, domain)
    if record is None:
        return "none", f"{domain} has no SPF record"
    v6 = ":" in st.ip
    redirect = None
    for term in record.split()[1:]:
        name, eq, value = term.partition("=")
        if eq and name.replace("-", "").replace("_", "").replace(".", "").isalnum() and ":" not in name:
            if name.lower() == "redirect":
                redirect = value
            continue  # exp= and unknown modifiers are ignored (RFC 7208 6)
        qual = _QUALIFIERS.get(term[0], "")
        mech = term[1:] if qual else term
        qual = qual or "pass"
        kind, _, arg = mech.partition(":")
        kind = kind.lower()
        if "/" in kind:  # "a/24", "mx/24//64"
            kind, slash, cidr = kind.partition("/")
            arg = (arg or domain) + slash + cidr
        match = False
        if kind == "all":
            match = True
        elif kind == "ip4" or kind == "ip6":
            if (kind == "ip6") == v6:
                try:
                    match = ipaddress.ip_address(st.ip) in ipaddress.ip_network(arg, strict=False)
                except ValueError:
                    raise _PermError(f"bad network {arg!r}") from None
        elif kind in ("a", "mx"):
            _count(st)
            target, c4, c6 = _split_cidr(arg) if arg else (domain, None, None)
            target = _expand(target or domain, st, domain)
            hosts = [target] if kind == "a" else _void(st, dns.mx(target))[:MAX_MX]
            addrs: list[str] = []
            for h in hosts:
                addrs += dns.addresses(h, v6)
            if kind == "a":
                _void(st, addrs)
            match = _in_any(st.ip, addrs, c4, c6)
        elif kind == "include":
            _count(st)
            if not arg:
                raise _PermError("include without a domain")
            sub, why = _check(dns, st, _expand(arg, st, domain), depth + 1)
            if sub == "temperror":
                return "temperror", why
            if sub in ("permerror", "none"):
                raise _PermError(f"include:{arg}: {why}")
            match = sub == "pass"
        elif kind == "exists":
            _count(st)
            match = bool(_void(st, dns.addresses(_expand(arg, st, domain), False)))
        elif kind == "ptr":
            _count(st)
            target = _expand(arg, st, domain) if arg else domain
            names = dns.ptr(st.ip)[:MAX_MX]
            for n in names:
                if (n == target or n.endswith("." + target)) and st.ip in dns.addresses(n, v6):
                    match = True
                    break
        else:
            raise _PermError(f"unknown mechanism {term!r}")
        if match:
            return qual, f"{st.ip} matched {term} of {domain}"
    if redirect is not None:
        _count(st)
        target = _expand(redirect, st, domain)
        sub, why = _check(dns, st, target, depth + 1)
        if sub == "none":
            raise _PermError(f"redirect={redirect}: {why}")
        return sub, why
    return "neutral", f"no mechanism of {domain} matched {st.ip}"


def check_host(dns: Dns, ip: str, domain: str, sender: str, helo: str = "") -> tuple[str, str]:
    """RFC 7208 ``check_host(ip, domain, sender)`` -> (result, why)."""
    st = _State(ip=ip, sender=sender, helo=helo)
    try:
        return _check(dns, st, domain.rstrip(".").lower(), 0)
    except _PermError as e:
        return "permerror", str(e)
    except TempError as e:
        return "temperror", str(e)
    except ValueError as e:  # a bad CIDR length or address in the record
        return "permerror", str(e)


def spf_check(dns: Dns, ip: str, mail_from: str, helo: str) -> SpfResult:
    """SPF of the envelope sender (or of ``postmaster@HELO`` for a null sender, RFC 7208 2.4)."""
    sender = mail_from or (f"postmaster@{helo}" if helo else "")
    domain = sender.rpartition("@")[2]
    if not domain or not ip:
        return SpfResult("none", domain, "no envelope sender domain or connecting IP")
    result, why = check_host(dns, ip, domain, sender, helo)
    return SpfResult(result, domain, why)
