"""Unit tests of RFC points Dovecot's imaptest found wrong (issue 19), byte-exact where the
RFC is precise: atoms with "[", literal8 content without NUL, quoted-printable decoding,
and the i;ascii-casemap order of SORT SUBJECT."""

from __future__ import annotations

import base64

import pytest

from postroom.protocols.imap import mime
from postroom.protocols.imap.args import Args
from postroom.protocols.imap.decoder import Atom, tokenize
from postroom.protocols.imap.errors import No
from postroom.protocols.imap.fetch import Section, decode_part, decode_qp, section_content
from postroom.protocols.imap.sort import base_subject


@pytest.mark.parametrize("name", [b"foo[bar", b"a[b", b"!#$'+,-.0123456789:;<=>?@^_`|[}"])
def test_an_unterminated_bracket_is_an_atom_character(name: bytes) -> None:
    # cause 4: "[" is not an atom-special (RFC 3501 section 9)
    assert tokenize([name + b" x"]) == (Atom(name.decode()), Atom("x"))
    # while BODY[...] still spans spaces
    assert tokenize([b"BODY[HEADER.FIELDS (A B)] x"]) == (Atom("BODY[HEADER.FIELDS (A B)]"), Atom("x"))


def test_invalid_modified_utf7_mailbox_is_no_not_bad() -> None:
    with pytest.raises(No, match="unterminated '&'"):
        Args(list(tokenize([b'"&Jjo"']))).mailbox()


def test_a_nul_part_is_stored_base64_and_binary_returns_its_octets() -> None:
    # cause 6: no NUL may go out in a plain literal (RFC 3501 4.3), BINARY[] still decodes
    body = b"\x01-\x00\xff\r\n"
    raw = (
        b"From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n"
        b"hi\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        + body
        + b"\r\n--x--\r\n"
    )
    out = mime.without_nul(raw)
    assert b"\0" not in out
    top = mime.parse(out)
    assert section_content(top, Section((2,), "MIME")) == (
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    assert section_content(top, Section((2,))) == base64.encodebytes(body).replace(b"\n", b"\r\n")
    assert decode_part(top, Section((2,))) == body
    assert section_content(top, Section((1,))) == b"hi"
    assert mime.without_nul(b"Subject: x\r\n\r\nplain\r\n") == b"Subject: x\r\n\r\nplain\r\n"


def test_quoted_printable_trailing_space_and_soft_breaks() -> None:
    # cause 7 (RFC 2045 6.7 rule 3): trailing white space is removed, "= " ends a line softly
    qp = (
        b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
        b"foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n"
    )
    assert (
        decode_qp(qp)
        == b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
    )
    assert decode_qp(b"a=3D=3d=ZZ=\r\n") == b"a===ZZ"  # an invalid sequence stays as it is


def test_sort_subject_uses_ascii_casemap() -> None:
    # cause 11 (RFC 5256 section 3, RFC 4790 9.2): a-z compare as A-Z, "_" sorts after "Z"
    subjects = ["a", "C", "b", "_", "[xyz]", "Re: [FWD: c]"]
    ordered = sorted(subjects, key=base_subject)
    assert ordered == ["a", "b", "C", "Re: [FWD: c]", "[xyz]", "_"]
    assert base_subject("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)") == "B"
    assert base_subject("é") == "é"  # only ASCII letters are mapped
