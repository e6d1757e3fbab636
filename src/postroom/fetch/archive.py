"""Read and write mail archives: Maildir, mbox, directories of ``.eml`` files and ``.zip``.

Reading streams one message at a time (an mbox of any size is read line by line, never
whole), so ``postroom import`` holds one message in memory. Formats:

* **Maildir** (a directory with ``cur/`` and ``new/``; Maildir++ sub-folders ``.Name``
  with their own ``cur/`` and ``new/``): the info suffix ``:2,FLAGS`` gives the flags
  (``S`` seen, ``F`` flagged, ``R`` replied, ``T`` trashed, ``D`` draft).
* **mbox**: messages start at a ``From `` line at the start of the file or after an
  empty line; a line ``>From `` (any number of ``>``) loses one ``>`` (mboxrd, which
  also reads mboxo correctly except for a body line that really began with ``>From``).
  ``Status: RO`` / ``X-Status: F`` headers (as mutt and Thunderbird write them) give flags.
* **.eml** files, anywhere under a directory (sorted by path), and **.zip** archives of
  any of these.

Writing: Maildir (unique names, flags in the info suffix, written to ``tmp/`` and renamed
into ``cur/`` so a reader never sees half a file), mboxrd (``>From`` escaping), one
``.eml`` per message, or a ``.zip`` of ``.eml`` files.

Errors: :class:`ArchiveError` (a ``ValueError``) names the path that cannot be read.
"""

from __future__ import annotations

import io
import os
import re
import socket
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "MAX_MESSAGE",
    "ArchiveError",
    "EmlDirWriter",
    "Item",
    "MaildirWriter",
    "MboxWriter",
    "Writer",
    "ZipWriter",
    "iter_mbox",
    "iter_path",
    "mbox_entry",
    "open_writer",
]

#: Largest message read from an archive (postroom's default --smtp-max-size is 50 MiB).
MAX_MESSAGE = 64 * 1024 * 1024

# "From " separator lines are matched by prefix; ">From " escapes by this linear pattern.
_ESCAPED_FROM = re.compile(rb"^>+From ")
_MAILDIR_FLAGS = {"S": "seen", "F": "flagged", "R": "answered", "T": "deleted", "D": "draft"}


class ArchiveError(ValueError):
    """A path cannot be read or written as a mail archive; the text names it."""


@dataclass(frozen=True)
class Item:
    """One message read from an archive."""

    source: str  # path (and entry) it came from, for messages to the user
    folder: str  # Maildir++ sub-folder; "" for a Maildir's top level, mbox, .eml
    flags: frozenset[str]  # seen, flagged, answered, deleted, draft
    data: bytes


def _maildir_flags(name: str) -> frozenset[str]:
    _, sep, info = name.rpartition(":2,")
    if not sep:
        return frozenset()
    return frozenset(_MAILDIR_FLAGS[c] for c in info if c in _MAILDIR_FLAGS)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_MESSAGE:
            raise ArchiveError(f"{path}: larger than {MAX_MESSAGE // (1 << 20)} MiB")
        return path.read_bytes()
    except OSError as e:
        raise ArchiveError(f"{path}: {e.strerror or e}") from None


