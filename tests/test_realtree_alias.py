"""Issue acceptance on real trees: patch.c before/after the 2017 fix, set_fiq_handler's range."""

import shutil
from pathlib import Path

import pytest

from armalias.scan import ScanOptions, scan
from realtree import kernel_tree

pytestmark = pytest.mark.realtree
FILES = ["arch/arm/kernel/patch.c", "arch/arm/kernel/fiq.c", "arch/arm/include/asm/cacheflush.h",
         "arch/arm/include/asm/patch.h", "arch/arm/include/asm/cachetype.h", "arch/arm/include/asm/glue-cache.h"]


def copy_subset(tree: Path, dest: Path) -> Path:
    for rel in FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tree / rel, dest / rel)
    (dest / "include").mkdir(exist_ok=True)
    return dest


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_patch_text_before_and_after_2017_fix(version: str, tmp_path: Path):
    tree = kernel_tree(version)
    root = copy_subset(tree, tmp_path)
    fixed = scan([root], ScanOptions(jobs=1, use_cache=False)).findings
    assert not [f for f in fixed if f.rule == "AA001"], [f.message for f in fixed]
    patch = root / "arch/arm/kernel/patch.c"
    lines = patch.read_text().splitlines(keepends=True)
    removed = [l for l in lines if "flush_kernel_vmap_range(" in l]
    assert removed, "the tree's patch.c has no flush_kernel_vmap_range call to remove"
    patch.write_text("".join(l for l in lines if "flush_kernel_vmap_range(" not in l))
    old = [f for f in scan([root], ScanOptions(jobs=1, use_cache=False)).findings if f.rule == "AA001"]
    # one finding per fixmap slot left dirty: FIX_TEXT_POKE0 at the first write through waddr, and
    # FIX_TEXT_POKE1, the second page of a Thumb-2 instruction that straddles two, at *addrh1
    assert len(old) == 2, [(f.line, f.message) for f in old]
    first, second = sorted(old, key=lambda f: f.line)
    for f in old:
        assert f.function == "__patch_text_real" and f.write is not None and "fixmap" in f.write.alias
    text = patch.read_text().splitlines()
    assert "waddr" in text[first.line - 1] and "fixmap(addr@FIX_TEXT_POKE0)" in first.key_exprs
    assert "addrh1" in text[second.line - 1] and "fixmap(addr@FIX_TEXT_POKE1)" in second.key_exprs


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_set_fiq_handler_range(version: str, tmp_path: Path):
    tree = kernel_tree(version)
    root = copy_subset(tree, tmp_path)
    before = scan([root], ScanOptions(jobs=1, use_cache=False)).findings
    assert not [f for f in before if f.rule == "AA003"]
    fiq = root / "arch/arm/kernel/fiq.c"
    text = fiq.read_text()
    assert "(unsigned long)base + offset + length" in text
    fiq.write_text(text.replace("(unsigned long)base + offset + length", "offset + length", 1))
    after = [f for f in scan([root], ScanOptions(jobs=1, use_cache=False)).findings if f.rule == "AA003"]
    assert [(f.function, f.category) for f in after] == [("set_fiq_handler", "range")]


def _old_patch(root: Path) -> Path:
    patch = root / "arch/arm/kernel/patch.c"
    patch.write_text("".join(l for l in patch.read_text().splitlines(keepends=True)
                             if "flush_kernel_vmap_range(" not in l))
    return patch


def _findings(root: Path) -> list[tuple[str, str, str]]:
    return sorted((f.rule, f.function, f.write.alias if f.write else "")
                  for f in scan([root], ScanOptions(jobs=1, use_cache=False)).findings)


@pytest.mark.parametrize("version", ["6.12"])
def test_findings_survive_renames_reordering_and_local_macros(version: str, tmp_path: Path):
    """Renaming a local, reordering independent statements or wrapping a maintenance call in a local
    macro changes no finding, on the fixed and on the pre-2017 patch.c."""
    import re

    tree = kernel_tree(version)
    fixed = copy_subset(tree, tmp_path / "fixed")
    old = copy_subset(tree, tmp_path / "old")
    _old_patch(old)
    for root in (fixed, old):
        before = _findings(root)
        assert before, "nothing to compare: the rules found nothing in this patch.c"
        patch = root / "arch/arm/kernel/patch.c"
        text = patch.read_text()
        # rename the local alias pointer
        renamed = re.sub(r"\bwaddr\b", "poke_addr", text)
        # reorder two independent declarations at the top of __patch_text_real
        renamed = renamed.replace("\tbool twopage = false;\n\tunsigned long flags;\n",
                                  "\tunsigned long flags;\n\tbool twopage = false;\n")
        # wrap the maintenance calls in a local macro
        renamed = renamed.replace("flush_icache_range(", "local_sync_icache(")
        renamed = renamed.replace("#include <asm/patch.h>\n",
                                  "#include <asm/patch.h>\n\n#define local_sync_icache(s, e) flush_icache_range(s, e)\n", 1)
        renamed = renamed.replace("flush_kernel_vmap_range(", "local_clean(")
        renamed = renamed.replace("#define local_sync_icache", "#define local_clean(a, n) flush_kernel_vmap_range(a, n)\n#define local_sync_icache", 1)
        assert renamed != text
        patch.write_text(renamed)
        assert _findings(root) == before


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_the_2017_hazard_is_a_warning_where_kprobes_reads_the_address_back(version: str, tmp_path: Path):
    """With kprobes' core.c in the tree, the address patch_text() is handed (`p->addr`) is also read
    as data (`__mem_to_opcode_arm(*p->addr)`): AA002 at __patch_text_real is a warning; with patch.c
    alone, nothing reads it and it is a note."""
    tree = kernel_tree(version)
    root = copy_subset(tree, tmp_path)
    alone = [f for f in scan([root], ScanOptions(jobs=1, use_cache=False)).findings if f.function == "__patch_text_real"]
    assert [(f.rule, f.severity) for f in alone] == [("AA002", "note")]
    rel = "arch/arm/probes/kprobes/core.c"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tree / rel, root / rel)
    read = [f for f in scan([root], ScanOptions(jobs=1, use_cache=False)).findings if f.function == "__patch_text_real"]
    assert [(f.rule, f.severity) for f in read] == [("AA002", "warning")]
    assert "`p->addr` is handed to __patch_text()" in read[0].message and f"{rel}:" in read[0].message
