"""--whole-tree on real trees: what it reports is what some build of the kernel does.

Measured before this was enforced: whole 6.12 listed 1,041 call sites, of which 394 came through
another architecture's macro definition (ARC's jump_label.c calling ARM's __cpuc_coherent_kern_range
through ARM's flush_icache_range, ARM's fiq.c calling __flush_icache_all through m68k's); the
11 calls of ARM's gic_flush_dcache_to_poc in drivers/irqchip/irq-gic-v3-its.c were found on 6.1
only, because the file happened to be selected; and on 6.1 the chain of the AA002 note in
__patch_text_real ran through parisc, um and a USB driver's static start()."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.rules import load_vocabulary
from armalias.scan import ScanOptions, scan
from realtree import kernel_tree

pytestmark = pytest.mark.realtree


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def whole(request, tmp_path_factory):
    tree = kernel_tree(request.param)
    cache = tmp_path_factory.mktemp(f"whole-{request.param}") / "facts"
    return scan([tree], ScanOptions(whole_tree=True, cache_dir=cache))


def test_the_findings_with_chains_one_build_takes(whole):
    """The two residual read-back notes, the uprobes XOL slot and ptrace's copy_to_user_page
    invalidated only at their kernel aliases, the Spectre-BHB vectors invalidated only at
    vectors_page, sunxi's first-comer flag written before cpu_suspend(), and pxa3xx's standby code
    copied into SRAM and called through a pointer (judged in bench/results-detection.md).  Another architecture's patch_text, which writes through its
    parameter, is not what ARM's jump labels call."""
    found = sorted((f.rule, f.file, f.function) for f in whole.findings)
    assert found == [("AA002", "arch/arm/kernel/fiq.c", "set_fiq_handler"),
                     ("AA002", "arch/arm/kernel/patch.c", "__patch_text_real"),
                     ("AA004", "arch/arm/kernel/traps.c", "spectre_bhb_update_vectors"),
                     ("AA004", "arch/arm/mach-pxa/pxa3xx.c", "pxa3xx_cpu_standby"),
                     ("AA004", "arch/arm/mm/flush.c", "copy_to_user_page"),
                     ("AA004", "arch/arm/probes/uprobes/core.c", "arch_uprobe_copy_ixol"),
                     ("AA005", "arch/arm/mach-sunxi/mc_smp.c", "sunxi_mc_smp_loopback")]
    # built only under CONFIG_HARDEN_BRANCH_HISTORY, which needs CPU_SPECTRE, which only CPU_V7
    # selects: replayed on v7's implementations, which refute it
    bhb = next(f for f in whole.findings if f.function == "spectre_bhb_update_vectors")
    assert bhb.severity == "note" and "HARDEN_BRANCH_HISTORY" in bhb.model.built_under
    assert {name for name, _ in bhb.model.implementations} <= {"v7", "b15"}
    # the kernels it hits: Kirkwood's defconfig (Feroceon) does, multi_v7's does not
    xol = next(f for f in whole.findings if f.function == "arch_uprobe_copy_ixol")
    assert "mvebu_v5_defconfig" in xol.model.defconfigs and "multi_v7_defconfig" not in xol.model.defconfigs
    patch = next(f for f in whole.findings if f.function == "__patch_text_real")
    assert patch.chain == ("patch_text", "patch_text_stop_machine", "__patch_text", "__patch_text_real")
    arch_of = load_vocabulary().arch_of
    for f in whole.findings:
        assert whole.graph.one_build(list(f.chain), f.file, arch_of), f.chain


def test_every_call_site_through_macros_is_the_calling_code_s_own(whole):
    index, sees = whole.index, load_vocabulary().sees
    via_sites = [c for c in whole.callsites if c.via]
    assert len(via_sites) > 100

    def step(macro: str, target: str, here: str) -> bool:
        visible = lambda path: sees(here, path)  # noqa: E731
        return (any(c.callee == target and visible(c.file) for c in index.macro_calls.get(macro, ()))
                or target in index.alias_targets(macro, visible))

    for c in via_sites:
        chain = (*c.via, c.callee)
        assert all(step(a, b, c.file) for a, b in zip(chain, chain[1:])), c


