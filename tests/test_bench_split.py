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


def test_the_cold_scans_and_the_peers_take_turns(monkeypatch, tmp_path: Path):
    """Bench.interleaved runs run i of every command before run i + 1 of any, and makes one row per
    command from its own runs (their median), in the order given; repeat is the one-command case."""
    import argparse

    bench = _bench()
    order: list[str] = []
    # the fourth run of each: the memory run, untimed
    walls = {"a": iter([3.0, 1.0, 2.0, 9.0]), "b": iter([5.0, 6.0, 4.0, 9.0]), "c": iter([7.0, 7.0, 7.0, 9.0])}

    def measure(cmd, env=None, timeout=None, sample=True):
        order.append(cmd[0])
        return {"wall": next(walls[cmd[0][0]]), "rss_kb": 1024, "tree_kb": 2048, "rc": 0, "stdout": b"",
                "stderr": "", "timed_out": False}

    monkeypatch.setattr(bench, "measure", measure)
    args = argparse.Namespace(tree=tmp_path, repeat=3, armalias="armalias", semgrep=None, no_rg=True)
    b = bench.Bench(args)
    try:
        rows = b.interleaved("arch/arm", [("A", lambda i: ([f"a{i}"], None), None),
                                          ("B", lambda i: ([f"b{i}"], None), lambda r: {"last": r["wall"]})])
        assert order == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]
        assert [(r["what"], r["wall_s"], r["wall_all_s"]) for r in rows] == [
            ("A", 2.0, [3.0, 1.0, 2.0]), ("B", 5.0, [5.0, 6.0, 4.0])]
        assert rows[1]["info"] == {"last": 4.0} and b.rows == rows
        order.clear()
        assert b.repeat("C", "whole tree", lambda i: ([f"c{i}"], None))["wall_s"] == 7.0
        assert order == ["c0", "c1", "c2", "c3"]
    finally:
        import shutil

        shutil.rmtree(b.tmp, ignore_errors=True)


def test_the_check_kinds_and_the_slowest_one_as_a_target(tmp_path: Path):
    """Four kinds of one-file change, each a different patch per run; a new function calling a
    maintenance call is a new name each run.  The targets report the comment line's check and,
    apart, the slowest kind's."""
    import argparse

    bench = _bench()
    tree = tmp_path / "linux"
    (tree / "arch/arm/kernel").mkdir(parents=True)
    (tree / bench.CHECK_FILE).write_text("int x;\nvoid f(void *addr)\n{\n\tflush_icache_range(1, 2);\n}\n")
    b = bench.Bench(argparse.Namespace(tree=tree, repeat=1, armalias="armalias", semgrep=None, no_rg=True))
    try:
        texts = {code: b.one_file_patch(3, code).read_text() for code in ("", "call", "maintenance", "function")}
        assert "+/* armalias bench: one-file change 3 */" in texts[""]
        assert "+\tudelay(3);" in texts["call"] and "+\tflush_kernel_vmap_range(addr, 3);" in texts["maintenance"]
        assert "+void armalias_bench_sync_3(unsigned long a)" in texts["function"]
        assert "+\tflush_icache_range(a, a + 4);" in texts["function"]
        assert "armalias_bench_sync_4" in b.one_file_patch(4, "function").read_text()
    finally:
        import shutil

        shutil.rmtree(b.tmp, ignore_errors=True)

    def row(what, wall):
        return {"scope": "whole tree", "what": what, "wall_s": wall, "info": {}}

    rows = [row("armalias check warm (1-file change)", 0.3), row("armalias check warm (1-line call added)", 0.35),
            row("armalias check warm (new function calling a maintenance call)", 1.4)]
    found = {t["target"]: t for t in bench.targets(rows)}
    assert found["armalias check warm, 1-file change, whole tree < 1 s"]["result"] == "PASS"
    slowest = found["armalias check warm, slowest kind of 1-file change, whole tree < 1 s"]
    assert slowest["value"] == 1.4 and slowest["result"] == "MISS (new function calling a maintenance call)"
    rows[2]["wall_s"] = 0.9
    slowest = {t["target"]: t for t in bench.targets(rows)}["armalias check warm, slowest kind of 1-file change, whole tree < 1 s"]
    assert slowest["result"] == "PASS (new function calling a maintenance call)"


def test_the_check_targets_say_why_they_were_not_measured():
    """--arch-arm-only benches no check: plain n/a.  A check that is not there (or fails --help): said."""
    targets = _bench().targets
    check = next(t for t in targets([]) if t["target"].startswith("armalias check warm, 1-file"))
    assert check["result"] == "n/a"
    failed = {"scope": "whole tree", "what": "armalias check warm (1-file change)", "wall_s": None,
              "info": {"error": "not available yet"}}
    check = next(t for t in targets([failed]) if t["target"].startswith("armalias check warm, 1-file"))
    assert check["result"] == "n/a (check not available yet)"


