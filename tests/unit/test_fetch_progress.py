"""The progress line of `postroom import`/`export`: on a terminal only, rewritten in place."""

from __future__ import annotations

import io

from postroom.fetch.deliver import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal_only() -> None:
    tty = Terminal()
    p = Progress("imported", tty)
    p.start -= 2.0
    p.last -= 1.0
    p.update(1234)
    assert tty.getvalue().startswith("\rimported 1,234 messages (")
    p.update(1300)  # within half a second of the last line: not redrawn
    assert "1,300" not in tty.getvalue()
    p.done()
    assert tty.getvalue().endswith("\r\x1b[K")  # the line is cleared for the summary

    pipe = io.StringIO()
    q = Progress("imported", pipe)
    q.last -= 1.0
    q.update(5)
    q.done()
    assert pipe.getvalue() == ""
