"""bench/run.py runs Coccinelle's two rules together and each on its own: split_cocci makes one
semantic patch per rule, with the preamble and the script rules that depend on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_rule_of_the_peer_patch_on_its_own():
    bench = _bench()
    parts = bench.split_cocci(bench.COCCI.read_text())
    assert sorted(parts) == ["alias_write_flush_other", "range_end_not_start_plus"]
    for name, text in parts.items():
        other = next(n for n in parts if n != name)
        assert text.startswith("//") and "virtual report" in text
        assert f"@{name}" in text and f"@script:python depends on {name}@" in text
        assert f"@{other}" not in text and f"depends on {other}" not in text
        assert text.count("@@") == 2  # the rule's and its script's metavariable separators


def test_split_keeps_every_line_of_a_rule():
    bench = _bench()
    text = "virtual report\n@a exists@\nexpression E;\n@@\nf(E);\n@b@\n@@\ng();\n@script:python depends on b@\n@@\nprint(1)\n"
    parts = bench.split_cocci(text)
    assert parts["a"] == "virtual report\n@a exists@\nexpression E;\n@@\nf(E);\n"
    assert parts["b"] == "virtual report\n@b@\n@@\ng();\n@script:python depends on b@\n@@\nprint(1)\n"


def test_the_bench_measures_creating_files_and_reports_it(tmp_path: Path, capsys):
    """The machine's cost of creating a file (a cold scan writes about 210 of them, the peers none)
    is measured at the bench's start and end, leaves nothing behind, and is printed with the table."""
    bench = _bench()
    us = bench.file_creation_us(tmp_path, count=20)
    assert us > 0 and list(tmp_path.iterdir()) == []
    bench.print_report({"tree": "T", "cpus": 2, "repeat": 1, "identifier_pass": "rg", "memory_method": "m",
                        "file_creation_us": [us, 75.5], "rows": [], "targets": []})
    out = capsys.readouterr().out
    assert f"creating a file (as a cold scan writes its cache), us: {us} at the start, 75.5 at the end" in out
