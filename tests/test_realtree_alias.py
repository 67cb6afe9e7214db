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
    assert len(old) == 1, [(f.line, f.message) for f in old]
    (f,) = old
    assert f.function == "__patch_text_real" and f.write is not None and "fixmap" in f.write.alias
    assert "waddr" in patch.read_text().splitlines()[f.line - 1]


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
