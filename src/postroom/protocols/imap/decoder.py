"""IMAP command framing and tokenizing (sans-IO): bytes in, commands out.

A client command is one line, except that it may carry literals (RFC 3501 section 4.3):
``{n}`` (synchronizing: the server answers ``+`` before the client sends the octets),
``{n+}`` (non-synchronizing, RFC 7888 LITERAL+) and ``~{n}`` (binary, RFC 3516). The
:class:`Decoder` assembles a whole command across literals and then tokenizes it into
:class:`Atom`, :class:`String` and :class:`Group` tokens; the grammar of each command's
arguments lives in :mod:`.commands`.

Usage, in the style of h11::

    d = Decoder()
    d.receive_data(chunk)
    while (ev := d.next_event()) is not NEED_DATA:
        ...  # Command, Continue (send "+ ..."), or Rejected (send tagged BAD)

Errors (the whole tree is drawn in :mod:`.errors`)::

    ParseError    malformed arguments: reply tagged BAD
    LimitError    a named limit was exceeded: reply tagged BAD

The decoder itself never raises on bad input: framing problems become a
:class:`Rejected` event so that the connection survives and the client gets a BAD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import ImapError, LimitError, ParseError

__all__ = [
    "MAX_COMMAND_SIZE",
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_LITERAL",
    "MAX_NONSYNC_MINUS",
    "NEED_DATA",
    "Atom",
    "Command",
    "Continue",
    "Decoder",
    "Group",
    "ImapError",
    "LimitError",
    "ParseError",
    "Rejected",
    "String",
    "Token",
    "parse_command",
    "parse_line",
    "tokenize",
]

# RFC 7162 section 4 asks servers to accept command lines of at least 8192 octets;
# Dovecot's imap_max_line_length is 64 KiB. One line (between literals) may not exceed this.
MAX_LINE: Final = 64 * 1024
# A whole non-APPEND command (lines plus literals). RFC 3501 sets no limit; 1 MiB is
# plenty for SEARCH with literals and keeps one client from pinning memory.
MAX_COMMAND_SIZE: Final = 1024 * 1024
# APPEND literal ceiling (the server may pass a smaller configured maximum). The
# project promises that a 50 MB message can be appended (issue 5).
MAX_LITERAL: Final = 64 * 1024 * 1024
# RFC 7888 section 5 (LITERAL-): non-synchronizing literals are at most 4096 octets.
MAX_NONSYNC_MINUS: Final = 4096
# Parenthesis nesting (SEARCH criteria, BODYSTRUCTURE-like lists). RFC 3501 sets none;
# 32 levels covers every real client and bounds recursion.
MAX_DEPTH: Final = 32


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom (also NIL, numbers, sequence sets, flags and ``BODY[...]<..>``)."""

    value: str

    def upper(self) -> str:
        return self.value.upper()


@dataclass(frozen=True, slots=True)
class String:
    """A quoted string or a literal, as raw bytes."""

    value: bytes
    literal: bool = False
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A parenthesized list."""

    items: tuple[Token, ...]


Token = Atom | String | Group


@dataclass(frozen=True, slots=True)
class Command:
    """A complete command: ``tag name args``; ``name`` is upper-cased."""

    tag: str
    name: str
    args: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class Continue:
    """The client waits for a continuation request before sending a literal."""

    tag: str
    size: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command that cannot be parsed; reply ``tag BAD text`` (tag ``*`` if unknown)."""

    tag: str
    text: str


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()

Event = Command | Continue | Rejected

_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\Z")
_TAG_CHARS = re.compile(rb"[^\x00-\x20(){%*\"\\\]+\x7f-\xff]+")


