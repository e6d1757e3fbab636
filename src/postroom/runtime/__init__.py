"""Runtime features of a running postroom, below the test toolkit.

* :mod:`.chaos` -- fault injection on the SMTP listener (``--chaos``, the chaos API);
* :mod:`.handlers` -- code that decides about each recipient and message before the reply;
* :mod:`.webhooks` -- POST each new message to URLs (``--webhook``);
* :mod:`.printer` -- ``--print`` and ``--exit-after``;
* :mod:`.models` -- the parsed view of a message that handlers (and tests) get;
* :mod:`.install` -- builds them for a starting :class:`~postroom.app.App`, which holds
  them in typed fields (``app.chaos``, ``app.handlers``, ``app.webhooks``);
* :mod:`.gc` -- garbage-collector tuning of the long-running server processes.

Chaos and handlers hook into the SMTP listener through
:class:`postroom.servers.smtp_hooks.SMTPHook`: named, typed stage methods (``on_rcpt``,
``on_message``...). Nothing here imports :mod:`postroom.testing`; the test toolkit builds
on these modules.
"""
