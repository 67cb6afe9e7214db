"""The flow facts detection rests on: early returns as guards, summaries of where code runs and of
the size a helper maintains, summaries per architecture (an arch override over a __weak generic
definition), and AA004 on an aliasing VIPT cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.scan import ScanOptions, scan
from armalias.source.cflow import function_bodies


def scan_files(tmp_path: Path, files: dict[str, str], **options):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "Makefile").write_text("")
    return scan([tmp_path], ScanOptions(jobs=1, use_cache=False, **options))


def test_code_after_an_early_return_is_guarded_by_the_condition_being_false():
    text = b"""void f(int a, void *p)
{
	if (cache_is_vivt()) {
		g(p);
		return;
	}
	q = p;
	h(p);
}
"""
    (body,) = function_bodies("f.c", text, None)
    by_target = {e.target: e for e in body.events}
    assert [(g.cond, g.holds) for g in by_target["g"].guards] == [("cache_is_vivt()", True)]
    (guard,) = by_target["h"].guards
    assert (guard.cond, guard.holds, guard.exit) == ("cache_is_vivt()", False, True)
    assert by_target["q"].guards == (guard,)  # an assignment there is no conditional one


PTRACE = """static void __flush_access(struct page *page, unsigned long uaddr, void *kaddr,
			   unsigned long len, unsigned int flags)
{
	if (cache_is_vivt()) {
		if (flags & 1) {
			unsigned long addr = (unsigned long)kaddr;
			VIVT
		}
		return;
	}
	if (cache_is_vipt_aliasing()) {
		flush_pfn_alias(page_to_pfn(page), uaddr);
		VIPT
		return;
	}
	if (flags & 2) {
		unsigned long addr = (unsigned long)kaddr;
		__cpuc_coherent_kern_range(addr, addr + len);
	}
}

void copy_to_user_page(struct vm_area_struct *vma, struct page *page,
		       unsigned long uaddr, void *dst, const void *src,
		       unsigned long len)
{
	memcpy(dst, src, len);
	__flush_access(page, uaddr, dst, LEN, 3);
}
"""
COHERENT = "__cpuc_coherent_kern_range(addr, addr + len);"


def ptrace(tmp_path: Path, vivt: str = COHERENT, vipt: str = "__flush_icache_all();", length: str = "len"):
    text = PTRACE.replace("VIVT", vivt).replace("VIPT", vipt).replace("LEN", length)
    return [(f.rule, f.severity, f.message) for f in scan_files(tmp_path, {"arch/arm/mm/flush.c": text}).findings]


def test_ptrace_writes_run_at_the_user_address(tmp_path: Path):
    """copy_to_user_page's bytes may be the traced task's text (cachetlb.rst): on VIVT they are
    invalidated at the kernel alias only, which the model confirms (a second mapping of the page)."""
    (found,) = ptrace(tmp_path)
    assert found[:2] == ("AA004", "error") and "the I-cache invalidates after it are at param(dst)" in found[2]


@pytest.mark.parametrize("vivt,vipt,what", [
    ("", "__flush_icache_all();", "nothing after the write invalidates the I-cache there"),
    (COHERENT, "", "on a VIPT cache"),
])
def test_a_branch_losing_its_invalidate_is_a_finding_of_its_own(tmp_path: Path, vivt: str, vipt: str, what: str):
    """The early returns keep the other branches' maintenance off VIVT; deleting the VIVT branch's
    call leaves it nothing at all, deleting the aliasing-VIPT one leaves that cache none: each is
    told apart from the residual finding (its fingerprint differs)."""
    base = {f for f in scan_files(tmp_path / "a", {"arch/arm/mm/flush.c": PTRACE.replace("VIVT", COHERENT).replace(
        "VIPT", "__flush_icache_all();").replace("LEN", "len")}).findings}
    head = scan_files(tmp_path / "b", {"arch/arm/mm/flush.c": PTRACE.replace("VIVT", vivt).replace(
        "VIPT", vipt).replace("LEN", "len")}).findings
    assert {f.fingerprint for f in head}.isdisjoint({f.fingerprint for f in base})
    assert any(f.rule == "AA004" and what in f.message for f in head)


def test_the_size_a_helper_maintains_carries_to_its_callers(tmp_path: Path):
    """`addr + len` in the helper makes `len` its size parameter: half of it is short (AA003)."""
    assert not [r for r, _, _ in ptrace(tmp_path) if r == "AA003"]
    (msg,) = [m for r, _, m in ptrace(tmp_path / "x", length="len / 2") if r == "AA003"]
    assert "`len / 2` bytes maintained, `len` written" in msg


PATCH_ARM = """void patch_text(void *addr, unsigned int insn)
{
	stop_machine_cpuslocked(patch_text_stop_machine, &addr, NULL);
}
"""
PATCH_OTHER = """void patch_text(void *addr, unsigned int insn)
{
	memcpy(addr, &insn, 4);
	flush_icache_range((unsigned long)addr, (unsigned long)addr + 4);
}
"""
JUMP = """void arch_jump_label_transform(struct jump_entry *entry, unsigned int insn)
{
	void *addr = (void *)entry->code;

	patch_text(addr, insn);
}
"""


def test_another_architecture_s_definition_is_not_the_one_called(tmp_path: Path):
    """In a whole tree, riscv's patch_text writes through its parameter; ARM's does not (it hands the
    address to stop_machine).  ARM's caller gets ARM's summary, not the union of both."""
    found = scan_files(tmp_path, {"arch/arm/kernel/patch.c": PATCH_ARM, "arch/riscv/kernel/patch.c": PATCH_OTHER,
                                  "arch/arm/kernel/jump_label.c": JUMP}, whole_tree=True).findings
    assert [(f.rule, f.function) for f in found if f.file == "arch/arm/kernel/jump_label.c"] == []


WEAK = """void __weak arch_copy_slot(void *dst, const void *src)
{
	memcpy(dst, src, 4);
	flush_icache_range((unsigned long)dst, (unsigned long)dst + 4);
}
"""
ARM_OVERRIDE = """void arch_copy_slot(void *dst, const void *src)
{
	memcpy(dst, src, 4);
}
"""
CALLER = """void install_slot(const void *src)
{
	void *slot = module_alloc(4);

	arch_copy_slot(slot, src);
}
"""


@pytest.mark.parametrize("override,caught", [(True, True), (False, False)])
def test_an_arch_override_replaces_the_weak_generic_definition(tmp_path: Path, override: bool, caught: bool):
    """ARM's arch_copy_slot copies and leaves the invalidate to its caller, the generic __weak one
    does both: ARM's caller of a slot in executable memory gets ARM's summary when ARM overrides
    (AA004), the generic one's when it does not."""
    files = {"kernel/events/slot.c": WEAK, "arch/arm/kernel/install.c": CALLER}
    if override:
        files["arch/arm/kernel/slot.c"] = ARM_OVERRIDE
    found = scan_files(tmp_path, files, whole_tree=True).findings
    assert bool([f for f in found if (f.rule, f.function) == ("AA004", "install_slot")]) is caught


