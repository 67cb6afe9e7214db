"""Cache maintenance in C inline assembly (armalias.source.inline_asm), the checks of a change that
lean on it (checks.change: a call dropped while others of its effect remain, a call aimed elsewhere),
and the aliasing VIPT machine the model replays ARMv6 findings on."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.source.asm import load_cache_ops, parse_mcrr
from armalias.source.cflow import function_bodies
from armalias.source.extract import extract_bytes
from conftest import check_edit


# shapes of arch/arm/mm: a colour slot flushed with a block operation, a kernel alias discarded before
# a copy through a colour alias, the whole D-cache cleaned, and a copy loop that maintains line by line
ASM_C = """#include <linux/kernel.h>

static void board_flush_colour(unsigned long pfn, unsigned long vaddr)
{
	unsigned long to = BOARD_ALIAS_START + (BOARD_COLOUR(vaddr) << PAGE_SHIFT);

	set_top_pte(to, pfn_pte(pfn, PAGE_KERNEL));
	asm(	"mcrr	p15, 0, %1, %0, c14\\n"
	"	mcr	p15, 0, %2, c7, c10, 4"
	    :
	    : "r" (to), "r" (to + PAGE_SIZE - 1), "r" (0)
	    : "cc");
}

static void board_discard(void *kto)
{
	__asm__("mcrr	p15, 0, %[end], %[start], c6	@ invalidate D range"
	   :
	   : [start] "r" (kto), [end] "r" ((unsigned long)kto + PAGE_SIZE - 1)
	   : "cc");
}

void board_flush_mm(struct mm_struct *mm)
{
	if (cache_is_vipt_aliasing())
		asm volatile("mcr	p15, 0, %0, c7, c14, 0" : : "r" (0) : "cc");
}

static void board_copy_loop(void *kto, const void *kfrom)
{
	int tmp;

	asm volatile ("\\
1:	mcr	p15, 0, %0, c7, c6, 1		@ invalidate D line\\n\\
	stmia	%0!, {r3, r4, ip, lr}\\n\\
	subs	%2, %2, #1\\n\\
	bne	1b"
	: "+&r" (kto), "+&r" (kfrom), "=&r" (tmp)
	: "2" (PAGE_SIZE / 64)
	: "r3", "r4", "ip", "lr");
}
"""


def _calls(name: str) -> list[tuple[str, tuple[str, ...]]]:
    (body,) = function_bodies("arch/arm/mm/board.c", ASM_C.encode(), {name})
    return [(e.target, e.args) for e in body.events if e.kind == "call" and e.target.startswith("asm:")]


def test_block_operations_are_ranges_with_an_exclusive_end():
    """`mcrr p15, 0, Rt (end), Rt2 (start), c14`: the start is the second register, and the inclusive
    last address is made an exclusive end; named operands (%[start]) read the same."""
    assert _calls("board_flush_colour") == [("asm:clean+invalidate-d-range", ("to", "(to + PAGE_SIZE - 1) + 1"))]
    assert _calls("board_discard") == [
        ("asm:invalidate-d-range", ("kto", "((unsigned long)kto + PAGE_SIZE - 1) + 1"))]


def test_a_whole_cache_operation_keeps_its_guard_and_a_copy_loop_is_no_extent():
    (body,) = function_bodies("arch/arm/mm/board.c", ASM_C.encode(), {"board_flush_mm"})
    (ev,) = [e for e in body.events if e.target.startswith("asm:")]
    assert (ev.target, ev.args, [g.cond for g in ev.guards]) == (
        "asm:clean+invalidate-d-all", (), ["cache_is_vipt_aliasing()"])
    # a line operation on the register the loop moves says nothing of an extent: left out
    assert _calls("board_copy_loop") == []


def test_the_index_names_the_functions_that_maintain_in_assembly():
    """The call graph gets the same calls, so a caller of board_discard is analysed as a caller of
    maintenance."""
    facts = extract_bytes("arch/arm/mm/board.c", ASM_C.encode(), "x")
    asm = sorted((c.caller, c.callee) for c in facts.calls if c.callee.startswith("asm:"))
    assert asm == [("board_discard", "asm:invalidate-d-range"), ("board_flush_colour", "asm:clean+invalidate-d-range"),
                   ("board_flush_mm", "asm:clean+invalidate-d-all")]


def test_mcrr_encodings_come_from_the_table():
    table = load_cache_ops()
    key, rt, rt2 = parse_mcrr("p15, 0, r1, r0, c14")
    assert (rt, rt2) == ("r1", "r0") and table.mcrr[key] == ("clean+invalidate-d-range",)
    assert table.mcrr[parse_mcrr("p15, 0, c2")[0]] == ()  # the 64-bit TTBR write: not a cache operation


COPY_C = ASM_C + """
void board_copy_user_highpage(struct page *to, struct page *from, unsigned long vaddr)
{
	unsigned long kto = BOARD_TO + (BOARD_COLOUR(vaddr) << PAGE_SHIFT);

	if (!test_and_set_bit(PG_dcache_clean, &from->flags))
		__cpuc_flush_dcache_area(page_address(from), PAGE_SIZE);
	board_discard(page_address(to));
	set_top_pte(kto, mk_pte(to, PAGE_KERNEL));
	copy_page((void *)kto, page_address(from));
}

