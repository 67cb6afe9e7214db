"""A change that deletes ARM's override of a __weak generic function leaves the generic definition
running (armalias.check.replaced): the check reads that definition as the head's version of the
deleted one and says what it lacks where the override was deleted.  A generic definition ARM
overrides never runs on ARM, so a scan says nothing of it."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from armalias.cli import main

OVERRIDE_REL = "arch/arm/probes/uprobes/core.c"
OVERRIDE = """#include <linux/uprobes.h>

bool arch_uprobe_ignore(struct arch_uprobe *auprobe, struct pt_regs *regs)
{
	return false;
}

void arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr,
			   void *src, unsigned long len)
{
	void *xol_page_kaddr = kmap_atomic(page);
	void *dst = xol_page_kaddr + (vaddr & ~PAGE_MASK);

	memcpy(dst, src, len);
	__cpuc_coherent_kern_range((unsigned long)dst, (unsigned long)dst + len);
	kunmap_atomic(xol_page_kaddr);
}

bool arch_uprobe_skip_sstep(struct arch_uprobe *auprobe, struct pt_regs *regs)
{
	return false;
}
"""

GENERIC_REL = "kernel/events/uprobes.c"
GENERIC = """#include <linux/uprobes.h>

static void copy_to_page(struct page *page, unsigned long vaddr, const void *src, int len)
{
	void *kaddr = kmap_atomic(page);

	memcpy(kaddr + (vaddr & ~PAGE_MASK), src, len);
	kunmap_atomic(kaddr);
}

void __weak arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr,
				  void *src, unsigned long len)
{
	copy_to_page(page, vaddr, src, len);
	flush_dcache_page(page);
}
"""

# the shape of arch/arm/mm/flush.c: the kernel alias flushed through folio_address(), the
# I-cache only for a page-cache page (`mapping`), nothing at all on a non-aliasing VIPT cache that
# broadcasts its maintenance (which the kind of cache alone does not decide)
FLUSH_REL = "arch/arm/mm/flush.c"
FLUSH = """#include <linux/mm.h>

void __flush_dcache_folio(struct address_space *mapping, struct folio *folio)
{
	__cpuc_flush_dcache_area(folio_address(folio), folio_size(folio));
}

void flush_dcache_folio(struct folio *folio)
{
	struct address_space *mapping;

	if (!cache_ops_need_broadcast() && cache_is_vipt_nonaliasing())
		return;
	mapping = folio_flush_mapping(folio);
	__flush_dcache_folio(mapping, folio);
	if (mapping)
		__flush_icache_all();
}

