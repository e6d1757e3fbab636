"""Fault injection ("chaos") for the SMTP listener: make the server misbehave on purpose.

A :class:`Fault` acts at one SMTP stage -- ``connect``, ``helo``, ``auth``, ``mail``,
``rcpt``, ``data`` (the DATA command) or ``message`` (the end of the message, before it
is stored) -- and does one thing:

* ``reject``: answer with a reply of its own (``"451 4.3.0 try again"``) instead;
* ``delay``: wait ``seconds`` before answering (then answer normally, or with ``reply``);
* ``disconnect``: close the connection without answering.

A fault fires with a ``probability`` (0 to 1), at most ``times`` times (the next N
messages), and only for matching ``recipients``/``sender`` (glob patterns such as
``*@bounce.example``, or ``re:`` regexes). Recipient patterns apply from the ``rcpt``
stage on: at ``rcpt`` to the address being added, later to any accepted recipient.

Mailpit's three triggers (``Sender``, ``Recipient``, ``Authentication``: an error code and
a probability in percent, ``GET/PUT /api/v1/chaos``) are kept beside the faults, so the
Mailpit API and postroom's own faults never overwrite each other.

Faults are set from the Python API (``server.chaos.reject("rcpt", "550 5.1.1 no")``),
the command line (``--chaos "rcpt:451:50%;data:delay=2"``, see :func:`parse_spec`) and
the HTTP API. The chaos hook is in the listener's hook list only while something is set,
so a server without chaos pays nothing.

Errors::

    ValueError
     +-- ChaosError   a fault or a spec that cannot work; the message says which part
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..protocols.smtp import Reply
from ..servers.smtp_hooks import SMTPHook

if TYPE_CHECKING:
    from ..servers.smtp import SessionInfo

__all__ = [
    "MAILPIT_TRIGGERS",
    "STAGES",
    "Chaos",
    "ChaosError",
    "Fault",
    "FaultBuilder",
    "parse_spec",
]

#: The SMTP stages a fault can act at (the listener's hook stages).
STAGES = ("connect", "helo", "auth", "mail", "rcpt", "data", "message")
_ALIASES = {"ehlo": "helo", "sender": "mail", "from": "mail", "recipient": "rcpt", "to": "rcpt"}
_ALIASES |= {"authentication": "auth", "eom": "message", "body": "message", "greeting": "connect"}
#: Mailpit's trigger names and the stage each one acts at.
MAILPIT_TRIGGERS = {"Sender": "mail", "Recipient": "rcpt", "Authentication": "auth"}
# Mailpit's error code of a trigger that does not name one (535: authentication failed,
# RFC 4954 section 6).
MAILPIT_DEFAULT_CODES = {"Sender": 451, "Recipient": 451, "Authentication": 535}
# Longest delay a fault may hold a reply (seconds): RFC 5321 4.5.3.2 gives clients 5 min
# per command; a longer delay would only test the client's patience.
MAX_DELAY = 300.0

Action = Literal["reject", "delay", "disconnect"]
H = TypeVar("H")  # what a FaultBuilder's add returns


class ChaosError(ValueError):
    """A fault or a chaos spec that cannot work."""


def _stage(name: str) -> str:
    low = name.strip().lower()
    low = _ALIASES.get(low, low)
    if low not in STAGES:
        raise ChaosError(f"unknown SMTP stage {name!r} (use one of {', '.join(STAGES)})")
    return low


def _reply(value: str | int | Reply) -> Reply:
    if isinstance(value, Reply):
        reply = value
    elif isinstance(value, int) or value.strip().isdigit():
        code = int(value)
        reply = Reply(code, f"{code // 100}.0.0" if code >= 400 else "", ("Chaos: injected error",))
    else:
        try:
            reply = Reply.parse(value)
        except ValueError as e:
            raise ChaosError(str(e)) from None
    if not 400 <= reply.code <= 599:
        raise ChaosError(f"a chaos reply must be 4xx or 5xx, not {reply.code}")
    return reply


def _pattern(value: str | None) -> re.Pattern[str] | None:
    if not value:
        return None
    if value.startswith("re:"):
        try:
            return re.compile(value[3:], re.IGNORECASE)
        except re.error as e:
            raise ChaosError(f"bad regex {value[3:]!r}: {e}") from None
    # a glob names the whole address; a regex is searched (``re:^bounce-\d+@`` needs no ``.*``)
    return re.compile("^" + fnmatch.translate(value.lower()), re.IGNORECASE)


@dataclass
class Fault:
    """One injected failure. See the module docstring for what each field means."""

    stage: str
    action: Action = "reject"
    reply: Reply | None = None
    seconds: float = 0.0
    probability: float = 1.0
    times: int | None = None
    recipients: str | None = None
    sender: str | None = None
    fired: int = 0
    id: int = 0  # given by the Chaos it is added to (the HTTP API names faults by it)
    _rcpt: re.Pattern[str] | None = field(default=None, init=False, repr=False)
    _from: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.stage = _stage(self.stage)
        if self.action not in ("reject", "delay", "disconnect"):
            raise ChaosError(f"unknown chaos action {self.action!r} (reject, delay or disconnect)")
        if self.action == "reject" and self.reply is None:
            self.reply = _reply(451)
        if not 0.0 <= self.probability <= 1.0:
            raise ChaosError(f"probability must be between 0 and 1, not {self.probability}")
        if not 0.0 <= self.seconds <= MAX_DELAY:
            raise ChaosError(f"a delay must be between 0 and {MAX_DELAY:g} seconds")
        if self.times is not None and self.times < 0:
            raise ChaosError("times must be 0 or more")
        if self.recipients and self.stage in ("connect", "helo", "auth", "mail"):
            raise ChaosError(f"a recipient filter needs stage rcpt, data or message, not {self.stage}")
        self._rcpt = _pattern(self.recipients)
        self._from = _pattern(self.sender)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def applies(self, stage: str, info: SessionInfo) -> bool:
        """Whether this fault concerns ``stage`` of the session (ignores probability)."""
        if stage != self.stage or self.exhausted:
            return False
        if self._from is not None:
            sender = info.argument if stage == "mail" else (info.mail_from or "")
            if not self._from.search(sender.lower()):
                return False
        if self._rcpt is not None:
            rcpts = [info.argument] if stage == "rcpt" else list(info.rcpt_to)
            if not any(self._rcpt.search(r.lower()) for r in rcpts):
                return False
        return True

    def to_spec(self) -> str:
        """This fault in the ``--chaos`` syntax (what a remote client sends).

        Raises:
            ChaosError: a field holds ``:`` or ``;`` (a ``re:`` pattern), which the syntax
                cannot carry.
        """
        if self.action == "disconnect":
            what = "disconnect"
        elif self.action == "delay":
            what = f"delay={self.seconds:g}"
        else:
            what = self.reply.data.decode().strip() if self.reply else "451"
        opts = []
        if self.action == "delay" and self.reply is not None:
            opts.append("then=" + self.reply.data.decode().strip())
        if self.probability < 1.0:
            opts.append(f"{self.probability * 100:g}%")
        if self.times is not None:
            opts.append(f"times={self.times}")
        if self.recipients:
            opts.append(f"rcpt={self.recipients}")
        if self.sender:
            opts.append(f"from={self.sender}")
        for piece in (what, *opts):
            if ":" in piece.partition("=")[2 if "=" in piece else 0] or ";" in piece or "\n" in piece:
                raise ChaosError(f"{piece!r} cannot be written in the --chaos syntax (no ':' or ';')")
        return ":".join((self.stage, what, *opts))

    def to_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Stage": self.stage,
            "Action": self.action,
            "Reply": self.reply.data.decode().strip() if self.reply else "",
            "Seconds": self.seconds,
            "Probability": round(self.probability * 100, 3),
            "Times": self.times,
            "Recipients": self.recipients or "",
            "Sender": self.sender or "",
            "Fired": self.fired,
        }


def parse_spec(spec: str) -> list[Fault]:
    """Parse the ``--chaos`` syntax: faults separated by ``;``, fields by ``:``.

    Each fault is ``STAGE:WHAT[:OPTION]...`` where WHAT is a reply (``451``,
    ``550 5.7.1 go away``), ``delay=SECONDS`` or ``disconnect``, and each OPTION is a
    probability (``50%``, or a bare number in percent, as Mailpit's ``Sender:451:10``),
    ``times=N``, ``rcpt=GLOB`` or ``from=GLOB``. Examples::

        rcpt:550 5.1.1 no such user:rcpt=*@bounce.example
        mail:451:25%;data:delay=3;message:disconnect:times=1

    Raises:
        ChaosError: naming the fault that does not parse.
    """
    faults = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        fields_ = [f.strip() for f in item.split(":")]
        if len(fields_) < 2:
            raise ChaosError(f"chaos fault {item!r}: expected STAGE:WHAT[:OPTION...]")
        kw: dict[str, Any] = {"stage": fields_[0]}
        what = fields_[1]
        low = what.lower()
        try:
            if low == "disconnect":
                kw["action"] = "disconnect"
            elif low.startswith("delay="):
                kw["action"] = "delay"
                kw["seconds"] = float(low[6:].rstrip("s"))
            else:
                kw["reply"] = _reply(what)
            for opt in fields_[2:]:
                key, sep, value = opt.partition("=")
                key = key.lower()
                if not sep and opt.endswith("%"):
                    kw["probability"] = float(opt[:-1]) / 100
                elif not sep:
                    kw["probability"] = float(opt) / 100
                elif key in ("times", "n"):
                    kw["times"] = int(value)
                elif key in ("rcpt", "to", "recipients"):
                    kw["recipients"] = value
                elif key in ("from", "sender"):
                    kw["sender"] = value
                elif key in ("p", "probability"):
                    kw["probability"] = float(value.rstrip("%")) / 100
                elif key == "then":
                    kw["reply"] = _reply(value)
                else:
                    raise ChaosError(f"unknown option {opt!r}")
            faults.append(Fault(**kw))
        except ChaosError as e:
            raise ChaosError(f"chaos fault {item!r}: {e}") from None
        except ValueError:
            raise ChaosError(f"chaos fault {item!r}: bad number") from None
    return faults


class FaultBuilder(Generic[H]):
    """:meth:`reject`, :meth:`delay` and :meth:`disconnect` make a :class:`Fault` and give
    it to :meth:`add`: :class:`Chaos` sets it in this process, ``postroom.testing``'s
    remote chaos posts it to a server; ``H`` is what their ``add`` returns."""

    def add(self, fault: Fault) -> H:
        raise NotImplementedError

    def reject(
        self,
        stage: str,
        reply: str | int | Reply = 451,
        *,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> H:
        """Answer ``stage`` with ``reply`` (e.g. ``"550 5.7.1 no"``) instead of going on."""
        return self.add(Fault(stage, "reject", _reply(reply), 0.0, probability, times, recipients, sender))

    def delay(
        self,
        stage: str,
        seconds: float,
        *,
        reply: str | int | Reply | None = None,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> H:
        """Hold the answer to ``stage`` for ``seconds`` (then send ``reply`` if given)."""
        r = _reply(reply) if reply is not None else None
        return self.add(Fault(stage, "delay", r, seconds, probability, times, recipients, sender))

    def disconnect(
        self,
        stage: str,
        *,
        probability: float = 1.0,
        times: int | None = None,
        recipients: str | None = None,
        sender: str | None = None,
    ) -> H:
        """Close the connection at ``stage`` without a reply."""
        return self.add(Fault(stage, "disconnect", None, 0.0, probability, times, recipients, sender))


class Chaos(SMTPHook, FaultBuilder[Fault]):
    """The fault-injection state of one server (``app.chaos``).

    Thread-safe: tests change it from their own thread while the server's loop reads it.

    Args:
        hooks: the app's ``smtp_hooks``; chaos is in it only while a fault is set.
        enabled: whether the HTTP API may change it (Mailpit's ``--enable-chaos``).
        seed: seed for the probability draws (reproducible runs).
    """

    def __init__(
        self, hooks: list[SMTPHook] | None = None, *, enabled: bool = True, seed: int | None = None
    ) -> None:
        self._hooks: list[SMTPHook] = hooks if hooks is not None else []
        self.enabled = enabled
        self._seed = seed
        self._rng: random.Random | None = None  # made on first draw (seeding costs ~30 us)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._triggers: dict[str, tuple[int, int]] = {}  # Mailpit name -> (code, percent)
        self._next_id = 1
        self.on_change: Callable[[], None] | None = None

    @property
    def _random(self) -> random.Random:
        rng = self._rng
        if rng is None:
            rng = self._rng = random.Random(self._seed)
        return rng

    # -- Python API ----------------------------------------------------------------------

    def add(self, fault: Fault) -> Fault:
        """Add a fault; returns it (its ``fired`` count tells how often it acted)."""
        with self._lock:
            self._number(fault)
            self._faults.append(fault)
        self._changed()
        return fault

    def _number(self, fault: Fault) -> None:
        fault.id, self._next_id = self._next_id, self._next_id + 1

    def remove(self, ids: list[int]) -> None:
        """Remove the faults with these IDs (others' faults stay)."""
        with self._lock:
            self._faults = [f for f in self._faults if f.id not in ids]
        self._changed()

    def load(self, spec: str) -> list[Fault]:
        """Add the faults of a ``--chaos`` spec (see :func:`parse_spec`)."""
        faults = parse_spec(spec)
        with self._lock:
            for f in faults:
                self._number(f)
            self._faults.extend(faults)
        self._changed()
        return faults

    def seed(self, value: int | None) -> None:
        """Seed the probability draws, so a run with ``probability < 1`` repeats exactly."""
        with self._lock:
            self._random.seed(value)

    def replace_faults(self, faults: list[Fault]) -> None:
        """Replace every fault (Mailpit's triggers stay)."""
        with self._lock:
            for f in faults:
                self._number(f)
            self._faults = list(faults)
        self._changed()

    def clear(self) -> None:
        """Remove every fault and reset Mailpit's triggers."""
        with self._lock:
            self._faults.clear()
            self._triggers.clear()
        self._changed()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._triggers) or any(not f.exhausted for f in self._faults)

    # -- Mailpit's /api/v1/chaos ----------------------------------------------------------

    def mailpit_triggers(self) -> dict[str, dict[str, int]]:
        """The ``ChaosTriggers`` object of Mailpit's API."""
        with self._lock:
            return {
                name: {"ErrorCode": code, "Probability": p}
                for name in MAILPIT_TRIGGERS
                for code, p in [self._triggers.get(name, (MAILPIT_DEFAULT_CODES[name], 0))]
            }

    def set_mailpit_triggers(self, body: dict[str, Any]) -> None:
        """Replace the triggers as Mailpit's ``PUT /api/v1/chaos`` does (omitted: reset).

        Raises:
            ChaosError: a trigger with a code outside 400-599 or a probability outside 0-100.
        """
        new: dict[str, tuple[int, int]] = {}
        for name, value in body.items():
            if name not in MAILPIT_TRIGGERS:
                raise ChaosError(f"unknown chaos trigger {name!r}")
            if not isinstance(value, dict):
                raise ChaosError(f"{name}: expected an object with ErrorCode and Probability")
            code, prob = value.get("ErrorCode") or MAILPIT_DEFAULT_CODES[name], value.get("Probability", 0)
            if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
                raise ChaosError(f"{name}: ErrorCode must be a number from 400 to 599")
            if not isinstance(prob, int) or isinstance(prob, bool) or not 0 <= prob <= 100:
                raise ChaosError(f"{name}: Probability must be a number from 0 to 100")
            if prob:
                new[name] = (code, prob)
        with self._lock:
            self._triggers = new
        self._changed()

    # -- the hook -----------------------------------------------------------------------

    def _changed(self) -> None:
        active = self.active
        present = self in self._hooks
        if active and not present:
            self._hooks.insert(0, self)  # chaos before handlers: it is the network
        elif not active and present:
            self._hooks.remove(self)
        if self.on_change is not None:
            self.on_change()

    def _pick(self, stage: str, info: SessionInfo) -> Fault | Reply | None:
        with self._lock:
            for name, (code, percent) in self._triggers.items():
                if MAILPIT_TRIGGERS[name] == stage and self._random.random() * 100 < percent:
                    enhanced = f"{code // 100}.0.0"
                    return Reply(code, enhanced, (f"Chaos {name.lower()} error",))  # Mailpit's words
            for fault in self._faults:
                if fault.applies(stage, info) and (
                    fault.probability >= 1.0 or self._random.random() < fault.probability
                ):
                    fault.fired += 1
                    return fault
        return None

    # -- SMTPHook: every stage goes through one method --------------------------------------

    async def on_connect(self, info: SessionInfo) -> Reply | None:
        return await self.hook("connect", info)

    async def on_helo(self, info: SessionInfo) -> Reply | None:
        return await self.hook("helo", info)

    async def on_auth(self, info: SessionInfo) -> Reply | None:
        return await self.hook("auth", info)

    async def on_mail(self, info: SessionInfo) -> Reply | None:
        return await self.hook("mail", info)

    async def on_rcpt(self, info: SessionInfo) -> Reply | None:
        return await self.hook("rcpt", info)

    async def on_data(self, info: SessionInfo) -> Reply | None:
        return await self.hook("data", info)

    async def on_message(self, info: SessionInfo) -> Reply | None:
        return await self.hook("message", info)

    async def hook(self, stage: str, info: SessionInfo) -> Reply | None:
        """``None`` to go on, a reply to send, or raises ``HookDisconnect``."""
        picked = self._pick(stage, info)
        if picked is None:
            return None
        if isinstance(picked, Reply):
            return picked
        if picked.exhausted and not self.active:
            self._changed()  # the last use of the last fault: take the hook out
        if picked.action == "disconnect":
            from ..servers.smtp_session import HookDisconnect  # loaded by the SMTP server that asks

            raise HookDisconnect(stage)
        if picked.action == "delay":
            await asyncio.sleep(picked.seconds)
        return picked.reply
