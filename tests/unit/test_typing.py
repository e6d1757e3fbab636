"""The public testing API type-checks as users write it (issue 20): ``mypy --strict`` on a
sample test file that uses every documented helper against the ``Mail`` protocol, and on
each concrete class (Server, its view, Client, its view) assigned to ``Mail``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent.parent / "typing" / "mail_sample.py"


def test_sample_test_file_passes_mypy_strict(tmp_path: Path) -> None:
    """One mypy run (it takes a while): the sample is clean; a file with two mistakes
    (a misspelt attribute, a list taken for a message) shows the check can fail."""
    bad = tmp_path / "bad_sample.py"
    bad.write_text(
        "from postroom.testing import Mail\n\n"
        "def test_x(mail: Mail) -> None:\n"
        "    print(mail.wait_for(to='a@example.com').from_.adress)\n"
        "    msg = mail.wait_for(count=2)\n"
        "    print(msg.subject)\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(SAMPLE),
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "mail_sample.py" in e], result.stdout
    assert len(errors) == 2, result.stdout + result.stderr
    assert '"Address" has no attribute "adress"' in errors[0]
    assert '"list[Message]" has no attribute "subject"' in errors[1]
