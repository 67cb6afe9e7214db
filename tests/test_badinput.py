"""Bad input: a clear message, the scan goes on, nothing is written into the scanned tree."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from armalias.cli import main


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def bad_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    d = root / "arch" / "arm" / "kernel"
    d.mkdir(parents=True)
    (root / "include").mkdir()
    (d / "good.c").write_text("void good(void) { flush_icache_range(1, 2); }\n")
    (d / "empty.c").write_bytes(b"")
    (d / "binary.c").write_bytes(b"\x7fELF\x00\x01\x02" + bytes(range(256)))
    (d / "latin1.c").write_bytes(b"/* caf\xe9 */ void f(void) { }\n")
    (d / "broken.c").write_text("void broken(void) { if (x { flush_icache_range(a, b); \n int y = ;;; }}}\n"
                                "void after(void) { flush_icache_range(c, d); }\n")
    (d / "loop").symlink_to(d, target_is_directory=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.c").write_text("void secret(void) { flush_icache_range(0, 1); }\n")
    (d / "escape").symlink_to(outside, target_is_directory=True)
    (d / "escape.c").symlink_to(outside / "secret.c")
    return root


def run_json(capsys, *args) -> tuple[int, dict, str]:
    rc = main(["scan", "--format", "json", *map(str, args)])
    captured = capsys.readouterr()
    return rc, json.loads(captured.out), captured.err


def test_missing_path_exits_2_with_one_line(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "armalias", "scan", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_each_bad_file_is_skipped_with_its_reason(bad_tree: Path, capsys):
    before = tree_snapshot(bad_tree)
    rc, data, err = run_json(capsys, bad_tree, "--jobs", "1")
    assert rc == 0 and "Traceback" not in err
    reasons = {s["file"]: s["reason"] for s in data["skipped"]}
    base = "arch/arm/kernel/"
    assert reasons[base + "empty.c"] == "empty file"
    assert reasons[base + "binary.c"].startswith("binary file")
    assert base + "latin1.c" not in reasons  # a Latin-1 comment is read as it is, not skipped
    assert "symlink loop" in reasons[base + "loop"]
    assert "outside the scanned tree" in reasons[base + "escape"]
    assert "outside the scanned tree" in reasons[base + "escape.c"]
    # broken C is parsed as far as it goes; the function after it is still found
    sites = {(c["caller"], c["file"]) for c in data["callsites"]}
    assert ("after", base + "broken.c") in sites and ("good", base + "good.c") in sites
    assert not any("secret" in c["caller"] for c in data["callsites"])
    assert data["stats"]["skipped"] == len(data["skipped"])
    assert tree_snapshot(bad_tree) == before


def test_directory_without_c(tmp_path: Path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("nothing to see\n")
    rc, data, _ = run_json(capsys, tmp_path)
    assert rc == 0
    assert data["stats"]["files"] == 0 and data["callsites"] == [] and data["findings"] == []


def test_cache_inside_scanned_tree_is_not_written(bad_tree: Path, monkeypatch, capsys):
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(bad_tree / "cache"))
    run_json(capsys, bad_tree)
    assert not (bad_tree / "cache").exists()


def test_unknown_subcommand_and_bad_flag_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--format", "yaml", "."])
    assert exc.value.code == 2


def test_a_single_file_that_is_not_c_is_skipped_with_its_reason(tmp_path: Path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("flush_icache_range(a, b);\n")
    rc, data, err = run_json(capsys, notes)
    assert rc == 0 and "Traceback" not in err
    assert data["skipped"] == [{"file": "notes.txt", "reason": "not a C, header or assembly file"}]
    assert data["callsites"] == []


def test_a_huge_file_is_skipped_with_its_size_unread(tmp_path: Path, monkeypatch):
    """Generated register headers run to tens of MB (drivers/gpu/drm/amd/include/asic_reg: 11 files,
    158 MB of 6.12 over MAX_FILE_BYTES).  They are never parsed; the prefilter says so from their
    size and does not read them, whether or not they name a word of the rules."""
    import armalias.source.tree
    from armalias.scan import ScanOptions, scan

    monkeypatch.setattr(armalias.source.tree, "MAX_FILE_BYTES", 1000)
    (tmp_path / "arch/arm/kernel").mkdir(parents=True)
    (tmp_path / "include").mkdir()
    (tmp_path / "arch/arm/kernel/good.c").write_text("void good(void) { flush_icache_range(1, 2); }\n")
    regs = tmp_path / "drivers/gpu/asic_reg"
    regs.mkdir(parents=True)
    masks = "#define REG_A 0x1\n" * 200  # no word of the rules
    (regs / "sh_mask.h").write_text(masks)
    (regs / "named.h").write_text("#define F flush_icache_range\n" + "#define REG_B 0x2\n" * 100)
    asked = []  # the sizes the prefilter's reads ask for
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    result = scan([tmp_path], ScanOptions(jobs=1, use_cache=False, whole_tree=True))
    reasons = {s.file: s.reason for s in result.skipped}
    assert reasons["drivers/gpu/asic_reg/sh_mask.h"] == f"too large ({len(masks)} bytes > 1000)"
    assert reasons["drivers/gpu/asic_reg/named.h"].startswith("too large (")
    assert asked and max(asked) <= 1001  # nothing larger than the limit was read
    assert [c.file for c in result.callsites] == ["arch/arm/kernel/good.c"]


def test_a_file_past_its_time_bound_is_skipped_with_the_reason(tmp_path: Path, monkeypatch):
    """A pathological file never hangs the run: past --file-timeout, tree-sitter stops (its
    progress callback says so) and the file is skipped with the reason; the other files are
    analysed.  The clock here is one of the test's own, moving a millisecond each time it is read,
    so the large file is past its bound whatever the machine."""
    import armalias.source.cparse as cparse
    from armalias.scan import ScanOptions, scan

    (tmp_path / "arch/arm/kernel").mkdir(parents=True)
    (tmp_path / "include").mkdir()
    (tmp_path / "arch/arm/kernel/good.c").write_text("void good(void) { flush_icache_range(1, 2); }\n")
    slow = "".join(f"int f{i}(int x) {{ return g(x, {i}) + h(x); }}\n" for i in range(4000))
    (tmp_path / "arch/arm/kernel/slow.c").write_text("void s(void) { flush_icache_range(3, 4); }\n" + slow)
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001
        return now[0]

    monkeypatch.setattr(cparse, "monotonic", clock)
    opts = ScanOptions(jobs=1, cache_dir=tmp_path.parent / "cache" / "facts", reuse=True, file_timeout=1.0)
    result = scan([tmp_path], opts)
    assert {s.file: s.reason for s in result.skipped} == {
        "arch/arm/kernel/slow.c": "took longer than 1 s to parse (--file-timeout)"}
    assert [c.file for c in result.callsites] == ["arch/arm/kernel/good.c"]
    # a result that depends on the machine's speed is not remembered: the next scan parses again
    again = scan([tmp_path], opts)
    assert not again.reused and [s.file for s in again.skipped] == ["arch/arm/kernel/slow.c"]
    monkeypatch.undo()
    result = scan([tmp_path], ScanOptions(jobs=1, use_cache=False))
    assert not result.skipped and {c.file for c in result.callsites} == {"arch/arm/kernel/good.c", "arch/arm/kernel/slow.c"}


def test_file_timeout_must_be_a_positive_number(tmp_path: Path, capsys):
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(SystemExit) as exc:
            main(["scan", str(tmp_path), "--file-timeout", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--file-timeout" in err and "seconds" in err


def test_extraction_stops_at_its_deadline():
    from armalias.source.cparse import TooSlow, monotonic
    from armalias.source.extract import extract_bytes

    src = b"void f(void) { flush_icache_range(1, 2); }\n"
    assert extract_bytes("a.c", src, "d", monotonic() + 60).calls
    with pytest.raises(TooSlow):
        extract_bytes("a.c", src, "d", monotonic() - 1)


def test_the_command_leaves_at_once_with_its_output_whole(tmp_path: Path):
    """`python -m armalias` (as the console script, armalias.cli.run) leaves with os._exit once main
    returns: the JSON on stdout and in --output is whole, the exit code is main's, worker processes
    are not left behind, and a reader that goes away early (| head -1) gets no traceback."""
    import os
    import signal

    tree = Path(__file__).resolve().parent.parent / "fixtures" / "tree"
    out = tmp_path / "scan.json"
    env = dict(os.environ, ARMALIAS_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "armalias", "scan", str(tree), "--format", "json", "--jobs", "2",
                           "--fail-on", "note"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # the fixture tree has notes
    data = json.loads(proc.stdout)
    assert data["findings"] and data["stats"]["files"] > 5
    proc = subprocess.run([sys.executable, "-m", "armalias", "scan", str(tree), "--format", "json",
                           "--output", str(out)], capture_output=True, text=True, env=env)
    written = json.loads(out.read_text())
    assert proc.returncode == 0 and (written["findings"], written["callsites"]) == (data["findings"], data["callsites"])
    # a reader that stops after one line
    pipe = subprocess.Popen([sys.executable, "-m", "armalias", "explain", "AA001"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = pipe.stdout.readline()
    pipe.stdout.close()
    err = pipe.stderr.read().decode()
    assert pipe.wait(timeout=60) in (0, 1, -signal.SIGPIPE) and first and "Traceback" not in err
    if Path("/proc/self/environ").exists():  # every process these runs started (they carry env) has ended
        import time

        mark = f"ARMALIAS_CACHE_DIR={tmp_path / 'cache'}".encode()

        def left() -> list[str]:
            found = []
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(entry.name)
                except OSError:
                    pass
            return found

        deadline = time.monotonic() + 10
        while left() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left()