void board_flush_ptrace(struct page *page, unsigned long uaddr, void *kaddr, unsigned long len)
{
	if (cache_is_vipt_aliasing()) {
		board_flush_colour(page_to_pfn(page), uaddr);
		__cpuc_flush_dcache_area(kaddr, len);
		__cpuc_flush_dcache_area(page_address(page), PAGE_SIZE);
	}
}
"""


@pytest.mark.parametrize("edit,new", [
    # the discard of the kernel alias deleted, the source's flush still there: one D-cache invalidate
    # fewer, on the caches it ran on (here: all of them; the model confirms on ARMv6's aliasing machine)
    (lambda t: t.replace("\tboard_discard(page_address(to));\n", ""), [("AA002", "board_copy_user_highpage")]),
    # the colour slot flushed at the kernel address's colour, not the user's
    (lambda t: t.replace("board_flush_colour(page_to_pfn(page), uaddr);",
                         "board_flush_colour(page_to_pfn(page), (unsigned long)kaddr);"),
     [("AA002", "board_flush_ptrace")]),
    # two flushes swapped: each still aimed where it was
    (lambda t: t.replace("\t\t__cpuc_flush_dcache_area(kaddr, len);\n\t\t__cpuc_flush_dcache_area(page_address(page), PAGE_SIZE);",
                         "\t\t__cpuc_flush_dcache_area(page_address(page), PAGE_SIZE);\n\t\t__cpuc_flush_dcache_area(kaddr, len);"),
     []),
    # the user address through a local assigned under the same condition: the same place
    (lambda t: t.replace("\t\tboard_flush_colour(page_to_pfn(page), uaddr);",
                         "\t\tunsigned long at = uaddr;\n\n\t\tboard_flush_colour(page_to_pfn(page), at);"), []),
    # the discard's helper renamed: the same maintenance
    (lambda t: t.replace("board_discard", "board_discard_kernel_alias"), []),
])
def test_maintenance_in_assembly_judged_against_the_base(tmp_path: Path, capsys, edit, new):
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mm/copypage-board.c", COPY_C, edit(COPY_C))
    assert found == new and rc == (1 if new else 0)


def test_the_dropped_discard_is_confirmed_on_the_aliasing_machine(tmp_path: Path, capsys):
    """The finding names the machine that confirms it: ARMv6's, replayed as aliasing VIPT
    (rules/cache-kinds.toml), where the kernel alias and the colour alias hold separate lines."""
    import difflib
    import json

    from armalias.cli import main

    root = tmp_path / "linux"
    rel = "arch/arm/mm/copypage-board.c"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text(COPY_C)
    head = COPY_C.replace("\tboard_discard(page_address(to));\n", "")
    patch = tmp_path / "p.patch"
    patch.write_text("".join(difflib.unified_diff(COPY_C.splitlines(True), head.splitlines(True), f"a/{rel}", f"b/{rel}")))
    main(["check", "--tree", str(root), "--patch", str(patch), "--format", "json", "--no-cache"])
    (f,) = json.loads(capsys.readouterr().out)["new"]
    assert f["severity"] == "warning" and f["model"]["verdict"] == "confirmed"
    assert f["model"]["implementations"]["v6/aliasing"] == "confirmed"
    assert f["model"]["implementations"]["v6"] == "refuted" and f["model"]["implementations"]["v7"] == "refuted"
    # no Makefile ties the file to CPU_COPY_V6 here: the VIVT machines confirm it too
    assert {"CPU_V6", "CPU_V6K", "CPU_ARM926T"} <= set(f["affects"]["configs"]) and "CPU_V7" not in f["affects"]["configs"]


# -- what the change checks lean on besides assembly ------------------------------------------------

DIAG_C = """#include <linux/kernel.h>

u32 board_diag_reg;

void board_smp_prepare_cpus(unsigned int max_cpus)
{
	asm("mrc p15, 0, %0, c15, c0, 1" : "=r" (board_diag_reg) : : "cc");
	sync_cache_w(&board_diag_reg);
}
"""

HEADSMP_S = """#include <linux/linkage.h>
ENTRY(board_secondary_startup)
	adr	r0, 1f
	ldr	r1, [r0]
	add	r1, r1, r0		@ r1 = physical &board_diag_reg
	ldr	r1, [r1]
	mcr	p15, 0, r1, c15, c0, 1
	b	secondary_startup
1:	.word	board_diag_reg - .
ENDPROC(board_secondary_startup)
"""


def test_an_asm_output_is_a_write(tmp_path: Path, capsys):
    """A value an `mrc` stores into a variable of file scope that code with the caches off reads
    (its name an operand of the tree's assembly): cleaned only to PoU after the change, it is AA005."""
    (tmp_path / "linux" / "arch/arm/kernel").mkdir(parents=True)
    (tmp_path / "linux" / "arch/arm/kernel/headsmp-board.S").write_text(HEADSMP_S)
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mach-board/platsmp.c", DIAG_C,
                           DIAG_C.replace("sync_cache_w(&board_diag_reg);", "flush_cache_louis();"))
    assert found == [("AA005", "board_smp_prepare_cpus")] and rc == 1


