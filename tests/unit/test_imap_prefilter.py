"""SEARCH TEXT/BODY's prefilter on a message's bytes (protocols/imap/prefilter.py): it rules a
message out only when the search text the IMAP server derives (servers/imap/messages.py)
does not hold the needle, and does rule out plain messages that lack it."""

from __future__ import annotations

import random

from postroom.charsets import decode_words
from postroom.protocols.imap import mime
from postroom.protocols.imap.prefilter import raw_excludes, required_needles
from postroom.protocols.imap.search import Key, fold
from postroom.servers.imap.messages import body_text, header_fields

PLAIN = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Quarterly Report\r\n"
    b"X-Note: folded zanzi\r\n bar here\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello Bob,\r\nthe Okapi ships on friday.\r\nline two\r\n"
)
CASES = [
    PLAIN,
    PLAIN.replace(b"\r\n", b"\n"),  # bare LF line ends
    PLAIN.replace(b"charset=utf-8", b'charset="US-ASCII"'),
    PLAIN.replace(b"charset=utf-8", b"charset=utf-7").replace(b"Okapi", b"+AE8-kapi"),  # UTF-7 decodes
    PLAIN.replace(b"charset=utf-8", b"charset*=utf-7''"),
    PLAIN.replace(b"charset=utf-8", b"charset=(c)utf-8"),
    PLAIN.replace(b"charset=utf-8", b"charset=cp037"),
    PLAIN.replace(b"Subject: Quarterly Report", b"Subject: =?utf-8?q?Zanzibar_caf=C3=A9?="),
    PLAIN.replace(b"text/plain; charset=utf-8", b"text/plain\r\nContent-Transfer-Encoding: quoted-printable")
    + b"soft=\r\nbreak zan=7Aibar\r\n",
    b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\nemFuemliYXIgaW4gYmFzZTY0\r\n",
    PLAIN.replace(b"Okapi", "Ökapi".encode()),  # not ASCII
    b"From: a@b\r\nSubject: multi\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\npreamble zebra\r\n"
    b"--x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nfirst PART\r\n--x\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body giraffe\r\n--x\r\n"
    b"Content-Type: text/html; charset=windows-1252\r\n\r\n<p>Third</p>\r\n--x--\r\nepilogue\r\n",
    b"Subject: no body",
    b"Subject: unterminated\r\nContinued-Without-Colon\r\nX: y\r\n\r\nbody",
]


def search_text(raw: bytes) -> tuple[str, str]:
    """(full text, body text) as MessageCache.texts_many derives them."""
    part = mime.parse(raw)
    body = fold(body_text(part))
    head = fold("\n".join(decode_words(v) for vs in header_fields(part).values() for v in vs))
    return head + "\n" + body, body


def needles_of(text: str, rng: random.Random) -> list[str]:
    out = ["zanzibar", "okapi", "quarterly report", "zanzi bar", "ss", "first part", "k", "missing-word"]
    for _ in range(60):
        i = rng.randrange(len(text))
        out.append(text[i : i + rng.randint(1, 12)])
    return [n for n in out if n]


def test_a_message_is_ruled_out_only_when_its_search_text_lacks_the_needle() -> None:
    rng = random.Random(5)
    ruled_out = 0
    for raw in CASES:
        full, body = search_text(raw)
        for needle in needles_of(full, rng):
            for op, text in (("TEXT", full), ("BODY", body)):
                for key in (Key(op, needle), Key("AND", children=(Key("ALL"), Key(op, needle)))):
                    excludes = raw_excludes(key)
                    if excludes is not None and excludes(raw):
                        assert needle not in text, (raw[:40], op, needle)
                        ruled_out += 1
    assert ruled_out > 100  # plain messages without the needle are ruled out


def test_what_is_not_plain_is_never_ruled_out() -> None:
    """Messages whose bytes are not their text (charsets, encodings, encoded words, non-ASCII)."""
    for raw in CASES[3:11]:
        excludes = raw_excludes(Key("TEXT", "needle-nowhere"))
        assert excludes is not None and not excludes(raw), raw[:60]
    plain = raw_excludes(Key("TEXT", "needle-nowhere"))
    assert plain is not None and plain(CASES[0]) and plain(CASES[1]) and plain(CASES[2])
    # the needle across a folded header line is found, not ruled out
    folded = raw_excludes(Key("TEXT", "zanzi bar"))
    assert folded is not None and not folded(PLAIN)


def test_only_required_needles_are_looked_for() -> None:
    assert required_needles(Key("OR", children=(Key("TEXT", "a"), Key("TEXT", "b")))) == []
    assert required_needles(Key("NOT", children=(Key("TEXT", "a"),))) == []
    assert required_needles(Key("AND", children=(Key("TEXT", "a"), Key("BODY", ""), Key("BODY", "c")))) == [
        "a",
        "c",
    ]
    assert raw_excludes(Key("TEXT", "")) is None
    assert raw_excludes(Key("TEXT", "café")) is None  # not ASCII: decoded text only
    assert raw_excludes(Key("TEXT", "a\nb")) is None
