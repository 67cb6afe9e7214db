"""Detection as a change meets it: fingerprints survive refactors that keep behaviour, and a write's
execution address is found from the code (the vocabulary's runs_at / runs = "here"), not from an
I-cache call next to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.scan import ScanOptions, scan

FIQ = """extern void *vectors_page;
void set_fiq_handler(void *start, unsigned int length)
{
	void *BASE = vectors_page;
	unsigned OFF = 0x1c;

	memcpy(BASE + OFF, start, length);
	flush_icache_range((unsigned long)BASE + OFF, (unsigned long)BASE + OFF + length);
	EXEC
}
"""
EXEC_FLUSH = "flush_icache_range(0xffff0000 + OFF, 0xffff0000 + OFF + length);"

PATCH = """void __patch_text_real(void *addr, unsigned int insn, bool remap)
{
	void *WADDR = addr;
	unsigned long flags;

	if (remap)
		WADDR = patch_map(addr, FIX_TEXT_POKE0, &flags);
	*(u32 *)WADDR = insn;
	if (WADDR != addr) {
		CLEAN
		patch_unmap(FIX_TEXT_POKE0, &flags);
	}
	flush_icache_range((uintptr_t)(addr), (uintptr_t)(addr) + 4);
}
"""


def findings(tmp_path: Path, name: str, text: str) -> set[tuple[str, str, str]]:
    d = tmp_path / name / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "f.c").write_text(text)
    return {(f.rule, f.severity, f.fingerprint) for f in scan([d / "f.c"], ScanOptions(jobs=1, use_cache=False)).findings}


@pytest.mark.parametrize("names", [("base", "offset"), ("vbase", "off"), ("v", "o")])
def test_renamed_locals_keep_the_fingerprints(tmp_path: Path, names: tuple[str, str]):
    plain = FIQ.replace("BASE", "base").replace("OFF", "offset").replace("EXEC", EXEC_FLUSH)
    renamed = FIQ.replace("BASE", names[0]).replace("OFF", names[1]).replace("EXEC", EXEC_FLUSH)
    before, after = findings(tmp_path, "a", plain), findings(tmp_path, "b", renamed)
    assert before and before == after  # the residual AA002 note, under one fingerprint


def test_vectors_code_needs_an_invalidate_where_it_runs(tmp_path: Path):
    """Deleting the invalidate at 0xffff0000 leaves only the kernel alias's: AA004, found from the
    vectors page's runs_at though the function no longer names the address it runs from."""
    kept = findings(tmp_path, "a", FIQ.replace("BASE", "base").replace("OFF", "offset").replace("EXEC", EXEC_FLUSH))
    deleted = findings(tmp_path, "b", FIQ.replace("BASE", "base").replace("OFF", "offset").replace("EXEC", ""))
    assert {r for r, _, _ in kept} == {"AA002"}
    assert {(r, s) for r, s, _ in deleted} == {("AA004", "error")}


@pytest.mark.parametrize("waddr", ["waddr", "poke"])
def test_patch_text_clean_deleted_is_caught_and_kept_is_quiet(tmp_path: Path, waddr: str):
    good = PATCH.replace("WADDR", waddr).replace("CLEAN", f"__cpuc_flush_dcache_area({waddr}, 4);")
    bad = PATCH.replace("WADDR", waddr).replace("CLEAN", "")
    wrong = PATCH.replace("WADDR", waddr).replace("CLEAN", "__cpuc_flush_dcache_area(addr, 4);")
    assert {r for r, _, _ in findings(tmp_path, "good", good)} == {"AA002"}
    assert ("AA001", "error") in {(r, s) for r, s, _ in findings(tmp_path, "bad", bad)}
    assert ("AA001", "error") in {(r, s) for r, s, _ in findings(tmp_path, "wrong", wrong)}


