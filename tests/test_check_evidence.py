"""What the base of a change says about where code runs stays known in the head: a patch that writes
kernel text with a plain copy where patch_text() was, or deletes the only I-cache invalidate of a
buffer, deletes the evidence that the bytes run together with the maintenance.  The check reads the
base's versions of the functions the change alters (armalias.check.evidence.changed_functions)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from armalias.cli import main
from conftest import check_edit

PATCH_C = """#include <linux/kernel.h>

void __patch_text_real(void *addr, unsigned int insn, bool remap)
{
	*(u32 *)addr = insn;
	flush_icache_range((uintptr_t)(addr), (uintptr_t)(addr) + 4);
}

static int patch_text_stop_machine(void *data)
{
	struct patch *patch = data;

	__patch_text_real(patch->addr, patch->insn, true);
	return 0;
}

void patch_text(void *addr, unsigned int insn)
{
	struct patch patch = { .addr = addr, .insn = insn };

	stop_machine_cpuslocked(patch_text_stop_machine, &patch, NULL);
}
"""

PROBE_C = """#include <linux/kernel.h>

void board_arm_probe(struct kprobe *p)
{
	void *addr = p->addr;
	unsigned int brkp = 0xe7f001f8;

	ARM
}

void board_copy_trampoline(const void *tmpl, size_t len)
{
	void *buf = board_trampoline_area;

	memcpy(buf, tmpl, len);
	SYNC
}
"""

ARMED = "patch_text(addr, brkp);"
PLAIN = "memcpy(addr, &brkp, sizeof(brkp));"
SYNCED = "flush_icache_range((unsigned long)buf, (unsigned long)buf + len);"


def tree(tmp_path: Path, arm: str, sync: str) -> Path:
    root = tmp_path / "linux"
    (root / "arch/arm/kernel").mkdir(parents=True)
    (root / "arch/arm/probes").mkdir(parents=True)
    (root / "Makefile").write_text("")
    (root / "arch/arm/kernel/patch.c").write_text(PATCH_C)
    (root / "arch/arm/probes/probe.c").write_text(PROBE_C.replace("ARM", arm).replace("SYNC", sync))
    return root


def check(tmp_path: Path, capsys, arm: str, sync: str) -> tuple[int, list[tuple[str, str, str]], list]:
    """Check the patch turning the base (patch_text and the flush in place) into `arm`/`sync`."""
    root = tree(tmp_path, ARMED, SYNCED)
    rel = "arch/arm/probes/probe.c"
    before = (root / rel).read_text().splitlines(keepends=True)
    after = PROBE_C.replace("ARM", arm).replace("SYNC", sync).splitlines(keepends=True)
    patch = tmp_path / "change.patch"
    patch.write_text("".join(difflib.unified_diff(before, after, f"a/{rel}", f"b/{rel}")))
    rc = main(["check", "--tree", str(root), "--patch", str(patch), "--format", "json", "--no-cache"])
    data = json.loads(capsys.readouterr().out)
    return rc, [(f["rule"], f["severity"], f["function"]) for f in data["new"]], data["fixed"]


def test_the_base_scans_quiet(tmp_path: Path, capsys):
    root = tree(tmp_path, ARMED, SYNCED)
    rc = main(["scan", str(root), "--format", "json", "--no-cache"])
    found = json.loads(capsys.readouterr().out)["findings"]
    assert rc == 0 and [f for f in found if f["severity"] != "note"] == []


def test_plain_copy_where_patch_text_was_is_new(tmp_path: Path, capsys):
    rc, new, fixed = check(tmp_path, capsys, PLAIN, SYNCED)
    assert rc == 1 and new == [("AA004", "error", "board_arm_probe")] and fixed == []


def test_a_file_left_naming_no_word_of_the_rules_is_still_checked(tmp_path: Path, capsys):
    """After the change the file calls only memcpy, which the prefilter does not look for: the
    head's version of the function is analysed all the same."""
    root = tree(tmp_path, ARMED, SYNCED)
    (root / "include").mkdir()  # a kernel root: the prefilter chooses the files parsed
    rel = "arch/arm/probes/alone.c"
    only = PROBE_C.split("void board_copy_trampoline")[0]
    (root / rel).write_text(only.replace("ARM", ARMED).replace("board_arm_probe", "board_arm_alone"))
    head = only.replace("ARM", PLAIN).replace("board_arm_probe", "board_arm_alone")
    patch = tmp_path / "alone.patch"
    patch.write_text("".join(difflib.unified_diff((root / rel).read_text().splitlines(keepends=True),
                                                  head.splitlines(keepends=True), f"a/{rel}", f"b/{rel}")))
    rc = main(["check", "--tree", str(root), "--patch", str(patch), "--format", "json", "--no-cache"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and [(f["rule"], f["function"]) for f in data["new"]] == [("AA004", "board_arm_alone")]


def test_deleting_the_only_invalidate_of_a_buffer_is_new(tmp_path: Path, capsys):
    """The buffer is of no alias the vocabulary knows: only the deleted flush said its bytes run."""
    rc, new, fixed = check(tmp_path, capsys, ARMED, "")
    assert rc == 1 and new == [("AA004", "error", "board_copy_trampoline")] and fixed == []


@pytest.mark.parametrize("arm,sync", [
    # renames the address in the whole function: the same code under another name
    ("void *a = addr; patch_text(a, brkp);", SYNCED),
    (ARMED, "flush_icache_range((unsigned long)buf, (unsigned long)(buf + len));"),
    # the flush routed through a local end
    (ARMED, "unsigned long end = (unsigned long)buf + len; flush_icache_range((unsigned long)buf, end);"),
])
def test_edits_that_keep_the_maintenance_are_quiet(tmp_path: Path, capsys, arm: str, sync: str):
    rc, new, fixed = check(tmp_path, capsys, arm, sync)
    assert (rc, new, fixed) == (0, [], [])


SECURE_C = """#include <linux/kernel.h>

u32 board_secure_dispatch(u32 idx, u32 arg0, u32 arg1)
{
	u32 param[3];

	param[0] = 2;
	param[1] = arg0;
	WRITE
	flush_cache_all();
	outer_clean_range(__pa(param), __pa(param + 3));
	LATE
	return board_smc(idx, __pa(param));
}
"""


@pytest.mark.parametrize("edit,new", [
    # the clean of the whole cache deleted: the outer clean alone leaves the inner caches' lines
    (lambda t: t.replace("\tflush_cache_all();\n", ""), [("AA005", "board_secure_dispatch")]),
    # an argument written after the clean: the firmware reads memory, which has not got it
    (lambda t: t.replace("WRITE", "").replace("LATE", "param[2] = arg1;"), [("AA005", "board_secure_dispatch")]),
    # the same, said otherwise
    (lambda t: t.replace("param[1] = arg0;", "param[1] = (arg0);"), []),
])
def test_a_firmware_argument_the_base_cleaned_to_poc(tmp_path: Path, capsys, edit, new):
    """The base writes the argument block, cleans the whole cache to PoC and hands the block on by its
    physical address: its own word that the reader sees memory."""
    base = SECURE_C.replace("WRITE", "param[2] = arg1;").replace("LATE", "")
    head = edit(SECURE_C).replace("WRITE", "param[2] = arg1;").replace("LATE", "")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mach-board/secure.c", base, head)
    assert found == new and rc == (1 if new else 0)


RELEASE_C = """#include <linux/kernel.h>

static void board_write_release(u32 release_phys)
{
	u32 *virt = (u32 *) phys_to_virt(release_phys);

	writel_relaxed(__pa_symbol(secondary_startup), virt);
	smp_wmb();
	CLEAN
}
"""


@pytest.mark.parametrize("clean,new", [
    ("__cpuc_flush_dcache_area(virt, sizeof(*virt));", []),  # the same, said otherwise
    # to the point of unification: I-cache maintenance too, which does not make the word code
    ("__cpuc_coherent_kern_range((unsigned long)virt, (unsigned long)virt + sizeof(u32));",
     [("AA005", "board_write_release")]),
    # the physical address taken for a virtual one: the word written is not what is cleaned
    ("__cpuc_flush_dcache_area((void *)release_phys, sizeof(u32));", [("AA005", "board_write_release")]),
])
def test_a_release_address_for_a_secondary_cpu(tmp_path: Path, capsys, clean: str, new: list):
    base = RELEASE_C.replace("CLEAN", "__cpuc_flush_dcache_area(virt, sizeof(u32));")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mach-board/platsmp.c", base, RELEASE_C.replace("CLEAN", clean))
    assert found == new and rc == (1 if new else 0)


def test_a_kept_finding_that_now_holds_on_more_caches_is_new(tmp_path: Path, capsys):
    """copy_to_user_page's finding (invalidated only at the kernel alias, on VIVT) keeps its
    fingerprint when the maintenance moves to the source buffer, but now holds on every cache: the
    check reports it as new, saying where."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_detection_flow import COHERENT, PTRACE

    base = PTRACE.replace("VIVT", COHERENT).replace("VIPT", "__flush_icache_all();").replace("LEN", "len")
    moved = base.replace("__flush_access(page, uaddr, dst, len, 3);", "__flush_access(page, uaddr, (void *)src, len, 3);")
    renamed = base.replace("memcpy(dst, src, len);", "memcpy(dst, src, (len));")
    rc, found = check_edit(tmp_path / "a", capsys, "arch/arm/mm/flush.c", base, moved)
    assert rc == 1 and found == [("AA004", "copy_to_user_page")]
    rc, found = check_edit(tmp_path / "b", capsys, "arch/arm/mm/flush.c", base, renamed)
    assert (rc, found) == (0, [])


HELPER_C = """#include <linux/kernel.h>

static void board_flush_slot(void *p)
{
	flush_icache_range((unsigned long)p, (unsigned long)p + 64);
}

void board_sync_page(struct page *page, pte_t pteval)
{
	void *addr = page_address(page);

	__cpuc_flush_dcache_area(addr, PAGE_SIZE);
	if (pte_exec(pteval))
		SYNC
}
"""


@pytest.mark.parametrize("sync,new", [
    ("", [("AA004", "board_sync_page")]),  # the I-cache invalidate deleted
    ("__flush_icache_all(); /* again */", []),
    ("{ __flush_icache_all(); }", []),
])
def test_a_maintenance_helper_judged_against_its_base(tmp_path: Path, capsys, sync: str, new: list):
    """board_sync_page writes nothing: it maintains for its callers, and its base version is its
    contract.  Deleting the I-cache invalidate it did for executable pages is new."""
    base = HELPER_C.replace("SYNC", "__flush_icache_all();")
    head = HELPER_C.replace("SYNC", sync) if sync else HELPER_C.replace("\tif (pte_exec(pteval))\n\t\tSYNC\n", "")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mm/board.c", base, head)
    assert found == new and rc == (1 if new else 0)


ALIAS_C = """#include <linux/kernel.h>

static void board_flush_icache_alias(unsigned long pfn, unsigned long vaddr, unsigned long len)
{
	unsigned long va = FLUSH_ALIAS_START + (CACHE_COLOUR(vaddr) << PAGE_SHIFT);
	unsigned long offset = vaddr & (PAGE_SIZE - 1);
	unsigned long to;

	set_top_pte(va, pfn_pte(pfn, PAGE_KERNEL));
	to = va + offset;
	flush_icache_range(to, END);
}
"""


@pytest.mark.parametrize("end,new", [
    ("va + len", [("AA003", "board_flush_icache_alias")]),  # stops `offset` bytes short
    ("to + len - 1", [("AA003", "board_flush_icache_alias")]),
    ("va + offset + len", []),  # the same end, said otherwise
    ("to + len + 4", []),  # longer is no bug of this kind
])
def test_a_range_the_change_shortens(tmp_path: Path, capsys, end: str, new: list):
    base = ALIAS_C.replace("END", "to + len")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/mm/board.c", base, ALIAS_C.replace("END", end))
    assert found == new and rc == (1 if new else 0)


SYNC_C = """#include <linux/kernel.h>

struct board_sync { struct { s8 cluster; } clusters[4]; } board_sync;

void board_sync_init(unsigned int this_cluster)
{
	board_sync.clusters[this_cluster].cluster = 1;
	sync_cache_w(CLEAN);
}
"""


@pytest.mark.parametrize("clean,new", [
    ("&board_sync.clusters[0]", [("AA005", "board_sync_init")]),  # one element, not the one written
    ("&board_sync.clusters[this_cluster]", []),
    ("&board_sync.clusters[this_cluster].cluster", []),
])
def test_an_element_named_by_a_number_is_that_element(tmp_path: Path, capsys, clean: str, new: list):
    base = SYNC_C.replace("CLEAN", "&board_sync")
    rc, found = check_edit(tmp_path, capsys, "arch/arm/common/board_sync.c", base, SYNC_C.replace("CLEAN", clean))
    assert found == new and rc == (1 if new else 0)


def test_a_head_judged_with_its_base_s_evidence_is_not_remembered_as_its_own(tmp_path: Path, capsys,
                                                                           monkeypatch):
    """The index checked before a commit is HEAD's side of the next check, from the findings cache.
    Its findings leant on the base it was checked against (patch_text() was there): remembered as
    the tree's own, they came back in the next check as a base finding the head no longer has, a
    false "1 fixed" for a change that adds a comment elsewhere."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import commit, git

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path / "cache"))
    root = tree(tmp_path, ARMED, SYNCED)
    git(root, "init", "-q")
    commit(root, "base")
    rel = root / "arch/arm/probes/probe.c"
    rel.write_text(PROBE_C.replace("ARM", PLAIN).replace("SYNC", SYNCED))
    git(root, "add", "-A")
    assert main(["check", "--tree", str(root), "--staged", "--format", "json"]) == 1
    assert [f["rule"] for f in json.loads(capsys.readouterr().out)["new"]] == ["AA004"]
    commit(root, "plain store")
    patch_c = root / "arch/arm/kernel/patch.c"
    patch_c.write_text("/* a comment */\n" + patch_c.read_text())  # HEAD's side comes from the cache
    rc = main(["check", "--tree", str(root), "--format", "json"])  # the working tree against HEAD
    data = json.loads(capsys.readouterr().out)
    assert (rc, data["new"], data["fixed"]) == (0, [], [])
