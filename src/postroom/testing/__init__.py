"""postroom in test suites: an in-process server, a client, handlers, chaos, webhooks.

``from postroom import Server, Client`` is the usual entry; the pytest plugin
(:mod:`postroom.testing.plugin`) is registered through the ``pytest11`` entry point.
See docs/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime.chaos import Chaos, ChaosError, Fault
    from ..runtime.handlers import (
        ACCEPT,
        Decision,
        Handler,
        HandlerFailed,
        Handlers,
        RcptHandler,
        Result,
        SMTPHandler,
        accept,
        delay,
        reject,
    )
    from ..runtime.models import (
        Address,
        Attachment,
        Envelope,
        Headers,
        Message,
        NotFoundInMessage,
        extract_code,
        extract_links,
    )
    from .client import Client, ClientError, ClientView
    from .mail import ChaosControl, FaultHandle, Mail, WebhookControl
    from .reader import MailReader, NoMatchingMail
    from .remote import RemoteUnsupported
    from .server import MailView, Server

# Loaded on first use (PEP 562): the pytest plugin lives in this package, and pytest
# imports it at every start; what a test does not touch is never imported.
_WHERE = {
    "ACCEPT": "..runtime.handlers",
    "Address": "..runtime.models",
    "Attachment": "..runtime.models",
    "Chaos": "..runtime.chaos",
    "ChaosControl": ".mail",
    "ChaosError": "..runtime.chaos",
    "Client": ".client",
    "ClientError": ".client",
    "ClientView": ".client",
    "Decision": "..runtime.handlers",
    "Envelope": "..runtime.models",
    "Fault": "..runtime.chaos",
    "FaultHandle": ".mail",
    "Handlers": "..runtime.handlers",
    "Handler": "..runtime.handlers",
    "HandlerFailed": "..runtime.handlers",
    "RcptHandler": "..runtime.handlers",
    "Result": "..runtime.handlers",
    "SMTPHandler": "..runtime.handlers",
    "Headers": "..runtime.models",
    "Mail": ".mail",
    "MailReader": ".reader",
    "MailView": ".server",
    "Message": "..runtime.models",
    "NoMatchingMail": ".reader",
    "NotFoundInMessage": "..runtime.models",
    "RemoteUnsupported": ".remote",
    "Server": ".server",
    "WebhookControl": ".mail",
    "accept": "..runtime.handlers",
    "delay": "..runtime.handlers",
    "extract_code": "..runtime.models",
    "extract_links": "..runtime.models",
    "reject": "..runtime.handlers",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "ACCEPT",
    "Address",
    "Attachment",
    "Chaos",
    "ChaosControl",
    "ChaosError",
    "Client",
    "ClientError",
    "ClientView",
    "Decision",
    "Envelope",
    "Fault",
    "FaultHandle",
    "Handler",
    "HandlerFailed",
    "Handlers",
    "Headers",
    "Mail",
    "MailReader",
    "MailView",
    "Message",
    "NoMatchingMail",
    "NotFoundInMessage",
    "RcptHandler",
    "RemoteUnsupported",
    "Result",
    "SMTPHandler",
    "Server",
    "WebhookControl",
    "accept",
    "delay",
    "extract_code",
    "extract_links",
    "reject",
]
