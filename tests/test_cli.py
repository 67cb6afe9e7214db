"""The command line contract: scan JSON shape, graph formats, paths relative to the root given."""

import json
import xml.etree.ElementTree as ET
import shutil
from pathlib import Path

from armalias.cli import main


def test_scan_json_contract(demo_tree: Path, capsys):
    assert main(["scan", str(demo_tree), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"tool", "version", "schema", "root", "stats", "callsites", "findings", "skipped"} <= set(data)
    assert data["schema"] == 1 and data["root"] == str(demo_tree)
    assert {"files", "parsed", "skipped", "functions", "seconds"} <= set(data["stats"])
    # include/linux/compiler.h mentions no word of the rules: considered, not parsed (the prefilter)
    assert (data["stats"]["files"], data["stats"]["parsed"]) == (10, 9)
    for c in data["callsites"]:
        assert not c["file"].startswith("/") and "\\" not in c["file"]
        assert (demo_tree / c["file"]).is_file()
        assert isinstance(c["via"], list)


def test_scan_single_file_paths_are_relative_to_it(demo_tree: Path, capsys):
    target = demo_tree / "arch/arm/kernel/fiq.c"
    main(["scan", str(target), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert {c["file"] for c in data["callsites"]} == {"fiq.c"}


def test_scan_text_groups_by_callee(demo_tree: Path, capsys):
    assert main(["scan", str(demo_tree)]) == 0
    out = capsys.readouterr().out
    assert "functions 13" in out
    assert "fncpy (1)" in out and "via fncpy -> flush_icache_range" in out


def test_graph_formats(demo_tree: Path, capsys, tmp_path: Path):
    main(["graph", str(demo_tree), "--function", "flush_icache_range", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    (g,) = data["graphs"]
    callers = {e["caller"] for e in g["edges"] if e["callee"] == "flush_icache_range"}
    assert {"set_fiq_handler", "__patch_text_real", "fncpy", "flush_insns"} <= callers
    main(["graph", str(demo_tree), "-f", "flush_icache_range", "--format", "dot"])
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "flush_icache_range"') and '"fncpy" -> "flush_icache_range"' in dot
    out = tmp_path / "g.graphml"
    main(["graph", str(demo_tree), "-f", "fncpy", "--format", "graphml", "-o", str(out)])
    root = ET.parse(out).getroot()
    assert root.tag.endswith("graphml")
    main(["graph", str(demo_tree), "-f", "set_fiq_handler"])
    assert "set_fiq_handler" in capsys.readouterr().out


def test_graph_unknown_function_is_input_error(demo_tree: Path, capsys):
    assert main(["graph", str(demo_tree), "-f", "no_such_function"]) == 2
    assert "no_such_function" in capsys.readouterr().err


def test_explain_prints_rule_docs(capsys):
    assert main(["explain", "aa001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AA001 alias-write") and "flush_kernel_vmap_range(waddr, 4);" in out and "Why it matters:" in out


def test_explain_with_a_tree_says_what_its_implementations_do(tmp_path: Path, capsys):
    """The per-implementation claims come from the decoded assembly of the tree asked about, which
    is named with its kernel version; without a tree explain says how to ask."""
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "asm" / "extents"
    tree = tmp_path / "linux"
    shutil.copytree(fixtures, tree)
    (tree / "Makefile").write_text("# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 3\nEXTRAVERSION = -rc1\n")
    assert main(["explain", "AA003", "--tree", str(tree), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert f"in {tree} (Linux 6.12.3-rc1, decoded from arch/arm/mm):" in out
    block = out[out.index("  flush_kern_dcache_area:"):]
    assert "    D clean+invalidate, I invalidate, over one page whatever the size: xyz_range (VIVT" in block
    assert "    D clean+invalidate, I invalidate: xyz (VIVT" in block
    assert main(["explain", "AA003"]) == 0
    assert "`armalias explain AA003 --tree PATH`" in capsys.readouterr().out
    assert main(["explain", "AA003", "--tree", str(tmp_path)]) == 2  # no arch/arm/mm there
    assert "not an ARM kernel tree" in capsys.readouterr().err


def test_explain_unknown_code_exits_2(capsys):
    assert main(["explain", "AA999"]) == 2
    assert "unknown rule code" in capsys.readouterr().err


def test_scan_exit_code_follows_fail_on(capsys):
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "AA002-stale-exec-alias.c"
    assert main(["scan", str(fixture), "--format", "gcc"]) == 0  # only a note
    assert main(["scan", str(fixture), "--format", "gcc", "--fail-on", "note"]) == 1
    assert "[AA002]" in capsys.readouterr().out


def test_findings_carry_model_verdicts_per_implementation(capsys):
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "AA001-alias-write.c"
    main(["scan", str(fixture), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    first = next(f for f in data["findings"] if f["function"] == "__patch_text_real")
    impls = first["model"]["implementations"]
    assert first["model"]["verdict"] == "confirmed"
    assert impls["feroceon"] == "confirmed" and impls["v7"] == "refuted"
    assert any("STALE" in line for line in first["model"]["witness"])
    assert first["write"]["alias"] == "exec|fixmap" and first["chain"][-1] == "__patch_text_real"


def test_audit_command_formats(tmp_path: Path, capsys):
    tree = Path(__file__).resolve().parent.parent / "fixtures" / "asm" / "new-style"
    assert main(["audit", str(tree), "--format", "json", "--no-findings"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and data["implementations"]
    out = tmp_path / "audit.html"
    assert main(["audit", str(tree), "--format", "html", "-o", str(out)]) == 0
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    assert main(["audit", str(tmp_path / "missing")]) == 2


def test_inline_suppression_baseline_and_unused(tmp_path: Path, capsys):
    src = (Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "AA001-alias-write.c").read_text()
    lines = src.splitlines()
    target = next(i for i, l in enumerate(lines) if "expect: AA001" in l and "(u32 *)waddr" in l)
    lines[target] += " // armalias: ignore[AA001] checked by hand"
    lines.append("void quiet(void) { } /* armalias: ignore[AA003] nothing here */")
    path = tmp_path / "sup.c"
    path.write_text("\n".join(lines) + "\n")
    main(["scan", str(path), "--format", "json"])
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    assert [f["line"] for f in data["suppressed"]] == [target + 1]
    assert target + 1 not in [f["line"] for f in data["findings"]]
    assert [u["codes"] for u in data["unused_suppressions"]] == [["AA003"]]
    assert "unused suppression" in cap.err
    base = tmp_path / "baseline.json"
    main(["scan", str(path), "--format", "json", "--write-baseline", str(base)])
    capsys.readouterr()
    assert main(["scan", str(path), "--format", "json", "--baseline", str(base)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["findings"] == [] and data["stats"]["baselined"] >= 3


def test_the_model_is_decoded_alongside_the_scan_or_by_it(demo_tree: Path, monkeypatch):
    """The cache model's implementations are decoded in a process of their own while the scan runs;
    when no process can be started the scan decodes them itself: the same findings either way."""
    import concurrent.futures
    import multiprocessing

    import armalias.extraction as extraction
    import armalias.pipeline as pipeline
    import armalias.scan as scan_module
    from armalias.scan import ScanOptions, scan

    started = []
    events = []  # the model is started once the first round of files is extracted, not before
    real_early, real_start = scan_module.ModelEarly, extraction.Extractor.start
    monkeypatch.setattr(scan_module, "ModelEarly",
                        lambda *a: started.append(a) or events.append("model") or real_early(*a))
    monkeypatch.setattr(extraction.Extractor, "start",
                        lambda self, rels, progress=None: events.append("extract") or real_start(self, rels, progress))
    real_flow = pipeline.find_alias_bugs
    monkeypatch.setattr(pipeline, "find_alias_bugs", lambda *a: events.append("flow") or real_flow(*a))
    alongside = scan([demo_tree], ScanOptions(jobs=2, use_cache=False)).findings
    assert len(started) == 1 and alongside and all(f.model.verdict != "not-run" for f in alongside)
    assert events[:2] == ["extract", "model"] and events[-1] == "flow"

    class NoProcesses:
        def __init__(self, *args, **kwargs):
            raise OSError("no processes left")

    def no_process(self):
        raise OSError("no processes left")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoProcesses)
    monkeypatch.setattr(multiprocessing.Process, "start", no_process)
    by_itself = scan([demo_tree], ScanOptions(jobs=2, use_cache=False)).findings
    assert len(started) == 2 and by_itself == alongside


def test_the_model_s_process_is_ended_and_joined_when_its_answer_is_not_wanted(demo_tree: Path, monkeypatch):
    """ModelEarly.close: a decoding nobody will read is ended and its process joined (a pool's
    worker left running held the command's output pipes open after os._exit); one that answered
    has ended by itself."""
    import multiprocessing
    import signal
    import time

    import armalias.model.validate as validate
    from armalias.scan import ModelEarly

    root = demo_tree
    early = ModelEarly(root, None)
    answered = early.result(None)
    early.close()
    assert answered and early.process.exitcode == 0
    monkeypatch.setattr(validate, "tree_implementations", lambda *a: time.sleep(20))  # read in the fork
    early = ModelEarly(root, None)
    early.close()
    assert early.process.exitcode == -signal.SIGTERM and not multiprocessing.active_children()


def test_a_command_runs_with_the_collector_paused_and_restores_it(demo_tree: Path, monkeypatch, capsys):
    """main runs the command without automatic garbage collection (workers.paused_gc) and leaves the
    collector as it found it, after an error too."""
    import gc

    import armalias.pipeline as pipeline

    seen = []
    real_flow = pipeline.find_alias_bugs
    monkeypatch.setattr(pipeline, "find_alias_bugs", lambda *a: seen.append(gc.isenabled()) or real_flow(*a))
    assert gc.isenabled()
    assert main(["scan", str(demo_tree), "--format", "json", "--no-cache"]) == 0
    assert seen == [False] and gc.isenabled()
    assert json.loads(capsys.readouterr().out)["callsites"]
    assert main(["graph", str(demo_tree), "-f", "no_such_function"]) == 2
    assert gc.isenabled()
    gc.disable()
    try:
        assert main(["scan", str(demo_tree), "--format", "json", "--no-cache"]) == 0
        assert seen and not any(seen) and not gc.isenabled()
    finally:
        gc.enable()


def test_run_leaves_the_command_s_result_and_the_collector_to_the_exit(demo_tree: Path, monkeypatch, capsys):
    """The console script (cli.run) leaves the command's result unfreed and the collector off for
    os._exit; main called as a function frees the result and restores the collector."""
    import gc
    import sys
    import types
    import weakref

    import armalias.cli as cli
    import armalias.scan as scan_module

    refs = []
    real_scan = scan_module.scan

    def scan(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        refs.append(weakref.ref(result))
        return result

    monkeypatch.setattr(scan_module, "scan", scan)
    argv = ["scan", str(demo_tree), "--format", "json", "--no-cache"]
    assert cli.main(argv) == 0
    assert refs[-1]() is None and gc.isenabled()
    capsys.readouterr()
    exits = []
    # only cli's own os._exit: the worker processes forked meanwhile must still leave by the real one
    monkeypatch.setattr(cli, "os", types.SimpleNamespace(_exit=exits.append))
    monkeypatch.setattr(sys, "argv", ["armalias", *argv])
    monkeypatch.setattr(cli, "_LEFT_TO_EXIT", None)
    try:
        cli.run()
        assert exits == [0] and refs[-1]() is not None and not gc.isenabled()
        assert json.loads(capsys.readouterr().out)["callsites"]
    finally:
        gc.enable()


def test_a_scan_that_stops_early_ends_the_model_s_process(demo_tree: Path, monkeypatch):
    """The model's decoding, started after the first round, is ended when the scan raises later."""
    import multiprocessing
    import time

    import pytest

    import armalias.pipeline as pipeline
    import armalias.scan as scan_module
    import armalias.model.validate as validate
    from armalias.scan import ScanOptions, scan

    started = []
    real_early = scan_module.ModelEarly
    monkeypatch.setattr(scan_module, "ModelEarly", lambda *a: started.append(real_early(*a)) or started[-1])
    monkeypatch.setattr(validate, "tree_implementations", lambda *a: time.sleep(20))  # read in the fork

    def stop(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "find_alias_bugs", stop)
    with pytest.raises(KeyboardInterrupt):
        scan([demo_tree], ScanOptions(jobs=2, use_cache=False))
    assert started and started[0].process.exitcode is not None and not multiprocessing.active_children()
