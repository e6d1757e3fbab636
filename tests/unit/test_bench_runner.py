"""benchmarks/run.py keeps the latest results of each machine and shows them side by side."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_run_under_test", ROOT / "benchmarks" / "run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "BY_MACHINE", tmp_path / "results" / "by-machine")
    monkeypatch.setattr(mod, "DOC", tmp_path / "performance.md")
    sys.modules.pop("bench_run_under_test", None)
    return mod


def test_machine_key_names_the_cpu_not_the_kernel(run: ModuleType) -> None:
    a = run.machine_key(
        "2 cores, Intel(R) Xeon(R) Processor (family 6, model 167), Python 3.11.7, Linux 6.1-a"
    )
    b = run.machine_key(
        "2 cores, Intel(R) Xeon(R) Processor (family 6, model 167), Python 3.11.7, Linux 6.2-b"
    )
    c = run.machine_key("2 cores, AMD EPYC, Python 3.11.7, Linux 6.1-a")
    assert a == b == "2-cores-intel-xeon-processor-family-6-model-167"
    assert c == "2-cores-amd-epyc"
    assert run.machine_key(run.machine())  # this machine has a usable key


def test_each_machine_keeps_its_latest_run_and_the_doc_shows_all_newest_first(run: ModuleType) -> None:
    def record(when: str, machine: str, value: int) -> None:
        md = f"_ingest measured {when} on {machine}_\n\n| x |\n| {value} |"
        run.save("ingest", {"suite": "ingest", "when": when, "machine": machine, "rows": [value]}, md)
        run.update_doc("ingest", run.tables("ingest"))

    run.DOC.write_text(
        "# Performance\n\nintro\n\n<!-- bench:ingest -->\nold\n<!-- /bench:ingest -->\n\nafter\n"
    )
    record("2026-11-22 09:54 UTC", "2 cores, AMD EPYC, Python 3.11.7, Linux x", 1)
    record("2026-12-03 16:35 UTC", "2 cores, Intel Xeon (family 6, model 167), Python 3.11.7, Linux y", 2)
    record("2026-12-03 17:00 UTC", "2 cores, Intel Xeon (family 6, model 167), Python 3.11.7, Linux y", 3)

    latest = json.loads((run.RESULTS / "ingest.json").read_text())
    assert latest["rows"] == [3]
    folders = sorted(p.name for p in run.BY_MACHINE.iterdir())
    assert folders == ["2-cores-amd-epyc", "2-cores-intel-xeon-family-6-model-167"]
    doc = run.DOC.read_text()
    assert "old" not in doc and doc.startswith("# Performance\n\nintro\n") and doc.rstrip().endswith("after")
    block = doc.split("<!-- bench:ingest -->")[1].split("<!-- /bench:ingest -->")[0]
    assert "| 3 |" in block and "| 1 |" in block and "| 2 |" not in block  # run 2 was replaced by run 3
    assert block.index("17:00") < block.index("09:54")  # newest first