FOLIO_C = """#include <linux/kernel.h>

void board_flush_dcache_folio(struct folio *folio)
{
	if (!folio_test_highmem(folio))
		__cpuc_flush_dcache_area(folio_address(folio), folio_size(folio));
}
"""


@pytest.mark.parametrize("size,new", [
    ("PAGE_SIZE", [("AA003", "board_flush_dcache_folio")]),  # a folio is a page or more (rules: at_least)
    ("folio_size((folio))", []),
])
def test_a_size_known_to_be_at_least_a_page(tmp_path: Path, capsys, size, new):
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mm/flush-board.c", FOLIO_C,
                           FOLIO_C.replace("folio_size(folio));", f"{size});"))
    assert found == new and rc == (1 if new else 0)


SAVE_C = """#include <linux/kernel.h>

void board_suspend_save(u32 *ptr, u32 ptrsz, u32 *save_ptr)
{
	*save_ptr = virt_to_phys(ptr);
	__cpuc_flush_dcache_area(save_ptr, sizeof(*save_ptr));
	outer_clean_range(virt_to_phys(save_ptr), virt_to_phys(save_ptr) + sizeof(*save_ptr));
}
"""


def test_the_outer_cache_is_given_a_physical_address(tmp_path: Path, capsys):
    """outer_clean_range() takes physical addresses (rules: point "outer"); aimed at the virtual one
    after the change, the outer cache keeps what it held."""
    head = SAVE_C.replace("outer_clean_range(virt_to_phys(save_ptr), virt_to_phys(save_ptr) + sizeof(*save_ptr));",
                          "outer_clean_range((unsigned long)save_ptr, (unsigned long)save_ptr + sizeof(*save_ptr));")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/kernel/suspend-board.c", SAVE_C, head)
    assert found == [("AA001", "board_suspend_save")] and rc == 1


STATE_C = """#include <linux/kernel.h>

#ifdef CONFIG_BOARD_PM
static void board_state_wr(u32 cpu, int val)
{
	per_cpu(board_state, cpu) = val;
	sync_cache_w(SHIFT_PERCPU_PTR(&board_state, per_cpu_offset(cpu)));
}
#else
static inline void board_state_wr(u32 cpu, int val) { }
#endif
"""


@pytest.mark.parametrize("edit,new", [
    # the clean aimed at this CPU's copy rather than the one written: the #ifdef branch the change
    # alters is judged against its own base, the stub of the other branch aside
    (lambda t: t.replace("sync_cache_w(SHIFT_PERCPU_PTR(&board_state, per_cpu_offset(cpu)));",
                         "sync_cache_w(this_cpu_ptr(&board_state));"), [("AA001", "board_state_wr")]),
    (lambda t: t.replace("u32 cpu, int val)\n{", "u32 target, int val)\n{").replace(
        "board_state, cpu) = val", "board_state, target) = val").replace("per_cpu_offset(cpu)", "per_cpu_offset(target)"),
     []),
])
def test_a_function_defined_under_two_branches(tmp_path: Path, capsys, edit, new):
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mach-board/platsmp-board.c", STATE_C, edit(STATE_C))
    assert found == new and rc == (1 if new else 0)


# a chain of helpers above an `mcrr`, as long as the flow's rounds of summaries, under a caller the
# analysis looks at from its first round (it calls flush_icache_range itself)
DEEP_C = """#include <linux/kernel.h>

static void board_level0(void *kto)
{
	__asm__("mcrr	p15, 0, %1, %0, c6" : : "r" (kto), "r" ((unsigned long)kto + PAGE_SIZE - 1) : "cc");
}
""" + "".join(f"""
static void board_level{i}(void *kto)
{{
	board_level{i - 1}(kto);
}}
""" for i in range(1, 4)) + """
void board_top(struct page *page, unsigned long start)
{
	void *kaddr = page_address(page);

	board_level3(kaddr);
	flush_icache_range(start, start + 4);
}
"""


def test_a_caller_far_above_the_assembly_reads_as_its_base_does(tmp_path: Path, capsys):
    """board_top is analysed from the flow's first round, and the summary of board_level3 is complete
    only after its last: a check reads the base's version of board_top after that, so the head's
    altered version is read again with the same summaries, and renaming a local drops nothing."""
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mm/board-deep.c", DEEP_C, DEEP_C.replace("kaddr", "addr"))
    assert (rc, found) == (0, [])
    rc, found = check_edit(tmp_path / "drop", capsys, "arch/arm/mm/board-deep.c", DEEP_C,
                           DEEP_C.replace("\tboard_level3(kaddr);\n", ""))
    assert rc == 1 and found == [("AA002", "board_top")]
