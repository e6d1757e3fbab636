"""postroom in test suites: an in-process server, a client, handlers, chaos, webhooks.

``from postroom import Server, Client`` is the usual entry; the pytest plugin
(:mod:`postroom.testing.plugin`) is registered through the ``pytest11`` entry point.
See docs/testing.md.
"""

from __future__ import annotations

from .chaos import Chaos, ChaosError, Fault
from .client import Client
from .handlers import ACCEPT, Decision, Handlers, accept, delay, reject
from .models import (
    Address,
    Attachment,
    Envelope,
    Headers,
    Message,
    NotFoundInMessage,
    extract_code,
    extract_links,
)
from .reader import MailReader, NoMatchingMail
from .server import MailView, Server

__all__ = [
    "ACCEPT",
    "Address",
    "Attachment",
    "Chaos",
    "ChaosError",
    "Client",
    "Decision",
    "Envelope",
    "Fault",
    "Handlers",
    "Headers",
    "MailReader",
    "MailView",
    "Message",
    "NoMatchingMail",
    "NotFoundInMessage",
    "Server",
    "accept",
    "delay",
    "extract_code",
    "extract_links",
    "reject",
]
