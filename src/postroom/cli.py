"""`postroom` command line: serve, send, sendmail, import, export, check, readyz, version.

Invoked under the name ``sendmail`` (a symlink), it is ``postroom sendmail``.

Errors the user can fix are printed as one line on stderr with exit status 2 (bad
setting) or 1 (runtime failure such as a port in use); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from . import __version__
from . import config as cfg

__all__ = ["main"]

COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {}


def command(name: str, help: str) -> Callable[..., Callable[[argparse.Namespace], int]]:
    """Register a subcommand: ``@command("send", "...")`` on ``run(args)``; ``run.setup(parser)``."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        setup = getattr(fn, "setup", lambda p: None)
        COMMANDS[name] = (help, setup, fn)
        return fn

    return wrap


def _serve_setup(p: argparse.ArgumentParser) -> None:
    from . import mailpit_env

    cfg.add_arguments(p)
    mailpit_env.add_flags(p)  # Mailpit's spellings (--listen, --database, -d, ...)


@command("serve", "run the mail server (SMTP, HTTP UI/API, POP3, IMAP)")
def serve(args: argparse.Namespace) -> int:
    settings = cfg.load(args)
    _setup_logging(settings.log_level, settings.quiet)
    for note in settings.compat_notes:
        logging.getLogger("postroom.config").warning("%s", note)
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    from .app import App
    from .runtime.gc import tune_gc

    app = App(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app.request_stop = stop.set  # --exit-after
        await app.start()
        tune_gc()
        if not settings.quiet:
            print(app.banner(), flush=True)
        await stop.wait()
        logging.getLogger("postroom").info("shutting down")
        await app.stop()

    runner(main())
    return 0


serve.setup = _serve_setup  # type: ignore[attr-defined]


def _setup_logging(level: str, quiet: bool) -> None:
    lvl = logging.ERROR if quiet else getattr(logging, level.upper(), None)
    if not isinstance(lvl, int):
        raise cfg.ConfigError(f"--log-level must be debug, info, warning or error, not {level!r}")
    logging.basicConfig(
        level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _load_commands() -> None:
    """Import the modules that register more subcommands (send, fetch, ...), when present."""
    import importlib

    for mod in ("postroom.cli_tools", "postroom.outbound.cli", "postroom.fetch.cli", "postroom.checks.cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if not (e.name and mod.startswith(e.name)):
                raise


def build_parser(*, only_serve: bool = False) -> argparse.ArgumentParser:
    """The ``postroom`` parser; ``only_serve``: with the ``serve`` subcommand alone (what
    ``postroom serve ...`` needs: the other commands' modules, such as ``check`` with its
    HTTP and DNS clients, are not imported before the server answers)."""
    if not only_serve:
        _load_commands()
    parser = argparse.ArgumentParser(
        prog="postroom",
        description="A local mail server for building and testing software that sends or reads email.",
    )
    parser.add_argument("--version", action="version", version=f"postroom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, setup, fn) in COMMANDS.items():
        if only_serve and name != "serve":
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        getattr(fn, "setup", setup)(p)  # set after decoration, as on serve below
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        # installed as (or symlinked to) "sendmail": PHP's sendmail_path, cron, mail(1)
        if os.path.basename(sys.argv[0]) == "sendmail":
            argv = ["sendmail", *argv]
    if argv and argv[0] == "sendmail":
        # sendmail's options (-t, -oi, -fADDR, -bs) are not argparse's: parsed by its module
        from .outbound.sendmail import run_sendmail

        return run_sendmail(list(argv[1:]))
    parser = build_parser(only_serve=argv[0] == "serve" if argv else False)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .app import ListenerError
    from .store.base import StoreError

    try:
        return int(args.func(args))
    except cfg.ConfigError as e:
        print(f"postroom: {e}", file=sys.stderr)
        return 2
    except (ListenerError, StoreError, OSError) as e:
        print(f"postroom: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
