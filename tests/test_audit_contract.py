"""What each member covers, read from its arguments' flow, and the contract deviations (rule AA006).

On the kernel-shaped fixture tree fixtures/asm/extents ("xyz" keeps every contract, "xyz_range" puts
one page from the start in r1 in two members), on small inline sources, and on the real trees.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from armalias.audit import Caller, audit_tree, entry_points, to_json, with_callers
from armalias.report.audit import render_audit_html, render_audit_markdown, render_audit_text
from armalias.scan import CallSite
from armalias.source.asm import load_cache_ops
from armalias.source.asmtree import AsmTree, summarize
from conftest import expectations
from test_rule_fixtures import AUDIT_FIXTURE_FILES

ASM = Path(__file__).resolve().parent.parent / "fixtures" / "asm"
TREE = ASM / "extents"
XYZ = "arch/arm/mm/proc-xyz.S"


@pytest.fixture(scope="module")
def result():
    return audit_tree(TREE)


def functions(result, name):
    return next(impl for impl in result.implementations if impl.name == name).functions


def line_of(text: str) -> int:
    """The line of the fixture holding `text` (the test reads it, so no number is hard-coded)."""
    lines = (TREE / XYZ).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


# -- what each member covers -----------------------------------------------------------------------


def test_a_size_replaced_by_one_page_before_use_is_page_scope(result):
    fn = functions(result, "xyz_range")["flush_kern_dcache_area"]
    assert (fn.scope, fn.d_scope, fn.i_scope) == ("page", "page", "whole")
    assert [(s.op, s.extent) for s in fn.steps if s.extent] == [
        ("clean+invalidate-d-range", "page"), ("invalidate-i-all", "whole")]
    where = line_of("add\tr1, r0, #PAGE_SZ - CACHE_DLINESIZE")
    assert any(f"{XYZ}:{where}: add r1, r0, #PAGE_SZ - CACHE_DLINESIZE" in n and "one page from the start" in n
               for n in fn.notes), fn.notes


def test_a_loop_bound_set_to_one_page_and_reached_by_fall_through_is_page_scope(result):
    fn = functions(result, "xyz_range")["coherent_kern_range"]
    assert (fn.scope, fn.d_scope, fn.i_scope) == ("page", "page", "page")
    assert {s.extent for s in fn.steps if s.extent} == {"page"}


@pytest.mark.parametrize("impl,member", [
    ("xyz", "flush_kern_dcache_area"),  # add r1, r0, r1: the loop runs to addr + size
    ("xyz", "coherent_kern_range"),  # a tail branch into coherent_user_range's loop
    ("xyz", "coherent_user_range"),  # r1 pushed, clobbered by a helper, popped before the loop
    ("xyz", "flush_user_range"),  # addne r1, r0, #PAGE_SZ: on one path only, the end stays in play
    ("xyz", "dma_flush_range"),
    ("xyz_range", "dma_flush_range"),  # subne r1, r1, #1: the top comes from the end given
])
def test_members_bounded_by_the_end_or_size_they_are_given_are_range_scope(result, impl, member):
    fn = functions(result, impl)[member]
    assert fn.scope == "range" and fn.d_scope == "range", (impl, member)
    assert {s.extent for s in fn.steps if "-d-" in s.op} == {"range"}


def test_partial_line_cleans_outside_a_loop_cover_one_line(result):
    fn = functions(result, "xyz")["dma_map_area"]
    extents = [(s.op, s.extent, s.line) for s in fn.steps if s.extent]
    assert extents == [
        ("clean-d-line", "line", line_of("first partial line")), ("clean-d-line", "line", line_of("last partial line")),
        ("invalidate-d-line", "range", line_of("c7, c6, 1")),
        ("clean+invalidate-d-line", "range", line_of("xyz_dma_flush_range") + 1),
    ]
    assert fn.scope == "range"  # single lines beside the loop over the range


def test_whole_cache_loops_are_whole(result):
    fn = functions(result, "xyz")["flush_kern_all"]
    assert (fn.scope, fn.d_scope) == ("whole", "whole")


def tree_of(tmp_path: Path, text: str) -> AsmTree:
    mm = tmp_path / "arch" / "arm" / "mm"
    mm.mkdir(parents=True)
    (mm / "cache-t.S").write_text(text)
    tree = AsmTree(root=tmp_path, optable=load_cache_ops())
    tree.read_file(mm / "cache-t.S")
    tree.finish()
    return tree


@pytest.mark.parametrize("body,extent", [
    ("\tmov\tr1, #4096\n\tadd\tr1, r1, r0\n", "page"),  # a literal page size
    ("\tadd\tr1, r0, #64\n", "fixed"),  # a fixed length from the start: neither range nor page
    ("\tbl\tnot_in_the_assembly\n", "range"),  # a callee not followed: r1 unknown, read as the range
    ("\tldr\tr1, [r0]\n", "range"),  # loaded from memory: unknown
    ("\tpush\t{r1}\n\tmov\tr1, #0\n\tpop\t{r1}\n", "range"),
    ("\tpush\t{r1, r2}\n\tmov\tr1, #0\n\tpop\t{r1}\n", "range"),  # a pop that does not match: unknown
    ("\tpush\t{r1, r2}\n\tmov\tr1, #0\n\tpop\t{r2, r3}\n", "fixed"),  # r1 is never restored
])
def test_register_flow_shapes(tmp_path, body, extent):
    tree = tree_of(tmp_path, "ENTRY(t_area)\n" + body
                   + "1:\tmcr\tp15, 0, r0, c7, c14, 1\n\tadd\tr0, r0, #32\n\tcmp\tr0, r1\n\tblo\t1b\n\tret\tlr\n")
    coverage = tree.coverage("t_area")
    step = next(s for s in tree.trace("t_area").steps if s.op == "clean+invalidate-d-line")
    assert coverage.extent_of(step) == extent


def test_summary_scope_prefers_the_range_then_the_page():
    from armalias.cacheimpl import CacheOp

    def steps(*pairs):
        return [CacheOp(op, "", "f", 1, extent=extent) for op, extent in pairs]

    assert summarize(steps(("clean-d-line", "page"), ("invalidate-i-all", "whole"))).scope == "page"
    both = summarize(steps(("clean-d-line", "page"), ("clean-d-line", "range")))
    assert (both.scope, both.d_scope) == ("range", "range")  # some operation covers the range given
    mixed = summarize(steps(("clean-d-line", "range"), ("invalidate-i-line", "page")))
    assert (mixed.scope, mixed.d_scope, mixed.i_scope) == ("page", "range", "page")
    assert summarize(steps(("clean-d-line", ""))).scope == "range"  # not analysed: as before


# -- the deviations ---------------------------------------------------------------------------------


def test_audit_fixture_deviations_exact():
    """The `expect: AA006` / `ok: AA006` tags of the audit fixture trees, on the line where the
    member's code starts, against the audit's deviations: the exact set, as for the C fixtures."""
    trees = {p.parents[3] for p in AUDIT_FIXTURE_FILES if expectations(p)["expect"] | expectations(p)["ok"]}
    assert trees, "no tagged audit fixture"
    for tree in trees:
        found = {(d.file, d.line, d.rule) for d in audit_tree(tree).deviations}
        want, ok = set(), set()
        for path in AUDIT_FIXTURE_FILES:
            if path.parents[3] != tree:
                continue
            rel = path.relative_to(tree).as_posix()
            tags = expectations(path)
            want |= {(rel, line, code) for line, code in tags["expect"]}
            ok |= {(rel, line, code) for line, code in tags["ok"]}
        assert found == want, f"missing {sorted(want - found)}, noisy {sorted(found - want)}"
        assert not found & ok


def test_deviation_messages_and_witnesses(result):
    by_member = {(d.implementation, d.member): d for d in result.deviations}
    assert set(by_member) == {("xyz_range", "flush_kern_dcache_area"), ("xyz_range", "coherent_kern_range")}
    area = by_member["xyz_range", "flush_kern_dcache_area"]
    assert area.rule == "AA006" and area.scope == "page" and area.symbol == "xyz_range_flush_kern_dcache_area"
    assert "written back" in area.message and "one page from the start" in area.message
    assert area.witness[0] == "on xyz_range:"
    assert area.witness[-1] == "external read (PoC) lowmem1+0x0 -> memory (PoC): old; last written 0x22222222: STALE"
    assert any("covers one page from lowmem+0x0, not the 0x2000 bytes asked" in w for w in area.witness)
    coherent = by_member["xyz_range", "coherent_kern_range"]
    assert coherent.witness[-1].startswith("fetch exec1+0x0") and coherent.witness[-1].endswith("STALE")
    assert area.callers == ()  # the audit alone has no call sites


def test_json_has_scope_page_step_extents_and_the_deviations(result):
    doc = json.loads(json.dumps(to_json(result, "t")))
    impl = {i["name"]: i for i in doc["implementations"]}["xyz_range"]
    area = impl["functions"]["flush_kern_dcache_area"]
    assert (area["scope"], area["d_scope"], area["i_scope"]) == ("page", "page", "whole")
    assert [(s["op"], s["extent"]) for s in area["steps"]] == [
        ("clean+invalidate-d-range", "page"), ("invalidate-i-all", "whole"), ("drain-wb", "")]
    assert doc["stats"]["deviations"] == len(doc["deviations"]) == 2
    for d in doc["deviations"]:
        assert {"implementation", "member", "rule", "message", "witness", "callers"} <= set(d)
        assert d["rule"] == "AA006" and d["witness"][-1].endswith("STALE") and d["callers"] == []


def test_callers_are_the_call_sites_of_the_kernel_functions_reaching_the_member(result):
    assert entry_points("flush_kern_dcache_area") == (
        "__cpuc_flush_dcache_area", "flush_kernel_vmap_range", "invalidate_kernel_vmap_range")
    sites = [
        CallSite("flush_kernel_vmap_range", "__patch_text_real", "arch/arm/kernel/patch.c", 87, 3),
        CallSite("__cpuc_flush_dcache_area", "__sync_cache_range_w", "arch/arm/include/asm/cacheflush.h", 392, 2,
                 ("__cpuc_clean_dcache_area",)),
        CallSite("flush_icache_range", "set_fiq_handler", "arch/arm/kernel/fiq.c", 104, 3),
        CallSite("__cpuc_coherent_kern_range", "set_fiq_handler", "arch/arm/kernel/fiq.c", 102, 3,
                 ("flush_icache_range",)),
        CallSite("outer_clean_range", "x", "arch/arm/kernel/x.c", 1, 1),
    ]
    got = {d.member: d.callers for d in with_callers(result, sites).deviations}
    assert got["flush_kern_dcache_area"] == (
        Caller("arch/arm/include/asm/cacheflush.h", 392, "__sync_cache_range_w", "__cpuc_flush_dcache_area"),
        Caller("arch/arm/kernel/patch.c", 87, "__patch_text_real", "flush_kernel_vmap_range"))
    assert got["coherent_kern_range"] == (
        Caller("arch/arm/kernel/fiq.c", 102, "set_fiq_handler", "__cpuc_coherent_kern_range"),
        Caller("arch/arm/kernel/fiq.c", 104, "set_fiq_handler", "flush_icache_range"))
    doc = to_json(with_callers(result, sites), "t")
    assert {"file": "arch/arm/kernel/patch.c", "line": 87, "function": "__patch_text_real",
            "callee": "flush_kernel_vmap_range"} in doc["deviations"][0]["callers"] + doc["deviations"][1]["callers"]


def test_renderings_show_the_deviations(result):
    result = with_callers(result, [CallSite("flush_kernel_vmap_range", "__patch_text_real",
                                            "arch/arm/kernel/patch.c", 87, 3)])
    buf = io.StringIO()
    render_audit_text(result, Console(file=buf, width=400))
    md, page = render_audit_markdown(result), render_audit_html(result)
    for out in (buf.getvalue(), md, page):
        assert "Contract deviations" in out and "2 contract deviations" in out
        assert "AA006 xyz_range.flush_kern_dcache_area" in out
        assert "arch/arm/kernel/patch.c:87 in __patch_text_real" in out
        assert "last written 0x22222222: STALE" in out
    assert "<script" not in page


def test_an_audit_without_deviations_says_so_and_shows_no_section():
    quiet = audit_tree(ASM / "new-style")
    assert quiet.deviations == ()
    assert "Contract deviations" not in render_audit_markdown(quiet) and "0 contract deviations" in render_audit_markdown(quiet)


# -- the real trees -----------------------------------------------------------------------------------


@pytest.mark.realtree
@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_real_tree_feroceon_range_flush_kern_dcache_area_covers_one_page(version):
    from realtree import kernel_tree

    root = kernel_tree(version)
    result = audit_tree(root)
    pages = {(impl.name, member) for impl in result.implementations for member, fn in impl.functions.items()
             if "page" in (fn.scope, fn.d_scope, fn.i_scope)}
    assert pages == {("feroceon_range", "flush_kern_dcache_area")}
    fn = functions(result, "feroceon_range")["flush_kern_dcache_area"]
    assert (fn.scope, fn.d_scope, fn.i_scope) == ("page", "page", "whole")
    # every cited line holds what is cited: the instruction that replaces the size, and each op
    note = next(n for n in fn.notes if "replaced before use" in n)
    file, line, text = re.search(r"\((arch/arm/mm/[\w.-]+\.S):(\d+): (.+?)\)", note).groups()
    source = (root / file).read_text().splitlines()
    assert text == "add r1, r0, #PAGE_SZ - CACHE_DLINESIZE"
    assert re.sub(r"\s+", " ", source[int(line) - 1].split("@")[0]).strip() == text
    for step in fn.steps:
        assert re.sub(r"\s+", " ", (root / step.file).read_text().splitlines()[step.line - 1].split("@")[0]).strip() \
            == step.raw
    assert [(d.implementation, d.member) for d in result.deviations] == [("feroceon_range", "flush_kern_dcache_area")]
    assert result.deviations[0].witness[-1].endswith("STALE")


@pytest.mark.parametrize("count,latch,extent", [
    ("\tmov\tr2, r1\n", "\tsubs\tr2, r2, #32\n\tbne\t1b\n", "range"),  # a down-counter from the size
    ("\tmov\tr2, #PAGE_SIZE\n", "\tsubs\tr2, r2, #32\n\tbne\t1b\n", "page"),  # ... from the page size
    ("\tmov\tr2, r1\n", "\tsub\tr2, r2, #32\n\tcbnz\tr2, 1b\n", "range"),  # the count in cbnz itself
    ("\tmov\tr2, #4096\n", "\tsub\tr2, r2, #32\n\tcbnz\tr2, 1b\n", "page"),
])
def test_counted_loops_are_bounded_by_what_they_count(tmp_path, count, latch, extent):
    tree = tree_of(tmp_path, "ENTRY(t_area)\n" + count + "1:\tmcr\tp15, 0, r0, c7, c10, 1\n\tadd\tr0, r0, #32\n"
                   + latch + "\tret\tlr\n")
    step = next(s for s in tree.trace("t_area").steps if s.op == "clean-d-line")
    assert tree.coverage("t_area").extent_of(step) == extent
