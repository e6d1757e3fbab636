"""DNS for the authentication checks: a resolver that can be pointed at a given server.

SPF, DKIM and DMARC all read DNS. :class:`Dns` wraps dnspython's resolver with three
outcomes the checks need to tell apart (RFC 7208 2.6, RFC 6376 6.1.2, RFC 7489 6.6.3):

- an answer, or *no* record (NXDOMAIN / no data): ``[]``;
- a temporary failure of a server that answered (SERVFAIL, REFUSED): :class:`TempError`;
- no server answering at all (no network, nothing listening): :class:`Offline`, after
  which every further query fails at once. The checks report that as *not checked*,
  never as a failure of the message.

``server=None`` uses the system's resolver configuration (``/etc/resolv.conf``); with
``server=(ip, port)`` every query goes there over UDP, then TCP when truncated, so
tests run a local authoritative server with their own zones.

The organizational domain (RFC 7489 3.2) comes from the Public Suffix List when the
system has it (Debian's ``publicsuffix`` package), else from the last two labels.
"""

from __future__ import annotations

import os
from functools import cache

import dns.exception
import dns.flags
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

__all__ = ["PSL_PATHS", "Dns", "DnsError", "Offline", "TempError", "organizational_domain"]

PSL_PATHS = ("/usr/share/publicsuffix/public_suffix_list.dat",)


class DnsError(Exception):
    """Base of the DNS failures below."""


class TempError(DnsError):
    """A DNS server answered with a temporary failure (SERVFAIL and the like)."""


class Offline(DnsError):
    """No DNS server could be reached; the checks say "not checked"."""


class Dns:
    """Synchronous lookups with a per-query timeout (run it in a worker thread)."""

    def __init__(self, server: tuple[str, int] | None = None, *, timeout: float = 3.0) -> None:
        self._offline = False
        if server is None:
            try:
                self._resolver = dns.resolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                self._resolver = dns.resolver.Resolver(configure=False)
        else:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [server[0]]
            self._resolver.port = server[1]
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._resolver.cache = None
        self._offline = not self._resolver.nameservers
        self.queries = 0

    @classmethod
    def off(cls) -> Dns:
        """A resolver that never queries: every DNS-based check says "not checked"."""
        d = cls(("127.0.0.1", 53))
        d._offline = True
        return d

    @property
    def offline(self) -> bool:
        return self._offline

    def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        if self._offline:
            raise Offline("no DNS server answers")
        self.queries += 1
        try:
            return self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoNameservers as e:
            errors = e.kwargs.get("errors") or []
            if errors and all(isinstance(err[3], (OSError, dns.exception.Timeout)) for err in errors):
                self._offline = True
                raise Offline(f"no DNS server answers ({errors[0][3]})") from None
            raise TempError(f"DNS error looking up {rdtype} {name}") from None
        except dns.exception.Timeout:
            self._offline = True
            raise Offline("DNS timed out") from None
        except (dns.name.NameTooLong, dns.name.EmptyLabel, dns.name.LabelTooLong, UnicodeError):
            return None  # not a name that can exist

    def txt(self, name: str) -> list[str]:
        """The TXT records of ``name``, each one's strings joined (RFC 7208 3.3)."""
        answer = self._query(name, "TXT")
        if answer is None or answer.rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset]

    def addresses(self, name: str, v6: bool) -> list[str]:
        answer = self._query(name, "AAAA" if v6 else "A")
        if answer is None or answer.rrset is None:
            return []
        return [r.address for r in answer.rrset]

    def mx(self, name: str) -> list[str]:
        answer = self._query(name, "MX")
        if answer is None or answer.rrset is None:
            return []
        return [
            r.exchange.to_text(omit_final_dot=True) for r in sorted(answer.rrset, key=lambda r: r.preference)
        ]

    def ptr(self, ip: str) -> list[str]:
        answer = self._query(dns.reversename.from_address(ip).to_text(), "PTR")
        if answer is None or answer.rrset is None:
            return []
        return [r.target.to_text(omit_final_dot=True) for r in answer.rrset]


@cache
def _psl() -> tuple[frozenset[str], frozenset[str], frozenset[str]] | None:
    """(rules, wildcard parents, exceptions) of the Public Suffix List, or None."""
    for path in PSL_PATHS:
        if os.path.exists(path):
            rules, wild, exc = set(), set(), set()
            with open(path, encoding="utf-8") as f:
                for line in f:
                    rule = line.strip().lower()
                    if not rule or rule.startswith("//"):
                        continue
                    rule = rule.split()[0]
                    if rule.startswith("!"):
                        exc.add(rule[1:])
                    elif rule.startswith("*."):
                        wild.add(rule[2:])
                    else:
                        rules.add(rule)
            return frozenset(rules), frozenset(wild), frozenset(exc)
    return None


def organizational_domain(domain: str) -> str:
    """The registered domain: one label below the public suffix (RFC 7489 3.2)."""
    labels = domain.lower().rstrip(".").split(".")
    psl = _psl()
    if psl is None or len(labels) < 2:
        return ".".join(labels[-2:])
    rules, wild, exc = psl
    suffix_len = 1  # the implicit "*" rule
    for i in range(len(labels)):
        cand = ".".join(labels[i:])
        if cand in exc:
            suffix_len = len(labels) - i - 1
            break
        if cand in rules:
            suffix_len = max(suffix_len, len(labels) - i)
        if i + 1 < len(labels) and ".".join(labels[i + 1 :]) in wild:
            suffix_len = max(suffix_len, len(labels) - i)
    if suffix_len >= len(labels):
        return ".".join(labels)
    return ".".join(labels[-(suffix_len + 1) :])
