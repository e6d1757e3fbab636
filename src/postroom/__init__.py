"""postroom: a local mail server for people who build and test software that sends email.

The public surface is small: the version and (from :mod:`postroom.testing`) the
in-process :class:`Server` and the HTTP :class:`Client` used by test suites. They are
imported on first use, so ``import postroom`` stays cheap for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .testing.client import Client
    from .testing.server import Server

__version__ = "0.1.0"

__all__ = ["Client", "Server", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Server":
        from .testing.server import Server

        return Server
    if name == "Client":
        from .testing.client import Client

        return Client
    raise AttributeError(f"module 'postroom' has no attribute {name!r}")
