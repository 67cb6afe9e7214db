"""The audit on the kernel-shaped fixture trees: exact decoded tables, bad input, reporting."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from armalias.audit import AuditResult, audit_tree, to_json
from armalias.cacheimpl import CACHE_MEMBERS, CACHE_OPS, D_EFFECTS, I_EFFECTS, SCOPES
from armalias.errors import InputError
from armalias.report.audit import render_audit_html, render_audit_markdown, render_audit_text

ASM = Path(__file__).resolve().parent.parent / "fixtures" / "asm"
STYLES = ("old-style", "new-style")


def project(result: AuditResult) -> dict:
    """The part of an audit that expected.json specifies (what a fixture tree decodes to)."""
    return {
        "implementations": [
            {
                "name": impl.name, "file": impl.file, "cache_type": impl.cache_type,
                "write_through": impl.write_through, "configs": list(impl.configs),
                "functions": {
                    member: {"symbol": fn.symbol, "resolved": fn.resolved, "d": fn.d, "i": fn.i,
                             "scope": fn.scope, "ops": list(fn.ops)}
                    for member, fn in impl.functions.items()
                },
            }
            for impl in result.implementations
        ],
        "undecoded": [[u.implementation, u.member, u.file, u.line] for u in result.undecoded],
        "fallthroughs": list(result.fallthroughs),
    }  # fmt: skip


@pytest.mark.parametrize("style", STYLES)
def test_fixture_tree_decodes_exactly_as_expected(style):
    expected = json.loads((ASM / style / "expected.json").read_text())
    got = project(audit_tree(ASM / style))
    # per implementation first, so a failure names what differs
    got_impls = {impl["name"]: impl for impl in got["implementations"]}
    want_impls = {impl["name"]: impl for impl in expected["implementations"]}
    assert sorted(got_impls) == sorted(want_impls)
    for name, want in want_impls.items():
        for member, fn in want["functions"].items():
            assert got_impls[name]["functions"].get(member) == fn, f"{name}.{member}"
        assert got_impls[name] == want, name
    assert got == expected


@pytest.mark.parametrize("style", STYLES)
def test_every_implementation_has_every_member_with_vocabulary_values(style):
    result = audit_tree(ASM / style)
    assert result.implementations
    for impl in result.implementations:
        assert tuple(impl.functions) == CACHE_MEMBERS
        for fn in impl.functions.values():
            assert fn.d in D_EFFECTS and fn.i in I_EFFECTS and fn.scope in SCOPES
            assert set(fn.ops) <= set(CACHE_OPS)
            assert ("unknown" in fn.ops) == bool(fn.undecoded)


def test_undecoded_encoding_is_reported_with_its_text_not_dropped():
    result = audit_tree(ASM / "old-style")
    fn = {i.name: i for i in result.implementations}["wb9_range"].functions["dma_flush_range"]
    assert "unknown" in fn.ops
    assert fn.undecoded == ("arch/arm/mm/proc-wb9.S:154: mcr p15, 0, r0, c7, c13, 1",)
    step = [s for s in fn.steps if s.op == "unknown"][0]
    assert (step.file, step.line, step.function) == ("arch/arm/mm/proc-wb9.S", 154, "wb9_range_dma_flush_range")
    doc = to_json(result, "fixtures/asm/old-style")
    assert {"implementation": "wb9_range", "member": "dma_flush_range", "file": "arch/arm/mm/proc-wb9.S",
            "line": 154, "text": fn.undecoded[0]} in doc["undecoded"]  # fmt: skip


def test_member_defined_outside_the_assembly_is_unknown_and_reported():
    result = audit_tree(ASM / "new-style")
    v9q = {i.name: i for i in result.implementations}["v9q"]
    fn = v9q.functions["dma_flush_range"]
    assert fn.ops == ("unknown",) and not fn.resolved
    assert ("v9q", "dma_flush_range") in {(u.implementation, u.member) for u in result.undecoded}
    # an #ifdef alternative that is C code: the assembly alternative is decoded, the other is noted
    kern_all = v9q.functions["flush_kern_all"]
    assert kern_all.resolved == "v9_flush_kern_cache_all"
    assert any("v9q_flush_kern_cache_all when CONFIG_V9Q_RAC" in n for n in kern_all.notes)


def test_conditions_are_recorded_on_steps():
    result = audit_tree(ASM / "new-style")
    v9 = {i.name: i for i in result.implementations}["v9"]
    steps = v9.functions["flush_kern_all"].steps
    outer = [s for s in steps if s.op == "unknown"]
    assert outer and outer[0].conditions == ("CONFIG_V9_OUTER",)
    smp = [s for s in steps if s.op == "invalidate-i-all-is"]
    up = [s for s in steps if s.op == "invalidate-i-all"]
    assert smp[0].conditions == ("ALT_SMP",) and up[0].conditions == ("!ALT_SMP",)
    assert steps[0].function == "v9_flush_dcache_all"  # reached by bl, inlined in program order
    wb9 = {i.name: i for i in audit_tree(ASM / "old-style").implementations}["wb9"]
    partial = [s for s in wb9.functions["dma_map_area"].steps if s.function == "wb9_dma_inv_range"]
    assert partial[0].conditional and partial[0].raw.startswith("mcrne")


def test_write_through_and_configs_come_from_processor_tables_and_kconfig():
    impls = {i.name: i for i in audit_tree(ASM / "old-style").implementations}
    assert impls["wt5"].write_through and not impls["wb9"].write_through
    assert impls["wt5"].configs == ("CPU_WB9",)
    assert impls["wb9"].cache_type == "VIVT"  # the select inside the help text is not read
    new = {i.name: i for i in audit_tree(ASM / "new-style").implementations}
    assert new["v9"].cache_type == "VIPT" and new["v9"].configs == ("CPU_V9",)
    assert new["v9"].table_file == "arch/arm/mm/cache.c"
    assert new["v9"].table_condition == "CONFIG_CPU_CACHE_V9"


def test_missing_tree_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        audit_tree(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        audit_tree(tmp_path / "file")
    with pytest.raises(InputError, match="no arch/arm/mm"):
        audit_tree(tmp_path)


def test_unreadable_files_are_skipped_with_a_reason_and_stray_bytes_read(tmp_path):
    mm = tmp_path / "arch" / "arm" / "mm"
    mm.mkdir(parents=True)
    for f in (ASM / "old-style" / "arch" / "arm" / "mm").iterdir():
        (mm / f.name).write_bytes(f.read_bytes())
    (mm / "proc-broken.S").write_bytes(b"ENTRY(x)\n\tmov r0, #0 @ \xff\xfe\n")
    unreadable = mm / "proc-locked.S"
    unreadable.write_text("ENTRY(y)\n\tret lr\n")
    unreadable.chmod(0)
    try:
        before = sorted((p.name, p.stat().st_mtime_ns) for p in mm.iterdir() if p.name != "proc-locked.S")
        result = audit_tree(tmp_path)
        after = sorted((p.name, p.stat().st_mtime_ns) for p in mm.iterdir() if p.name != "proc-locked.S")
    finally:
        unreadable.chmod(0o644)
    reasons = dict(result.skipped)
    # a stray byte in a comment is read as it is (as the kernel's tools read it): no reason to skip
    assert "arch/arm/mm/proc-broken.S" not in reasons
    if os.geteuid() != 0:  # root reads anything
        assert "unreadable" in reasons["arch/arm/mm/proc-locked.S"]
    assert len(result.implementations) == 3  # the rest of the tree is still audited
    assert before == after  # nothing written into the scanned tree
    assert bool(to_json(result, "t")["skipped"]) == (os.geteuid() != 0)  # root reads the locked file too


def test_json_document_has_the_contract_shape():
    doc = to_json(audit_tree(ASM / "old-style"), "fixtures/asm/old-style")
    assert doc["tool"] == "armalias" and doc["schema"] == 1 and doc["root"] == "fixtures/asm/old-style"
    impl = {i["name"]: i for i in doc["implementations"]}["wb9"]
    assert {"name", "file", "cache_type", "configs", "functions"} <= set(impl)
    ckr = impl["functions"]["coherent_kern_range"]
    assert (ckr["d"], ckr["i"], ckr["scope"]) == ("clean", "invalidate", "range")
    assert ckr["ops"] == ["clean-d-line", "invalidate-i-line", "flush-btb", "drain-wb"]
    json.dumps(doc)  # serialisable


def test_renderings_show_every_implementation_and_the_confirms_column():
    result = audit_tree(ASM / "old-style")
    findings = [{"rule": "AA001", "file": "arch/arm/kernel/patch.c", "line": 96,
                 "model": {"verdict": "confirmed", "implementations": {"wb9": "confirmed", "wt5": "refuted"}}}]
    buf = io.StringIO()
    render_audit_text(result, Console(file=buf, width=300), findings=findings)
    text = buf.getvalue()
    md = render_audit_markdown(result, findings=findings)
    page = render_audit_html(result, findings=findings)
    for out in (text, md, page):
        for impl in result.implementations:
            assert impl.name in out
        assert "confirms" in out and "AA001 arch/arm/kernel/patch.c:96" in out
        assert "c7, c13, 1" in out  # the undecoded instruction is shown
    row = [line for line in md.splitlines() if line.startswith("| `wt5`")][0]
    assert "AA001" not in row  # refuted on wt5: not a confirmation
    assert "confirms" not in render_audit_markdown(result)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.startswith("<!DOCTYPE html>")


def _round_trip_equal(result: AuditResult) -> None:
    from armalias.audit import implementation_to_dict
    from armalias.model.scenario import impl_from_dict

    assert result.implementations
    for impl in result.implementations:
        back = impl_from_dict(json.loads(json.dumps(implementation_to_dict(impl))))
        for member, fn in impl.functions.items():
            assert back.functions[member] == fn, f"{impl.name}.{member}"
        assert back == impl, impl.name


@pytest.mark.parametrize("style", STYLES)
def test_implementations_read_back_from_the_audit_cache_are_the_decoded_ones(style):
    """The model replays `steps` when the reader recorded them (the write-through #ifdef branches
    left out): an implementation read back from JSON (the audit cache) must carry them, or a warm run
    replays other operations than a cold one."""
    _round_trip_equal(audit_tree(ASM / style))


@pytest.mark.realtree
@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_real_tree_implementations_round_trip(version):
    from realtree import kernel_tree

    _round_trip_equal(audit_tree(kernel_tree(version)))