def test_witness_holds_only_steps_of_the_code(tmp_path: Path):
    """An alias-write witness replays the calls the function makes, no invented maintenance."""
    d = tmp_path / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "f.c").write_text(PATCH.replace("WADDR", "waddr").replace("CLEAN", ""))
    (f,) = [f for f in scan([d / "f.c"], ScanOptions(jobs=1, use_cache=False)).findings if f.rule == "AA001"]
    assert f.model.verdict == "confirmed"
    calls = [step for step in f.model.witness if "coherent_kern_range(" in step]
    assert len(calls) == 1 and "coherent_kern_range(exec+" in calls[0]  # flush_icache_range(addr), once
    # each step of the code cites its line; the rule's premises and consumer say they are that
    assert "(f.c:13):" in calls[0]  # the flush_icache_range line (the scan was given the file alone)
    (write,) = [step for step in f.model.witness if step.startswith("write ")]
    assert write.endswith("(f.c:8)")
    steps = [step for step in f.model.witness[1:] if not step.startswith(("map ", "unmap ", "env: "))]
    assert all("(f.c:" in step or "(the rule's " in step for step in steps), steps


HEADSMP = """ENTRY(board_secondary_startup)
	adr	r4, 1f
	ldmia	r4, {r5, r6}
	sub	r4, r4, r5
	add	r6, r6, r4
pen:	ldr	r7, [r6]
	b	pen
	.align
1:	.long	.
	.long	board_pen_release
ENDPROC(board_secondary_startup)
"""

PLATSMP = """int board_pen_release;
int board_other_flag;

static void board_write_pen_release(int val)
{
	board_pen_release = val;
	smp_wmb();
	SYNC
}

static void board_boot(int cpu)
{
	board_other_flag = cpu;
	board_write_pen_release(cpu);
}
"""


@pytest.mark.parametrize("sync,fires", [("sync_cache_w(&board_pen_release);", False),
                                        ("flush_cache_louis();", True)])
def test_an_object_mmu_off_assembly_reads_is_cleaned_to_poc(tmp_path: Path, sync: str, fires: bool):
    """board_pen_release is addressed the way MMU-off code does (beside a `.long .`), and the tree
    cleans it to the point of coherency: its writer must do so after writing it.  A clean that stops
    at the point of unification does not reach the secondary CPU reading memory with its caches off."""
    d = tmp_path / "arch/arm/mach-board"
    d.mkdir(parents=True)
    (d / "headsmp.S").write_text(HEADSMP)
    (d / "platsmp.c").write_text(PLATSMP.replace("SYNC", sync))
    (d / "other.c").write_text("void elsewhere(void)\n{\n\tboard_pen_release = -1;\n\tsync_cache_w(&board_pen_release);\n}\n")
    (tmp_path / "Makefile").write_text("")
    found = [(f.rule, f.function) for f in scan([tmp_path], ScanOptions(jobs=1, use_cache=False)).findings]
    assert found == ([("AA005", "board_write_pen_release")] if fires else [])


@pytest.mark.parametrize("member,verdict", [("flush_kern_louis", "confirmed"), ("flush_kern_all", "refuted")])
def test_louis_stops_at_the_point_of_unification(member: str, verdict: str):
    """On a v7 implementation (an outer level beyond the PoU), flush_cache_louis leaves what it writes
    back in the outer level, where a reader with its caches off does not look; flush_cache_all does not."""
    from armalias.model import ExternalRead, Maintain, Map, Scenario, Write, replay
    from armalias.model.validate import reference_implementations

    from dataclasses import replace

    (v7,) = [i for i in reference_implementations() if i.name == "v7"]
    every = v7.functions["flush_kern_all"]  # v7's louis runs the same set/way loop, to LoUIS
    v7 = replace(v7, functions={**v7.functions, "flush_kern_louis": replace(every, member="flush_kern_louis")})
    scenario = Scenario("pen release", (Map("lowmem", "data"), Write("lowmem", 0, 4), Maintain(member, None),
                                        ExternalRead("lowmem", 0, 4)))
    assert replay(scenario, v7).verdict == verdict