void flush_dcache_page(struct page *page)
{
	flush_dcache_folio(page_folio(page));
}
"""

XOL = OVERRIDE[OVERRIDE.index("void arch_uprobe_copy_ixol"):OVERRIDE.index("bool arch_uprobe_skip_sstep")]
DELETED = OVERRIDE.replace(XOL, "")


def make_tree(root: Path, override: str = OVERRIDE) -> Path:
    for rel, text in ((OVERRIDE_REL, override), (GENERIC_REL, GENERIC), (FLUSH_REL, FLUSH),
                      ("include/linux/uprobes.h", "void arch_uprobe_copy_ixol(struct page *, unsigned long, void *, unsigned long);\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "Makefile").write_text("")
    return root


def diff(rel: str, before: str, after: str | None, new_rel: str | None = None) -> str:
    b = before.splitlines(keepends=True)
    a = after.splitlines(keepends=True) if after is not None else []
    return "".join(difflib.unified_diff(b, a, f"a/{rel}", f"b/{new_rel or rel}" if after is not None else "/dev/null"))


def run_check(tmp_path: Path, capsys, patch: str, *args: str) -> tuple[int, dict]:
    root = make_tree(tmp_path / "linux")
    path = tmp_path / "edit.patch"
    path.write_text(patch)
    rc = main(["check", "--tree", str(root), "--patch", str(path), "--format", "json", "--no-cache", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_deleting_the_override_reports_what_the_generic_definition_lacks(tmp_path: Path, capsys):
    rc, data = run_check(tmp_path, capsys, diff(OVERRIDE_REL, OVERRIDE, DELETED))
    assert rc == 1
    (found,) = data["new"]
    assert (found["rule"], found["severity"], found["file"], found["function"]) == (
        "AA004", "warning", OVERRIDE_REL, "arch_uprobe_copy_ixol")
    # where the override was, in the head: the line that followed it
    assert found["line"] == DELETED.splitlines().index("bool arch_uprobe_skip_sstep(struct arch_uprobe *auprobe, "
                                                       "struct pt_regs *regs)") + 1
    assert f"{GENERIC_REL}:11" in found["message"]
    assert "`mapping`" in found["message"]  # the only condition under which the generic one invalidates I
    # the VIPT/PIPT kind is among those it holds on: flush_dcache_folio returns at once there
    assert "VIPT/PIPT" in found["message"] and found["model"]["implementations"]["v7"] == "confirmed"


def test_the_same_check_over_the_whole_tree_says_it_once(tmp_path: Path, capsys):
    rc, data = run_check(tmp_path, capsys, diff(OVERRIDE_REL, OVERRIDE, DELETED), "--whole-tree")
    assert [(f["rule"], f["file"]) for f in data["new"]] == [("AA004", OVERRIDE_REL)]


def test_moving_the_override_to_another_file_is_no_replacement(tmp_path: Path, capsys):
    patch = diff(OVERRIDE_REL, OVERRIDE, DELETED) + diff("/dev/null", "", "#include <linux/uprobes.h>\n\n" + XOL,
                                                         "arch/arm/probes/uprobes/xol.c").replace(
        "--- a//dev/null", "--- /dev/null")
    rc, data = run_check(tmp_path, capsys, patch)
    # the override's own finding moves with it; nothing says the generic definition runs
    assert [(f["rule"], f["file"]) for f in data["new"]] == [("AA004", "arch/arm/probes/uprobes/xol.c")]
    assert not any("runs instead" in f["message"] for f in data["new"])


def scan_findings(capsys, root: Path) -> set[tuple[str, str]]:
    main(["scan", str(root), "--whole-tree", "--format", "json", "--no-cache"])
    return {(f["rule"], f["file"]) for f in json.loads(capsys.readouterr().out)["findings"]}


# the generic definition with nothing after the copy: copy_to_page() writes the caller's page
# through a kmap (its summary says so), and nothing makes it runnable
BARE = GENERIC.replace("\tflush_dcache_page(page);\n", "")


def test_a_generic_definition_arm_overrides_says_nothing_in_a_scan(tmp_path: Path, capsys):
    root = make_tree(tmp_path / "with")
    (root / GENERIC_REL).write_text(BARE)
    assert not {file for _, file in scan_findings(capsys, root)} & {GENERIC_REL}
    # without the override, it is what runs, and it is judged
    alone = make_tree(tmp_path / "alone", DELETED)
    (alone / GENERIC_REL).write_text(BARE)
    assert GENERIC_REL in {file for _, file in scan_findings(capsys, alone)}


# a write through a kmap, then flush_dcache_page(): it flushes folio_address(page_folio(page)),
# the same address for a page of lowmem (and a highmem page's slot is flushed at its unmap on VIVT)
DIRECT = """#include <linux/uprobes.h>

void __weak arch_uprobe_copy_ixol(struct page *page, unsigned long vaddr,
				  void *src, unsigned long len)
{
	void *kaddr = kmap_atomic(page);

	memcpy(kaddr + (vaddr & ~PAGE_MASK), src, len);
	kunmap_atomic(kaddr);
	FLUSH
}
"""


def test_a_kmap_write_flushed_by_flush_dcache_page_is_cleaned(tmp_path: Path, capsys):
    """No AA001 where flush_dcache_page() follows the write; what the code lacks is the I-cache
    invalidate (AA004), which this says nothing of."""
    root = make_tree(tmp_path / "flushed", DELETED)
    (root / GENERIC_REL).write_text(DIRECT.replace("FLUSH", "flush_dcache_page(page);"))
    assert ("AA001", GENERIC_REL) not in scan_findings(capsys, root)
    bare = make_tree(tmp_path / "bare", DELETED)
    (bare / GENERIC_REL).write_text(DIRECT.replace("FLUSH", ""))
    assert ("AA001", GENERIC_REL) in scan_findings(capsys, bare)


def test_what_the_generic_definition_writes_is_cited_in_its_own_file(tmp_path: Path, capsys):
    """A finding of the generic definition's own write is said at the override's place, while its
    evidence and the model's witness cite the lines of the generic file they come from."""
    root = make_tree(tmp_path / "linux")
    (root / GENERIC_REL).write_text(BARE)
    path = tmp_path / "edit.patch"
    path.write_text(diff(OVERRIDE_REL, OVERRIDE, DELETED))
    main(["check", "--tree", str(root), "--patch", str(path), "--format", "json", "--no-cache"])
    new = json.loads(capsys.readouterr().out)["new"]
    assert new and all(f["file"] == OVERRIDE_REL for f in new)
    written = [f for f in new if "write" in f]
    assert written and all(f["write"]["file"] == GENERIC_REL for f in written)
    line = BARE.splitlines().index("\tcopy_to_page(page, vaddr, src, len);") + 1
    assert any(f"({GENERIC_REL}:{line})" in step for f in written for step in f["model"]["witness"])