class Decoder:
    """Assemble commands from a byte stream (see the module docstring)."""

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_command: int = MAX_COMMAND_SIZE,
        max_literal: int = MAX_LITERAL,
        literal_minus: bool = False,
    ) -> None:
        self.max_line = max_line
        self.max_command = max_command
        self.max_literal = max_literal
        self.literal_minus = literal_minus
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for LF
        self._segments: list[bytes] = []  # text, literal, text, literal, ... text
        self._size = 0
        self._literal_left = 0
        self._literal_parts: list[bytes] = []
        self._skip_literal = False
        self._discard_line = False  # drop bytes up to the next LF (overlong line)
        self._failed: str | None = None  # the command is being skipped; reply BAD at its end
        self._tag = "*"
        self._pending: list[Event] = []

    # -- input ---------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Octets received and not yet consumed."""
        return len(self._buf)

    @property
    def skipping(self) -> bool:
        """True while the rest of a command that broke a limit (an over-limit
        non-synchronizing literal, an overlong line) is being read and dropped."""
        return self._failed is not None

    def in_command(self) -> bool:
        """True while a command is partly received (between its first line and its end)."""
        return bool(self._segments) or self._literal_left > 0

    def next_line(self) -> bytes | None:
        """Take one raw line (without CRLF) for IDLE's DONE or an AUTHENTICATE response.

        Returns None if no complete line is buffered.
        """
        idx = self._buf.find(b"\n")
        if idx < 0:
            if len(self._buf) > self.max_line:
                del self._buf[:]
                return b""  # an overlong response line is as good as a wrong one
            return None
        line = bytes(self._buf[:idx])
        del self._buf[: idx + 1]
        self._scan = 0
        return line[:-1] if line.endswith(b"\r") else line

    # -- events ----------------------------------------------------------------------
    def next_event(self) -> Event | _NeedData:
        """The next complete event, or NEED_DATA."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._literal_left:
                if not self._take_literal():
                    return NEED_DATA
                continue
            idx = self._buf.find(b"\n", self._scan)
            if idx < 0:
                self._scan = len(self._buf)
                if len(self._buf) > self.max_line:
                    if not self._discard_line:
                        if not self._segments:
                            self._tag = _guess_tag(bytes(self._buf[:200]))
                        self._fail(f"line too long (limit {self.max_line} octets)")
                    self._discard_line = True
                    del self._buf[:]
                    self._scan = 0
                return NEED_DATA
            line = bytes(self._buf[:idx])
            del self._buf[: idx + 1]
            self._scan = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._discard_line:
                self._discard_line = False
                self._finish()
                continue
            if len(line) > self.max_line:
                self._fail(f"line too long (limit {self.max_line} octets)")
                self._finish()
                continue
            self._on_line(line)

    # -- internals -----------------------------------------------------------------------
    def _fail(self, text: str) -> None:
        if self._failed is None:
            self._failed = text

    def _on_line(self, line: bytes) -> None:
        first = not self._segments
        if first:
            if not line.endswith(b"}"):
                # a whole command on one line (most of them): no literal, nothing pending
                if line.strip():  # an empty line between commands is ignored, as most servers do
                    try:
                        self._pending.append(parse_line(line))
                    except ImapError as e:
                        self._pending.append(Rejected(_guess_tag(line), str(e)))
                return
            self._tag = _guess_tag(line)
        self._size += len(line) + 2
        m = _LITERAL_AT_END.search(line)
        if m is None:
            self._segments.append(line)
            self._finish()
            return
        size = int(m.group(2))
        nonsync = bool(m.group(3))
        limit = self.max_command
        name = _command_name(self._segments[0] if self._segments else line)
        if name == b"APPEND":  # only APPEND carries messages
            limit = max(self.max_literal, self.max_command)
        too_big = size > limit or self._size + size > limit + self.max_command
        if nonsync and self.literal_minus and size > MAX_NONSYNC_MINUS:
            too_big = True
        if too_big and not nonsync:
            # RFC 7888 section 4 / RFC 3501 section 7.5: refuse before the client sends it;
            # the client will not send the literal, so the command ends here.
            self._segments.clear()
            self._size = 0
            self._failed = None
            self._pending.append(Rejected(self._tag, f"[TOOBIG] literal too large (limit {limit} octets)"))
            return
        if too_big:
            self._fail(f"[TOOBIG] literal too large (limit {limit} octets)")
        self._segments.append(line)
        self._literal_left = size
        self._skip_literal = self._failed is not None
        self._size += size if not self._skip_literal else 0
        if not nonsync and self._failed is None:
            self._pending.append(Continue(self._tag, size))
        if size == 0:
            self._segments.append(b"")

    def _take_literal(self) -> bool:
        n = min(self._literal_left, len(self._buf))
        if n == 0:
            return False
        if not self._skip_literal:
            self._literal_parts.append(bytes(self._buf[:n]))
        del self._buf[:n]
        self._literal_left -= n
        if self._literal_left:
            return False
        self._segments.append(b"".join(self._literal_parts))
        self._literal_parts = []
        return True

    def _finish(self) -> None:
        segments, self._segments = self._segments, []
        self._size = 0
        failed, self._failed = self._failed, None
        tag = self._tag
        if failed is not None:
            self._pending.append(Rejected(tag, failed))
            return
        if not segments:
            return
        try:
            self._pending.append(parse_line(segments[0]) if len(segments) == 1 else parse_command(segments))
        except ImapError as e:
            self._pending.append(Rejected(tag, str(e)))


def _guess_tag(line: bytes) -> str:
    m = _TAG_CHARS.match(line)
    if m is None or len(line) == m.end() or line[m.end()] != 0x20:
        return "*"
    return m.group().decode("ascii")


def _command_name(line: bytes) -> bytes:
    parts = line.split(b" ", 2)
    return parts[1].upper() if len(parts) > 1 else b""


# Commands without literals whose arguments (the line after the tag) were tokenized before
# are taken from this memo: under many clients most lines repeat but for the tag (imaptest:
# EXPUNGE, STATUS "INBOX" (...), LIST "" *, FETCH 3 (UID BODY.PEEK[]) ...). Only the
# commands below, whose arguments carry no secret and no free text (no LOGIN, no SEARCH),
# and lines of at most MEMO_LINE octets; the memo is emptied when it reaches MEMO_SIZE.
MEMO_SIZE: Final = 1024
MEMO_LINE: Final = 200
_MEMO_NAMES: Final = frozenset(
    {"FETCH", "STORE", "EXPUNGE", "STATUS", "LIST", "LSUB", "NOOP", "CHECK", "SELECT", "EXAMINE",
     "CLOSE", "UNSELECT", "IDLE", "CAPABILITY", "COPY", "MOVE", "NAMESPACE"}
)  # fmt: skip
_MEMO_UID: Final = frozenset({"FETCH", "STORE", "EXPUNGE", "COPY", "MOVE"})
_memo: dict[bytes, tuple[str, tuple[Token, ...]]] = {}


def parse_line(line: bytes) -> Command:
    """:func:`parse_command` of a command without literals, through the memo (tokens are
    immutable, so a repeated line shares them).

    Raises:
        ParseError, LimitError: as :func:`parse_command`.
    """
    m = _TAG_CHARS.match(line)
    if m is not None and m.end() < len(line) and line[m.end()] == 0x20:
        rest = line[m.end() + 1 :]
        hit = _memo.get(rest)
        if hit is not None:
            return Command(m.group().decode("ascii"), hit[0], hit[1])
    else:
        rest = b""
    cmd = parse_command([line])
    if rest and len(rest) <= MEMO_LINE and _memoable(cmd):
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[rest] = (cmd.name, cmd.args)
    return cmd


def _memoable(cmd: Command) -> bool:
    if cmd.name == "UID":
        first = cmd.args[0] if cmd.args else None
        return isinstance(first, Atom) and first.value.upper() in _MEMO_UID
    return cmd.name in _MEMO_NAMES


def parse_command(segments: list[bytes]) -> Command:
    """Tokenize one assembled command (text and literal segments alternate).

    Raises:
        ParseError: no valid tag or command name, or malformed arguments.
        LimitError: nesting deeper than MAX_DEPTH.
    """
    head = segments[0]
    m = _TAG_CHARS.match(head)
    if m is None or m.end() >= len(head) or head[m.end()] != 0x20:
        raise ParseError("missing or invalid tag")
    tag = m.group().decode("ascii")
    rest = head[m.end() + 1 :]
    nm = re.match(rb"[A-Za-z]+", rest)
    if nm is None:
        raise ParseError("missing command name")
    name = nm.group().decode("ascii").upper()
    after = rest[nm.end() :]
    if after and not after.startswith(b" "):
        raise ParseError("invalid command name")
    tokens = tokenize([after[1:], *segments[1:]] if after else [b"", *segments[1:]])
    return Command(tag, name, tokens)


def tokenize(segments: list[bytes]) -> tuple[Token, ...]:
    """Tokenize argument text; ``segments`` alternates text and literal payloads.

    Raises:
        ParseError, LimitError.
    """
    return _Tokenizer(segments).run()


_ATOM_STOP = frozenset(b' (){"\r\n')
# Characters of an atom up to the first stop, control character or "[" (see _atom).
_ATOM_RUN = re.compile(rb'[^\x00-\x20\x7f(){"\[]+')
# An atom with one "[...]" (spaces and parentheses inside, no control character, no nested
# bracket), then atom characters; what follows must be the end or one of _BRACKET_END.
_BRACKET_RUN = re.compile(rb'[^\x00-\x20\x7f(){"\[]*\[[^\x00-\x1f\x7f\[\]]*\][^\x00-\x20\x7f(){"\[]*')
_BRACKET_END = frozenset(b' (){"')
# An atom with "[" taken as an ordinary character (an unterminated bracket).
_PLAIN_ATOM = re.compile(rb'[^\x00-\x20\x7f(){"]*')


class _Tokenizer:
    def __init__(self, segments: list[bytes]) -> None:
        self.segs = segments
        self.si = 0
        self.text = segments[0]
        self.i = 0

    def run(self) -> tuple[Token, ...]:
        stack: list[list[Token]] = [[]]
        expect_space = False
        while True:
            if self.i >= len(self.text):
                break
            c = self.text[self.i]
            if c == 0x29:  # ")"
                if len(stack) == 1:
                    raise ParseError("unbalanced ')'")
                items = stack.pop()
                stack[-1].append(Group(tuple(items)))
                self.i += 1
                expect_space = True
                continue
            if expect_space:
                if c != 0x20:
                    raise ParseError("expected space between arguments")
                self.i += 1
                expect_space = False
                if self.i >= len(self.text):
                    raise ParseError("trailing space")
                continue
            if c == 0x28:  # "("
                if len(stack) > MAX_DEPTH:
                    raise LimitError(f"nesting deeper than {MAX_DEPTH}")
                stack.append([])
                self.i += 1
                continue
            if c == 0x22:  # '"'
                stack[-1].append(self._quoted())
            elif c == 0x7B or (c == 0x7E and self.text[self.i + 1 : self.i + 2] == b"{"):
                if self._at_literal_marker():
                    stack[-1].append(self._literal())
                else:
                    raise ParseError("malformed literal")
            elif c == 0x20:
                raise ParseError("unexpected space")
            else:
                stack[-1].append(self._atom())
            expect_space = True
        if len(stack) != 1:
            raise ParseError("unbalanced '('")
        return tuple(stack[0])

    def _at_literal_marker(self) -> bool:
        return _LITERAL_AT_END.match(self.text, self.i) is not None and self.si + 1 < len(self.segs)

    def _literal(self) -> String:
        m = _LITERAL_AT_END.match(self.text, self.i)
        assert m is not None
        payload = self.segs[self.si + 1]
        self.si += 2
        self.text = self.segs[self.si] if self.si < len(self.segs) else b""
        self.i = 0
        return String(payload, literal=True, binary=bool(m.group(1)))

    def _quoted(self) -> String:
        out = bytearray()
        i = self.i + 1
        t = self.text
        while i < len(t):
            c = t[i]
            if c == 0x5C:  # backslash
                if i + 1 < len(t) and t[i + 1] in (0x5C, 0x22):
                    out.append(t[i + 1])
                    i += 2
                    continue
                raise ParseError("invalid escape in quoted string")
            if c == 0x22:
                self.i = i + 1
                return String(bytes(out))
            out.append(c)
            i += 1
        raise ParseError("unterminated quoted string")

    def _atom(self) -> Atom:
        t = self.text
        i = self.i
        # fast path: a run of plain atom characters not followed by "[" (most atoms)
        m = _ATOM_RUN.match(t, i)
        j = m.end() if m is not None else i
        if j < len(t) and t[j] == 0x5B:
            return self._bracketed_atom()
        if j < len(t) and (t[j] == 0x7F or (t[j] < 0x20 and t[j] not in (0x0D, 0x0A))):
            raise ParseError("control character in atom")
        if j == i:
            raise ParseError("empty atom")
        self.i = j
        try:
            return Atom(t[i:j].decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("invalid UTF-8 in atom") from None

    def _bracketed_atom(self) -> Atom:
        t = self.text
        i = self.i
        m = _BRACKET_RUN.match(t, i)
        if m is not None and (m.end() == len(t) or t[m.end()] in _BRACKET_END):
            # one pair of brackets with nothing nested or unusual (BODY.PEEK[HEADER]<0.10>):
            # where the scan below would end, with the same atom
            i = m.end()
        else:
            i = self._bracket_scan()
        if i == self.i:
            raise ParseError("empty atom")
        raw = t[self.i : i]
        self.i = i
        try:
            return Atom(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("invalid UTF-8 in atom") from None

    def _bracket_scan(self) -> int:
        """Where an atom holding "[" ends (see _bracketed_atom), scanned octet by octet."""
        t = self.text
        i = self.i
        depth = 0
        while i < len(t):
            c = t[i]
            if c == 0x5B:  # "[": BODY[HEADER.FIELDS (A B)] spans spaces and parens
                depth += 1
            elif c == 0x5D and depth:
                depth -= 1
            elif depth == 0 and c in _ATOM_STOP:
                break
            elif c < 0x20 or c == 0x7F:
                raise ParseError("control character in atom")
            i += 1
        if depth:
            # "[" is an ordinary atom character (RFC 3501 section 9: not an atom-special),
            # so "foo[bar" is an atom (a mailbox name); only BODY[...] spans spaces
            m = _PLAIN_ATOM.match(t, self.i)
            assert m is not None
            i = m.end()
        return i