def test_a_driver_calling_an_arm_macro_spelling_of_a_watched_call(whole):
    gic = [c for c in whole.callsites if c.file == "drivers/irqchip/irq-gic-v3-its.c"]
    assert len(gic) >= 10
    assert {(c.callee, c.via) for c in gic} == {("__cpuc_flush_dcache_area", ("gic_flush_dcache_to_poc",))}


def test_generic_and_arm_code_get_arm_s_flush_icache_range(whole):
    sites = {(c.file, c.callee, c.via) for c in whole.callsites}
    via = ("flush_icache_range",)
    assert ("arch/arm/kernel/patch.c", "__cpuc_coherent_kern_range", via) in sites
    assert not any(f.startswith("arch/arm/") and callee == "__flush_icache_all" and v == via
                   for f, callee, v in sites)  # m68k's definition
    assert not any(f.startswith("arch/") and not f.startswith("arch/arm/") and callee == "__cpuc_coherent_kern_range"
                   for f, callee, _ in sites)  # ARM's, in another architecture's code
    patch = next(c for c in whole.callsites if c.file == "arch/arm/kernel/patch.c" and c.via == via)
    assert patch.args != ("s", "e")  # the macro's parameters are bound to the call's arguments


def test_arch_arm_s_call_sites_are_the_same_in_both_scopes(whole, tmp_path):
    """The whole tree holds every architecture's headers; code under arch/arm must still get what
    the arch/arm scan gives it.  On 6.12 the whole tree added 10 sites through asm-generic's
    `#ifndef flush_icache_user_range` fallback, which ARM never sees (it defines its own)."""
    arm = scan([Path(whole.root)], ScanOptions(cache_dir=tmp_path / "facts"))
    key = lambda c: (c.file, c.line, c.column, c.callee, c.via, c.args)  # noqa: E731
    in_whole = {key(c) for c in whole.callsites if c.file.startswith("arch/arm/")}
    in_arm = {key(c) for c in arm.callsites if c.file.startswith("arch/arm/")}
    assert len(in_arm) > 150 and in_whole == in_arm
    found = lambda r: {(f.rule, f.file, f.line, f.function, f.chain) for f in r.findings}  # noqa: E731
    assert found(whole) == found(arm)


def test_the_prefilter_parses_the_callers_of_callers_not_the_tree(whole):
    """The second round searches for the names one file from a root ([prefilter] levels), never for
    callers many calls up that happen to lie in the first round's files.  On 6.1 ia64's set_pte_at,
    reaching flush_icache_range through a header whose comment names it, once made vmalloc and its
    kin words: 1,886 of 56,749 files were parsed (3.3%), against 595 now (811 and 599 of 6.12's
    61,000)."""
    assert whole.parsed < 0.02 * whole.files, (whole.parsed, whole.files)


def test_the_output_is_the_same_for_any_jobs(whole):
    """Extraction, the prefilter's rounds and the function bodies run in worker processes; with
    another number of them the scan reports exactly the same.  (The module's scan used the CPUs
    available; this one another count.)"""
    from armalias.scan import available_cpus

    jobs = 1 if available_cpus() > 1 else 3
    other = scan([Path(whole.root)], ScanOptions(whole_tree=True, use_cache=False, jobs=jobs))
    assert other.jobs != whole.jobs
    assert (other.files, other.parsed, other.functions) == (whole.files, whole.parsed, whole.functions)
    assert other.callsites == whole.callsites and other.skipped == whole.skipped
    assert other.findings == whole.findings


