"""A message's IMAP search text: what SEARCH TEXT and BODY match (RFC 3501 6.4.4).

SEARCH TEXT is a case-insensitive substring match over the header and the body, BODY over
the body alone. The text they look at is derived once per message and kept (the ``text``
blob of :mod:`.persist`):

* the header part: every header field's value, unfolded, RFC 2047 words decoded, one a line;
* the body part: the decoded text of every text/* leaf, also inside message/rfc822 parts
  (transfer encoding undone, the part's charset decoded; cut at :data:`MAX_TEXT`);

both in comparison form (:func:`~postroom.protocols.imap.search.fold`: NFC, case-folded),
joined by ``\\n``. The same function derives it for the indexer, which stores it after the
text index of new mail when the server has an IMAP listener (``store.index_worker``), and
for the IMAP server, for a message the indexer has not derived (:mod:`.messages`); so a
message searches alike whichever derived it.
"""

from __future__ import annotations

from ...charsets import decode_text, decode_words
from ...protocols.imap import mime
from ...protocols.imap.fetch import Section, decode_part, decode_qp
from ...protocols.imap.search import fold

__all__ = ["MAX_TEXT", "body_text", "header_fields", "search_text"]

# Decoded text kept per message for SEARCH BODY/TEXT (longer text is cut; our choice).
MAX_TEXT = 1024 * 1024

Headers = dict[str, list[str]]


def header_fields(part: mime.Part) -> Headers:
    """Lower-case name -> unfolded values (as the ``head`` blob holds them)."""
    headers: Headers = {}
    for name, value in part.fields:
        headers.setdefault(name, []).append(mime.unfold(value).decode("utf-8", "replace").strip())
    return headers


def search_text(part: mime.Part, headers: Headers | None = None) -> tuple[str, int]:
    """(header text + "\\n" + body text, length of the header text) of the message whose
    MIME tree is ``part`` (its :func:`header_fields` if the caller has them already)."""
    fields = header_fields(part) if headers is None else headers
    body = fold(body_text(part)[:MAX_TEXT])
    head = fold("\n".join(decode_words(v) for vs in fields.values() for v in vs))
    return head + "\n" + body, len(head)


def body_text(part: mime.Part, depth: int = 0) -> str:
    """Decoded text of every text/* and message/* leaf (what SEARCH BODY looks at)."""
    if depth > mime.MAX_MIME_DEPTH:
        return ""
    if part.is_multipart:
        return "\n".join(body_text(c, depth + 1) for c in part.children)
    if part.is_message and part.message is not None:
        return body_text(part.message, depth + 1)  # the embedded body; its header is not body text
    if part.type.lower() != "text":
        return ""
    enc = (part.get("content-transfer-encoding") or b"").decode("latin-1").strip().lower()
    data = part.body
    try:
        if enc == "base64":
            data = decode_part(_Single(part), Section((1,)))
        elif enc == "quoted-printable":
            data = decode_qp(data)
    except Exception:
        data = part.body
    return decode_text(data, part.param("charset"))  # unusable charsets read as UTF-8


def _Single(part: mime.Part) -> mime.Part:
    """A stand-in top whose part 1 is ``part`` (to reuse fetch.decode_part)."""
    return mime.Part(part.raw, part.start, part.start, part.end, [], "multipart", "mixed", children=[part])
