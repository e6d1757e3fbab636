"""Where mail for a domain goes (RFC 5321 section 5.1), for relays with ``mx: true``.

The MX records in preference order (equal preferences shuffled, as the RFC asks); no MX
record means the domain itself (its address records); a "null MX" (RFC 7505: one MX of
``.``) means the domain takes no mail. NXDOMAIN is permanent; a resolver failure or timeout
is temporary (the row is retried).
"""

from __future__ import annotations

import random

import dns.exception
import dns.resolver

__all__ = ["MxError", "addresses", "mail_hosts"]

# Seconds for one MX lookup (all tries) before it counts as a temporary failure.
LIFETIME = 10.0


class MxError(Exception):
    """No host to deliver to; ``code`` is the SMTP-style reply this stands for (5xx final, 4xx retry)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code


def _resolver(server: tuple[str, int] | None) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=server is None)
    if server is not None:
        resolver.nameservers = [server[0]]
        resolver.port = server[1]
    resolver.lifetime = LIFETIME
    return resolver


def addresses(host: str, server: tuple[str, int] | None = None) -> list[str]:
    """The IPv4 then IPv6 addresses of ``host`` (empty when it has none)."""
    resolver = _resolver(server)
    out: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            out += [str(r) for r in resolver.resolve(host, rdtype)]
        except dns.exception.DNSException:
            continue
    return out


def mail_hosts(domain: str, server: tuple[str, int] | None = None) -> list[str]:
    """The hosts to try for ``domain``, best first.

    Raises:
        MxError: 556 null MX, 550 no such domain (permanent); 451 lookup failed (temporary).
    """
    resolver = _resolver(server)
    try:
        answer = resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise MxError(550, f"5.1.2 domain {domain} does not exist") from None
    except dns.resolver.NoAnswer:
        return [domain]  # RFC 5321 5.1: the domain itself, as if it had MX 0
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.exception.DNSException) as e:
        raise MxError(451, f"4.4.3 MX lookup for {domain} failed: {e.__class__.__name__}") from None
    records = sorted(((int(r.preference), str(r.exchange).rstrip(".")) for r in answer), key=lambda t: t[0])
    if len(records) == 1 and records[0][1] == "":
        raise MxError(556, f"5.1.10 {domain} accepts no mail (null MX, RFC 7505)")
    out: list[str] = []
    for pref in sorted({p for p, _ in records}):
        same = [h for p, h in records if p == pref and h]
        random.shuffle(same)
        out += same
    return out