def _iter_maildir(root: Path) -> Iterator[Item]:
    folders: list[tuple[str, Path]] = [("", root)]
    try:
        children = sorted(
            p for p in root.iterdir() if p.name.startswith(".") and p.is_dir() and _is_maildir(p)
        )
    except OSError as e:
        raise ArchiveError(f"{root}: {e.strerror or e}") from None
    folders += [(p.name[1:].replace(".", "/"), p) for p in children]
    for folder, path in folders:
        for sub in ("new", "cur"):
            for f in sorted((path / sub).iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    yield Item(str(f), folder, _maildir_flags(f.name), _read_file(f))


def _mbox_flags(head: bytes) -> frozenset[str]:
    flags: set[str] = set()
    for line in head.split(b"\n"):
        low = line.lower()
        if low.startswith(b"status:"):
            if b"r" in low[7:]:
                flags.add("seen")
        elif low.startswith(b"x-status:"):
            v = line[9:]
            flags |= {
                n
                for c, n in ((b"F", "flagged"), (b"A", "answered"), (b"D", "deleted"), (b"T", "draft"))
                if c in v
            }
    return frozenset(flags)


def iter_mbox(stream: BinaryIO, source: str, folder: str) -> Iterator[Item]:
    """Messages of an mbox read from ``stream``, line by line.

    Raises:
        ArchiveError: a message larger than :data:`MAX_MESSAGE`.
    """
    lines: list[bytes] = []
    size = 0
    count = 0
    prev_blank = True

    def finish() -> Item | None:
        if not lines:
            return None
        data = b"".join(lines)
        # the empty line before the next "From " belongs to the separator, not the message
        if data.endswith(b"\r\n\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n\n"):
            data = data[:-1]
        head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        return Item(f"{source}#{count}", folder, _mbox_flags(head), data)

    started = False
    for line in iter(lambda: stream.readline(MAX_MESSAGE + 1), b""):
        if line.startswith(b"From ") and prev_blank:
            item = finish()
            if item is not None:
                yield item
            count += 1
            lines, size, started = [], 0, True
            prev_blank = False
            continue
        if not started:
            if line.strip():
                raise ArchiveError(f"{source}: not an mbox (no 'From ' line at the start)")
            continue
        if _ESCAPED_FROM.match(line):
            line = line[1:]
        lines.append(line)
        size += len(line)
        if size > MAX_MESSAGE:
            raise ArchiveError(f"{source}#{count}: message larger than {MAX_MESSAGE // (1 << 20)} MiB")
        prev_blank = line in (b"\n", b"\r\n")
    item = finish()
    if item is not None:
        yield item


def _looks_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False


def _iter_zip(path: Path) -> Iterator[Item]:
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ArchiveError(f"{path}: not a readable zip ({e})") from None
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            if info.file_size > MAX_MESSAGE * 64:
                raise ArchiveError(f"{path}!{info.filename}: too large")
            name = f"{path}!{info.filename}"
            try:
                with zf.open(info) as member:
                    head = member.read(5)
                with zf.open(info) as member:
                    if head == b"From ":
                        yield from iter_mbox(member, name, "")  # type: ignore[arg-type]
                    elif info.filename.lower().endswith(".eml"):
                        if info.file_size > MAX_MESSAGE:
                            raise ArchiveError(f"{name}: larger than {MAX_MESSAGE // (1 << 20)} MiB")
                        yield Item(name, "", frozenset(), member.read())
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:  # a damaged member
                raise ArchiveError(f"{name}: damaged ({e})") from None


def _is_mbox_name(path: Path) -> bool:
    return path.suffix.lower() in (".mbox", ".mbx")


def _iter_eml(path: Path) -> Iterator[Item]:
    yield Item(str(path), "", frozenset(), _read_file(path))


def _iter_file(path: Path) -> Iterator[Item]:
    """The messages of one file: a zip, an mbox (named ``*.mbox``/``*.mbx`` or starting with
    ``From ``), else one message."""
    if path.suffix.lower() == ".zip":
        yield from _iter_zip(path)
    elif _is_mbox_name(path) or _looks_like_mbox(path):
        try:
            stream = path.open("rb")
        except OSError as e:
            raise ArchiveError(f"{path}: {e.strerror or e}") from None
        with stream:
            yield from iter_mbox(stream, str(path), "")
    else:
        yield from _iter_eml(path)


def iter_path(path: Path, on_error: Callable[[ArchiveError], None] | None = None) -> Iterator[Item]:
    """Every message under ``path`` (see the module docstring for the formats).

    With ``on_error``, a file (or Maildir) under a directory that cannot be read is passed to
    it and the others are read; without, its error ends the iteration.

    Raises:
        ArchiveError: the path does not exist or holds no known format (or, without
            ``on_error``, a file under it cannot be read).
    """
    if path.is_dir():
        if _is_maildir(path):
            yield from _iter_maildir(path)
            return
        found = False
        parts: list[tuple[Path, Callable[[Path], Iterator[Item]]]] = []
        for f in sorted(path.rglob("*")):
            if not f.is_file():
                continue
            if _is_maildir(f.parent.parent) and f.parent.name in ("cur", "new", "tmp"):
                continue  # inside a Maildir below: read as one
            if f.suffix.lower() == ".eml":
                parts.append((f, _iter_eml))
            elif f.suffix.lower() == ".zip" or _is_mbox_name(f) or (f.suffix == "" and _looks_like_mbox(f)):
                parts.append((f, _iter_file))
        parts += [
            (d, _iter_maildir) for d in sorted(p for p in path.rglob("*") if p.is_dir() and _is_maildir(p))
        ]
        for part, read in parts:
            found = True
            try:
                yield from read(part)
            except ArchiveError as e:
                if on_error is None:
                    raise
                on_error(e)
        if not found:
            raise ArchiveError(f"{path}: no Maildir, mbox, .eml or .zip found")
        return
    if not path.exists():
        raise ArchiveError(f"{path}: no such file or directory")
    yield from _iter_file(path)


# -- writers ------------------------------------------------------------------------------


class Writer:
    """Where exported messages go; ``close()`` finishes the archive."""

    count = 0

    def add(self, data: bytes, flags: frozenset[str], received: float, name_hint: str) -> None:
        raise NotImplementedError

    def has(self, name_hint: str) -> bool:
        """Whether a message named ``name_hint`` is there already (only :class:`EmlDirWriter`
        with ``by_id`` names files by it)."""
        return False

    def close(self) -> None:
        pass


class MaildirWriter(Writer):
    """A Maildir (created when missing); existing messages are left alone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def add(self, data: bytes, flags: frozenset[str], received: float, name_hint: str) -> None:
        self.count += 1
        unique = f"{int(received or time.time())}.M{time.time_ns() % 1_000_000}P{os.getpid()}Q{self.count}.{self._host}"
        info = "".join(sorted(c for c, n in _MAILDIR_FLAGS.items() if n in flags))
        tmp = self.root / "tmp" / unique
        with tmp.open("xb") as f:
            f.write(data.replace(b"\r\n", b"\n"))  # Maildir files use the local line end
            f.flush()
            os.fsync(f.fileno())
        final = self.root / "cur" / f"{unique}:2,{info}"
        os.rename(tmp, final)
        if received:
            os.utime(final, (received, received))


def mbox_entry(data: bytes, received: float) -> bytes:
    """One message as an mboxrd entry: its ``From `` line, its lines with LF ends and
    ``From ``/``>From `` escaped with one more ``>``, and the empty line that ends it."""
    when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(received or time.time()))
    out = io.BytesIO()
    out.write(f"From MAILER-DAEMON {when}\n".encode())
    for line in data.replace(b"\r\n", b"\n").splitlines(keepends=True):
        if line.startswith(b"From ") or _ESCAPED_FROM.match(line):
            out.write(b">")
        out.write(line)
    if not data.endswith(b"\n"):
        out.write(b"\n")
    out.write(b"\n")
    return out.getvalue()


class MboxWriter(Writer):
    """An mboxrd file (appended to when it exists)."""

    def __init__(self, path: Path) -> None:
        self.f = path.open("ab")

    def add(self, data: bytes, flags: frozenset[str], received: float, name_hint: str) -> None:
        self.count += 1
        self.f.write(mbox_entry(data, received))

    def close(self) -> None:
        self.f.close()


def _safe_name(hint: str, n: int) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", hint)[:80] or "message"
    return f"{n:06d}-{base}.eml"


class EmlDirWriter(Writer):
    """One ``.eml`` file per message in a directory: ``NNNNNN-subject.eml``, or with
    ``by_id`` ``ID.eml`` (Mailpit's ``dump`` layout; the hint is the message ID)."""

    def __init__(self, root: Path, by_id: bool = False) -> None:
        self.root, self.by_id = root, by_id
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, name_hint: str) -> Path:
        if self.by_id:
            return self.root / (re.sub(r"[^A-Za-z0-9._-]", "_", name_hint).lstrip(".")[:120] + ".eml")
        return self.root / _safe_name(name_hint, self.count)

    def has(self, name_hint: str) -> bool:
        return self.by_id and self._path(name_hint).exists()

    def add(self, data: bytes, flags: frozenset[str], received: float, name_hint: str) -> None:
        self.count += 1
        path = self._path(name_hint)
        path.write_bytes(data)
        if received:
            os.utime(path, (received, received))


class ZipWriter(Writer):
    """A ``.zip`` of ``.eml`` files."""

    def __init__(self, path: Path) -> None:
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, data: bytes, flags: frozenset[str], received: float, name_hint: str) -> None:
        self.count += 1
        when = time.gmtime(received or time.time())[:6]
        info = zipfile.ZipInfo(_safe_name(name_hint, self.count), date_time=when)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zf.writestr(info, data)

    def close(self) -> None:
        self.zf.close()


def open_writer(dest: Path, fmt: str) -> Writer:
    """A writer of format ``maildir``, ``mbox``, ``eml`` or ``zip`` at ``dest``.

    Raises:
        ArchiveError: unknown format, or ``dest`` cannot be created.
    """
    try:
        if fmt == "maildir":
            return MaildirWriter(dest)
        if fmt == "mbox":
            return MboxWriter(dest)
        if fmt == "eml":
            return EmlDirWriter(dest)
        if fmt == "zip":
            return ZipWriter(dest)
    except OSError as e:
        raise ArchiveError(f"{dest}: {e.strerror or e}") from None
    raise ArchiveError(f"unknown format {fmt!r} (maildir, mbox, eml or zip)")
