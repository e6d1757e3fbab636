"""postroom in test suites: an in-process server, a client, handlers, chaos, webhooks.

``from postroom import Server, Client`` is the usual entry; the pytest plugin
(:mod:`postroom.testing.plugin`) is registered through the ``pytest11`` entry point.
See docs/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chaos import Chaos, ChaosError, Fault
    from .client import Client, ClientError, ClientView
    from .handlers import (
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
    from .mail import ChaosControl, FaultHandle, Mail, WebhookControl
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
    from .remote import RemoteUnsupported
    from .server import MailView, Server

# Loaded on first use (PEP 562): the pytest plugin lives in this package, and pytest
# imports it at every start; what a test does not touch is never imported.
_WHERE = {
    "ACCEPT": ".handlers",
    "Address": ".models",
    "Attachment": ".models",
    "Chaos": ".chaos",
    "ChaosControl": ".mail",
    "ChaosError": ".chaos",
    "Client": ".client",
    "ClientError": ".client",
    "ClientView": ".client",
    "Decision": ".handlers",
    "Envelope": ".models",
    "Fault": ".chaos",
    "FaultHandle": ".mail",
    "Handlers": ".handlers",
    "Handler": ".handlers",
    "HandlerFailed": ".handlers",
    "RcptHandler": ".handlers",
    "Result": ".handlers",
    "SMTPHandler": ".handlers",
    "Headers": ".models",
    "Mail": ".mail",
    "MailReader": ".reader",
    "MailView": ".server",
    "Message": ".models",
    "NoMatchingMail": ".reader",
    "NotFoundInMessage": ".models",
    "RemoteUnsupported": ".remote",
    "Server": ".server",
    "WebhookControl": ".mail",
    "accept": ".handlers",
    "delay": ".handlers",
    "extract_code": ".models",
    "extract_links": ".models",
    "reject": ".handlers",
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