def test_timed_runs_sample_no_memory_and_one_more_run_does(monkeypatch):
    """The memory sampler reads /proc while the command runs, taking CPU from it: the timed runs go
    without it, and the peak PSS comes from one more, untimed, run of each command."""
    import types

    bench = _bench()
    calls = []

    def fake_measure(cmd, env=None, timeout=None, sample=True):
        calls.append((cmd[0], sample))
        wall = {"a": 1.0, "b": 2.0}[cmd[0]] + (0.5 if sample else 0.0)  # sampling slows the run down
        return {"wall": wall, "rss_kb": 1024, "tree_kb": 4096 if sample else 0, "rc": 0, "stdout": b"",
                "stderr": "", "timed_out": False}

    monkeypatch.setattr(bench, "measure", fake_measure)
    b = bench.Bench.__new__(bench.Bench)
    b.args, b.rows, b.log = types.SimpleNamespace(repeat=3), [], lambda msg: None
    rows = b.interleaved("arch/arm", [("a", lambda i: (["a", str(i)], None), None),
                                      ("b", lambda i: (["b", str(i)], None), None)])
    assert calls == [("a", False), ("b", False)] * 3 + [("a", True), ("b", True)]
    assert [(r["what"], r["runs"], r["wall_s"], r["tree_pss_mb"], r["memory_run_wall_s"]) for r in rows] == [
        ("a", 3, 1.0, 4.0, 1.5), ("b", 3, 2.0, 4.0, 2.5)]


def test_measure_samples_the_process_tree_only_when_asked():
    import sys

    measure = _bench().measure
    cmd = [sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(0.4)"]
    assert measure(cmd, sample=False)["tree_kb"] == 0
    assert measure(cmd, sample=True)["tree_kb"] > 64 * 1024


def test_issue_6s_targets_are_told_apart_from_the_stricter_comparisons():
    """Issue 6 measured Coccinelle's two rules each in a run of its own ("0.5 + 1.0 s on arch/arm"):
    its cold and warm limits are against that; the same limits against both rules in one spatch run,
    and the slowest kind of one-file check, are printed apart as stricter comparisons."""
    bench = _bench()

    def row(scope, what, wall, **extra):
        return {"scope": scope, "what": what, "wall_s": wall, "info": {}, "tree_pss_mb": extra.get("pss")}

    rows = [row("arch/arm", "armalias scan cold", 0.6), row("arch/arm", "armalias scan warm", 0.08),
            row("arch/arm", "coccinelle (2 rules)", 0.4), row("arch/arm", "coccinelle (2 rules, one run each)", 0.75),
            row("whole tree", "armalias scan cold", 4.3, pss=300), row("whole tree", "coccinelle (2 rules)", 4.2),
            row("whole tree", "coccinelle (2 rules, one run each)", 8.6),
            row("whole tree", "armalias check warm (1-file change)", 0.3),
            row("whole tree", "armalias check warm (new function calling a maintenance call)", 1.1)]
    found = {t["target"]: t for t in bench.targets(rows)}
    assert all(isinstance(t["issue6"], bool) for t in found.values())
    issue6 = {name: t["result"] for name, t in found.items() if t["issue6"]}
    assert issue6 == {"arch/arm cold / Coccinelle arch/arm, one run per rule <= 1.0x": "PASS",
                      "arch/arm warm / Coccinelle arch/arm, one run per rule <= 0.3x": "PASS",
                      "whole tree cold / Coccinelle whole tree, one run per rule <= 1.0x": "PASS",
                      "whole tree peak memory (process-tree PSS) < 500 MB": "PASS",
                      "whole tree cold / lower bound <= 2.0x": "n/a",
                      "armalias check warm, 1-file change, whole tree < 1 s": "PASS"}
    stricter = {name: t["result"] for name, t in found.items() if not t["issue6"]}
    assert stricter == {"arch/arm cold / Coccinelle arch/arm <= 1.0x": "MISS",
                        "arch/arm warm / Coccinelle arch/arm <= 0.3x": "PASS",
                        "whole tree cold / Coccinelle whole tree <= 1.0x": "MISS",
                        "armalias check warm, slowest kind of 1-file change, whole tree < 1 s":
                            "MISS (new function calling a maintenance call)"}
    assert found["arch/arm cold / Coccinelle arch/arm, one run per rule <= 1.0x"]["value"] == 0.8