def test_deleting_the_only_clean_of_an_mmu_off_object_is_new(tmp_path: Path, capsys):
    """The base cleans board_pen_release to PoC (the only place that does) and the assembly reads it
    with the MMU off: a patch deleting that clean is a new AA005, though the head alone no longer
    shows that the object needs it."""
    import json

    from armalias.cli import main

    d = tmp_path / "linux/arch/arm/mach-board"
    d.mkdir(parents=True)
    (tmp_path / "linux/Makefile").write_text("")
    (d / "headsmp.S").write_text(HEADSMP)
    (d / "platsmp.c").write_text(PLATSMP.replace("SYNC", "sync_cache_w(&board_pen_release);"))
    patch = tmp_path / "drop.patch"
    patch.write_text("--- a/arch/arm/mach-board/platsmp.c\n+++ b/arch/arm/mach-board/platsmp.c\n"
                     "@@ -6,5 +6,4 @@ static void board_write_pen_release(int val)\n"
                     " \tboard_pen_release = val;\n \tsmp_wmb();\n-\tsync_cache_w(&board_pen_release);\n }\n \n")
    rc = main(["check", "--tree", str(tmp_path / "linux"), "--patch", str(patch), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and [(f["rule"], f["function"]) for f in data["new"]] == [("AA005", "board_write_pen_release")]


KPROBES = """struct kprobe { u32 *addr; u32 opcode; };

void arch_prepare_kprobe(struct kprobe *p)
{
	p->opcode = READER;
}

void arch_disarm_kprobe(struct kprobe *p)
{
	__patch_text(p->addr, p->opcode);
}
"""

PATCH_TEXT = """void __patch_text_real(void *addr, unsigned int insn, bool remap)
{
	void *waddr = patch_map(addr, FIX_TEXT_POKE0, NULL);

	*(u32 *)waddr = insn;
	__cpuc_flush_dcache_area(waddr, 4);
	patch_unmap(FIX_TEXT_POKE0, NULL);
	flush_icache_range((uintptr_t)(addr), (uintptr_t)(addr) + 4);
}

void __patch_text(void *addr, unsigned int insn)
{
	__patch_text_real(addr, insn, true);
}
"""


@pytest.mark.parametrize("reader, severity", [
    ("__mem_to_opcode_arm(*p->addr)", "warning"),  # the instruction read back: the 2017 report's failure
    ("copy_from_kernel_nofault(&p->opcode, p->addr, 4) ? 0 : p->opcode", "warning"),
    ("0xe7f001f8", "note"),  # nothing reads the address as data: the hazard is a residue
])
def test_a_stale_line_read_back_where_code_is_patched_is_a_warning(tmp_path: Path, reader: str, severity: str):
    d = tmp_path / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "patch.c").write_text(PATCH_TEXT)
    (d / "kprobes.c").write_text(KPROBES.replace("READER", reader))
    found = [f for f in scan([tmp_path], ScanOptions(jobs=1, use_cache=False)).findings]
    assert [(f.rule, f.function, f.severity) for f in found] == [("AA002", "__patch_text_real", severity)]
    if severity == "warning":
        assert "`p->addr` is handed to __patch_text() as where code runs (arch/arm/kernel/kprobes.c:10)" in found[0].message
        assert "(arch/arm/kernel/kprobes.c:5)" in found[0].message


XOL_COLOUR = """static void flush_colour(unsigned long pfn, unsigned long vaddr, unsigned long len)
{
	unsigned long va = FLUSH_ALIAS_START + (CACHE_COLOUR(vaddr) << PAGE_SHIFT);

	set_top_pte(va, pfn_pte(pfn, PAGE_KERNEL));
	flush_icache_range(va, va + len);
}

void arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr, void *src, unsigned long len)
{
	void *kaddr = kmap_atomic(page);

	memcpy(kaddr + (vaddr & ~PAGE_MASK), src, len);
	if (cache_is_vivt())
		__cpuc_coherent_kern_range((unsigned long)kaddr, (unsigned long)kaddr + len);
	else
		flush_colour(page_to_pfn(page), vaddr, len);
	kunmap_atomic(kaddr);
}
"""


def test_a_colour_slot_aimed_at_the_user_address_maintains_where_the_bytes_run(tmp_path: Path):
    """flush_colour() maps the page at vaddr's colour and flushes there: on a cache indexed by colour
    (not VIVT, which the guard rules out) that is where the bytes run, so the witness replays it
    there; on VIVT only the kernel alias is maintained, and the finding stands."""
    d = tmp_path / "arch/arm/probes"
    d.mkdir(parents=True)
    (d / "xol.c").write_text(XOL_COLOUR)
    (f,) = [f for f in scan([tmp_path], ScanOptions(jobs=1, use_cache=False)).findings if f.rule == "AA004"]
    (colour,) = [m for m in f.maintenance if m.call == "flush_icache_range"]
    assert colour.covers == "exec" and "cache_is_vivt" in colour.guard
    assert "arm926" in f.model.confirming() and "v7" not in f.model.confirming()
