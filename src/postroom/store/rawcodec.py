"""How a message's raw bytes are kept in the ``raw`` table: one compressed frame per message.

New messages are stored as LZ4 frames: compressing a 21 KB HTML message takes ~42 us
with LZ4 and ~100 us with zstd (level 1 or any faster level, through the ``zstandard``
binding) on these machines, and at ingest, where a 2-core machine is busy with SMTP,
that difference is throughput (docs/performance.md). LZ4 makes such a message ~8.5 KB,
zstd ~5 KB. Stores written before hold zstd frames; both are read, told apart by their
magic numbers.

Compression runs where the message is committed: in the store's writer thread for mail
received by this process, and in the SMTP worker process that received it otherwise
(servers/smtp_workers.py), so that it uses that process's core.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

import lz4.frame

if TYPE_CHECKING:
    import zstandard

__all__ = ["LZ4_MAGIC", "ZSTD_MAGIC", "compress", "header_prefix", "unpack"]

LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_local = threading.local()


def _dctx() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        import zstandard  # only stores written before LZ4 hold zstd frames

        d = _local.d = zstandard.ZstdDecompressor()
    return d


def compress(raw: bytes) -> bytes:
    """The stored form of a message (thread-safe)."""
    return bytes(lz4.frame.compress(raw, store_size=True))


def unpack(data: bytes) -> bytes:
    """The message bytes of a stored value."""
    if data[:4] == LZ4_MAGIC:
        return bytes(lz4.frame.decompress(data))
    return bytes(_dctx().decompress(data))


def header_prefix(data: bytes, limit: int, chunk: int = 16384) -> bytes:
    """The first bytes of the message, up to its header/body separator or ``limit``.

    Decompresses only as much as needed, so a search through header values does not
    inflate whole messages.
    """
    out = bytearray()
    reader: Any
    if data[:4] == LZ4_MAGIC:
        reader = lz4.frame.LZ4FrameFile(io.BytesIO(data), mode="rb")
    else:
        reader = _dctx().stream_reader(io.BytesIO(data))
    with reader:
        while len(out) < limit:
            piece = reader.read(chunk)
            if not piece:
                break
            out += piece
            if b"\r\n\r\n" in out or b"\n\n" in out:
                break
    return bytes(out)