def test_a_check_takes_the_base_s_prefilter_rounds_and_answers_the_same(whole, tmp_path, monkeypatch):
    """check --whole-tree of a one-line maintenance call added to patch.c (the bench's change): its head
    takes the base's remembered prefilter rounds (armalias.selection.SelectionHints) and searches only
    patch.c, and finds what listing and searching the whole tree again finds."""
    import difflib

    import armalias.check.run as diff
    import armalias.prefilter as prefilter
    from armalias.check.changes import patch_change
    from armalias.check.run import CheckOptions, run_check

    tree = Path(whole.root)
    rel = "arch/arm/kernel/patch.c"
    old = (tree / rel).read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(old) if "flush_icache_range(" in line)
    patch = tmp_path / "maintenance.patch"
    patch.write_text("".join(difflib.unified_diff(old, old[:at] + ["\tflush_kernel_vmap_range(addr, 4);\n"] + old[at:],
                                                  f"a/{rel}", f"b/{rel}")))
    options = CheckOptions(scan=ScanOptions(whole_tree=True, cache_dir=whole.cache_dir))
    searched: list[int] = []
    real_select = prefilter.select_started  # every search: select starts one too
    monkeypatch.setattr(prefilter, "select_started", lambda source, rels, *a, **k: searched.append(len(rels)) or
                        real_select(source, rels, *a, **k))
    hinted = run_check(patch_change(tree, patch), options)
    assert hinted.base_from == "state" and hinted.head_from == "scan" and searched == [1]
    monkeypatch.setattr(diff, "_selection_hints", lambda change, state, holds=None: None)
    searched.clear()
    plain = run_check(patch_change(tree, patch), options)
    assert max(searched) > 50_000  # every file of the tree, listed and searched
    assert (hinted.head.files, hinted.head.parsed, hinted.head.functions) == (plain.head.files, plain.head.parsed,
                                                                             plain.head.functions)
    assert [f.file for f in hinted.head.facts] == [f.file for f in plain.head.facts]
    assert hinted.head.callsites == plain.head.callsites and hinted.head.skipped == plain.head.skipped
    assert hinted.head.findings == plain.head.findings
    assert (hinted.new, hinted.fixed, hinted.unchanged) == (plain.new, plain.fixed, plain.unchanged)
    assert [f.function for f in hinted.fixed] == ["__patch_text_real"]


def test_hyperscan_chooses_the_files_the_automaton_chooses(whole):
    """A whole-tree scan's second round searches for more words than ahocorasick-rs's packed
    searcher takes (PACKED_PATTERNS): Hyperscan answers.  Over real files (the generated register
    headers of drivers/gpu/drm/amd among them, and files that are not ASCII), it chooses exactly the
    files the automaton chooses, with the second round's words and their architectures."""
    from unittest import mock

    import armalias.prefilter as prefilter
    from armalias.selection import reaching_names
    from armalias.source.text import MAX_FILE_BYTES, Unreadable, check_text
    from armalias.source.tree import DirectorySource, read_file

    first = prefilter.rule_words()
    reach = reaching_names(whole.facts, None, 1)
    words = first | frozenset(reach)
    restricted = {n: frozenset(a) for n, a in reach.items() if n not in first and None not in a}
    assert len(words) > prefilter.PACKED_PATTERNS and restricted
    root = Path(whole.root)
    source = DirectorySource(root)
    texts = []
    for under in ("drivers/gpu/drm/amd/include", "arch/arm", "arch/x86/kernel", "mm", "kernel", "drivers/misc"):
        for rel in source.discover(under).files:
            try:
                data, _ = read_file(str(root / rel))
                check_text(data)
            except (OSError, Unreadable):
                continue
            texts.append((rel, data))
    assert sum(len(d) for _, d in texts) > 100 * 2**20 and any(len(d) > MAX_FILE_BYTES // 8 for _, d in texts)
    assert any(not d.isascii() for _, d in texts)
    hyperscan = prefilter.file_matcher(words, restricted)
    with mock.patch.object(prefilter, "any_occurrence", lambda *args: None):
        automaton = prefilter.file_matcher(words, restricted)
    chosen = [rel for rel, data in texts if hyperscan(rel, data)]
    assert chosen == [rel for rel, data in texts if automaton(rel, data)]
    assert 50 < len(chosen) < len(texts) // 4
    names = [w.encode() for w in sorted(words) if w.isidentifier()]  # a shape's token is no word of the text
    assert prefilter.any_occurrence(names, [lambda *a: True] * len(names)) is not None