XOL = """#define FLAG_CORE 1
#define FLAG_EXEC 2

void arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr, void *src, unsigned long len)
{
	void *xol = kmap_atomic(page);
	void *dst = xol + (vaddr & ~PAGE_MASK);
	unsigned int flags = FLAGS;

	memcpy(dst, src, len);
	__flush_access(page, vaddr, dst, len, flags);
	kunmap_atomic(xol);
}
"""


def test_a_guard_the_caller_s_constants_decide(tmp_path: Path):
    """`flags & 2` in the helper, with flags a constant of the caller: without FLAG_EXEC the
    VIPT branch's invalidate is not done on this call, and no I-cache invalidate runs on VIPT."""
    helper = PTRACE.split("void copy_to_user_page")[0].replace("VIVT", COHERENT).replace(
        "VIPT", "__flush_icache_all();").replace("flags & 1", "flags & FLAG_CORE").replace("flags & 2", "flags & FLAG_EXEC")

    def aa004(sub: str, flags: str) -> list[str]:
        found = scan_files(tmp_path / sub, {"arch/arm/kernel/xol.c": XOL.replace("FLAGS", flags) + helper}).findings
        return [f.message for f in found if f.rule == "AA004"]

    assert not [m for m in aa004("a", "FLAG_CORE | FLAG_EXEC") if "on a VIPT cache" in m]
    assert [m for m in aa004("b", "FLAG_CORE") if "on a VIPT cache" in m]


SLOT = """void arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr, void *src, unsigned long len)
{
	void *xol = kmap_atomic(page);

	memcpy(xol + (vaddr & ~PAGE_MASK), src, len);
	flush_icache_range(vaddr, vaddr + len);
	kunmap_atomic(xol);
}

void xol_get_slot(struct page *page, unsigned long xol_vaddr, void *insn)
{
	arch_uprobe_copy_ixol(page, ADDR, insn, 4);
}
"""


@pytest.mark.parametrize("addr,caught", [
    ("xol_vaddr", False),
    ("xol_vaddr & ~PAGE_MASK", True),
    ("offset_in_page(xol_vaddr)", True),
    ("xol_vaddr & (PAGE_SIZE - 1)", True),
    ("xol_vaddr & PAGE_MASK", False),  # the page's address, not an offset in it
])
def test_an_offset_in_a_page_given_for_where_code_runs(tmp_path: Path, addr: str, caught: bool):
    found = scan_files(tmp_path, {"arch/arm/kernel/slot.c": SLOT.replace("ADDR", addr)}).findings
    offsets = [f for f in found if f.rule == "AA004" and f.function == "xol_get_slot"]
    assert bool(offsets) is caught
    assert all("offset within a page" in f.message for f in offsets)
