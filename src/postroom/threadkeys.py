"""The header keys threading compares: Message-IDs and base subjects.

* :func:`parse_message_ids` reads Message-ID, In-Reply-To and References values the way
  Dovecot does (RFC 5322 section 3.6.4 msg-id, leniently), so that postroom's IMAP THREAD
  answers agree with Dovecot's for the same headers.
* :func:`base_subject` is RFC 5256 section 2.1 (base subject extraction), optionally
  extended with the localized reply/forward prefixes real clients send.
* :func:`decode_subject` decodes RFC 2047 encoded words.

Pure: no I/O. Nothing here raises for any input string (malformed ids are skipped,
undecodable words stay as they are), so there is no error hierarchy of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from .charsets import decode_words

__all__ = [
    "LOCALIZED_FORWARD_PREFIXES",
    "LOCALIZED_REPLY_PREFIXES",
    "BaseSubject",
    "base_subject",
    "decode_subject",
    "parse_message_ids",
    "subject_key",
]

# -- Message-IDs ---------------------------------------------------------------------------

_WS_RE = re.compile(r"[ \t\r\n]+")
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


def _skip_cfws(s: str, i: int) -> int:
    """Skip folding white space and (nested) comments (RFC 5322 section 3.2.2)."""
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                c = s[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def _dot_atom(s: str, i: int) -> tuple[str, int] | None:
    """A dot-atom starting at ``i`` (CFWS around the dots tolerated, as Dovecot does)."""
    n, out = len(s), []
    while True:
        j = i
        while j < n and s[j] in _ATEXT:
            j += 1
        if j == i:
            return None
        out.append(s[i:j])
        k = _skip_cfws(s, j)
        if k < n and s[k] == ".":
            out.append(".")
            i = _skip_cfws(s, k + 1)
            continue
        return "".join(out), k


def _slow_msgid(s: str, i: int) -> tuple[str, int] | None:
    """Tokenized ``id-left "@" id-right ">"`` from just after a ``<`` (quotes, comments)."""
    i = _skip_cfws(s, i)
    if i < len(s) and s[i] == '"':
        j, left = i + 1, []
        while j < len(s) and s[j] != '"':
            if s[j] == "\\" and j + 1 < len(s):
                j += 1
            left.append(s[j])
            j += 1
        if j >= len(s):
            return None
        local, i = "".join(left), _skip_cfws(s, j + 1)
    else:
        got = _dot_atom(s, i)
        if got is None:
            return None
        local, i = got
    if i >= len(s) or s[i] != "@":
        return None
    got = _dot_atom(s, _skip_cfws(s, i + 1))
    if got is None:
        return None
    domain, i = got
    if i >= len(s) or s[i] != ">":
        return None
    return f"{local}@{domain}", i + 1


def parse_message_ids(value: str | None) -> list[str]:
    """Every valid ``<id-left@id-right>`` in a Message-ID/In-Reply-To/References value.

    Ids are returned without the angle brackets and without white space, compared
    byte-for-byte (case matters). Text between ids is skipped and ids without an ``@``
    are dropped, the way Dovecot reads these headers (so IMAP THREAD answers agree).
    A bare ``id@host`` with no brackets at all is accepted as one id.

    Args:
        value: the (unfolded or folded) header value, or None.
    Returns:
        The ids in order of appearance (duplicates kept).
    """
    if not value:
        return []
    if "<" not in value:
        bare = value.strip()
        return [bare] if "@" in bare and not _WS_RE.search(bare) and ">" not in bare else []
    ids: list[str] = []
    pos, n = 0, len(value)
    while True:
        lt = value.find("<", pos)
        if lt < 0:
            return ids
        start = j = lt + 1
        found_at = False
        while j < n:
            c = value[j]
            if c >= "A":
                j += 1
                continue
            if c == "@":
                found_at = True
            elif c in '>"(':
                break
            j += 1
        if j >= n:
            return ids
        if value[j] == ">":
            pos = j + 1
            if found_at:
                ids.append(_WS_RE.sub("", value[start:j]))
            continue
        slow = _slow_msgid(value, start)
        if slow is None:
            pos = start
        else:
            ids.append(slow[0])
            pos = slow[1]


# -- base subject (RFC 5256 section 2.1) -----------------------------------------------------

# Localized reply and forward words, matched case-insensitively in place of RFC 5256's
# "re" / "fw" / "fwd" when ``localized=True``. Sources: the "Abbreviations in other
# languages" table of Wikipedia's "List of email subject abbreviations"; the prefixes the
# localized editions of Microsoft Outlook write (e.g. zh-CN "答复:"/"转发:", zh-TW
# "回覆:"/"轉寄:", ko "회신:"/"전달:", pl "Odp:"/"PD:", pt-BR "RES:"/"ENC:", es "RV:",
# fr "TR:", it "Rif:"); Thunderbird's ``mailnews.localizedRe`` preference, which exists
# because these prefixes otherwise break its subject threading. Single letters (Italian
# Outlook's "R:" / "I:") are left out on purpose: "R: plotting tips" is a real subject.
LOCALIZED_REPLY_PREFIXES: tuple[str, ...] = (
    "AW",  # de: Antwort
    "SV",  # da/no/sv/is: Svar
    "VS",  # fi: Vastaus (also da/no "Videresendt", a forward)
    "Antw",  # nl: Antwoord
    "Odp",  # pl/cs/sk: Odpowiedź / Odpověď
    "Rif",  # it: Riferimento
    "Réf",  # fr: Référence
    "Ref",  # fr, typed without the accent
    "RES",  # pt-BR: Resposta
    "YNT",  # tr: Yanıt
    "Atb",  # lv: Atbilde
    "ATS",  # lt: Atsakymas
    "Vá",  # hu: Válasz
    "ΑΠ",  # el: Απάντηση
    "ΣΧΕΤ",  # el: Σχετικό
    "השב",  # he
    "תשובה",  # he
    "رد",  # ar
    "回复",  # zh-CN (Foxmail, Windows Mail)
    "答复",  # zh-CN (Outlook)
    "回覆",  # zh-TW
    "答覆",  # zh-TW (Outlook)
    "회신",  # ko (Outlook)
    "답장",  # ko
    "返信",  # ja
)
LOCALIZED_FORWARD_PREFIXES: tuple[str, ...] = (
    "WG",  # de: Weitergeleitet
    "VB",  # sv: Vidarebefordrat
    "VL",  # fi: Välitetty
    "Doorst",  # nl: Doorsturen
    "PD",  # pl: Przekazanie dalej
    "TR",  # fr: Transféré
    "RV",  # es: Reenviado
    "ENC",  # pt: Encaminhado
    "İLT",  # tr: İlet
    "ILT",  # tr, typed without the dot
    "Pārs",  # lv: Pārsūtīt
    "PRSN",  # lt: Persiųsta
    "Tov",  # hu: Továbbítás
    "FS",  # is: Framsent
    "ΠΡΘ",  # el: Προωθημένο
    "הועבר",  # he
    "转发",  # zh-CN
    "轉寄",  # zh-TW
    "轉發",  # zh-TW
    "전달",  # ko (Outlook)
    "転送",  # ja
)

_BLOB = r"\[[^\[\]]*\] ?"  # subj-blob after white space packing: "[" *BLOBCHAR "]" *WSP
_RFC_WORDS = ("FWD", "FW", "RE")  # subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"


def _leader_re(words: Iterable[str], extended: bool) -> re.Pattern[str]:
    alts = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    # Localized clients also write "Atb.:" and counters "Re(2):" / "Re^2:" (the RFC's
    # "Re[2]:" is its subj-blob already).
    tail = r"\.? ?(?:" + _BLOB + r"|\(\d+\) ?|\^\d+ ?)?[:：]" if extended else r" ?(?:" + _BLOB + r")?:"
    # Blobs before the word are skipped one at a time by _base_subject (its step 5), not by
    # a leading "(?:blob)*" here: matched at each position that left quadratic work.
    return re.compile(r"(?:" + alts + r")" + tail, re.IGNORECASE)


_LEADER_RFC = _leader_re(_RFC_WORDS, extended=False)
_LEADER_LOCALIZED = _leader_re(
    _RFC_WORDS + LOCALIZED_REPLY_PREFIXES + LOCALIZED_FORWARD_PREFIXES, extended=True
)
_BLOB_RE = re.compile(_BLOB)


@dataclass(frozen=True, slots=True)
class BaseSubject:
    """A subject reduced to what identifies its conversation."""

    text: str  # for display: prefixes and trailers removed, white space packed
    key: str  # for comparison: equal keys mean the same base subject ("" = none)
    is_reply_or_forward: bool  # a re/fwd leader, "(fwd)" trailer or "[fwd: ...]" was removed


def _ascii_fold_char(c: str) -> str:
    d = unicodedata.normalize("NFKD", c)
    return d if d.isascii() else c


def _prenormalize(s: str) -> str:
    """Step (1) after RFC 2047 decoding: compatibility forms of ASCII (fullwidth letters and
    colons, no-break and ideographic spaces) become ASCII, then white space runs become
    one space. Dovecot decomposes the same way before it looks for "RE" and ":"."""
    if not s.isascii():
        s = "".join(c if c.isascii() else _ascii_fold_char(c) for c in s)
    return _WS_RE.sub(" ", s)


def _simple_title(c: str) -> str:
    t = c.title()
    return t if len(t) == 1 else c


def subject_key(text: str) -> str:
    """The comparison form of a base subject: decomposed, case-folded to titlecase."""
    if text.isascii():
        return text.upper()
    return "".join(_simple_title(c) for c in unicodedata.normalize("NFKD", text))


def base_subject(subject: str | None, *, localized: bool = True) -> BaseSubject:
    """Extract the base subject (RFC 5256 section 2.1).

    Args:
        subject: the decoded Subject (RFC 2047 words already decoded), or None.
        localized: also strip localized prefixes (:data:`LOCALIZED_REPLY_PREFIXES`,
            :data:`LOCALIZED_FORWARD_PREFIXES`, counters like ``Re(2):``, the fullwidth
            colon). False gives exactly the RFC (and Dovecot) base subject.
    Returns:
        The :class:`BaseSubject`.
    """
    if not subject:
        return _EMPTY
    return _base_subject(subject, localized)


_EMPTY = BaseSubject("", "", False)


# The subjects of one conversation repeat ("Re: ..." again and again): a small cache
# makes ingest-time threading cheaper without changing any answer (the function is pure).
@lru_cache(maxsize=4096)
def _base_subject(subject: str, localized: bool) -> BaseSubject:
    s = _prenormalize(subject)
    leader = _LEADER_LOCALIZED if localized else _LEADER_RFC
    pos, end, reply = 0, len(s), False
    while True:
        # (2) remove trailing subj-trailer = "(fwd)" / WSP, repeatedly
        while end > pos:
            if s[end - 1] == " ":
                end -= 1
            elif end - 5 >= pos and s[end - 5 : end].upper() == "(FWD)":
                end -= 5
                reply = True
            else:
                break
        # (3)-(5) remove subj-leader prefixes and (when something remains) subj-blobs
        found = True
        while found:
            found = False
            if pos < end and s[pos] == " ":
                pos += 1
                found = True
            m = leader.match(s, pos, end)
            if m:
                pos, reply, found = m.end(), True, True
            m = _BLOB_RE.match(s, pos, end)
            if m and m.end() < end:
                pos, found = m.end(), True
        # (6) unwrap "[fwd: ...]" and start over from (2)
        if end - pos >= 6 and s[pos : pos + 5].upper() == "[FWD:" and s[end - 1] == "]":
            pos, end, reply = pos + 5, end - 1, True
            continue
        break
    text = s[pos:end]
    return BaseSubject(text, subject_key(text), reply)


def decode_subject(value: str | None) -> str:
    """Decode RFC 2047 encoded words in a Subject value; undecodable text stays as is."""
    if not value:
        return ""
    return decode_words(value)
