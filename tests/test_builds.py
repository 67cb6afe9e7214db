"""A finding is replayed on the cache implementations its code is built for: #if blocks, the Makefile
line of its file, and what Kconfig lets each CPU config have (armalias.model.builds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.model.builds import Builds
from armalias.scan import ScanOptions, scan
from armalias.source.ifdefs import built_under
from armalias.source.kconfig import read_kconfig
from armalias.validate import reference_implementations, validate

C = b"""int a;
#ifdef CONFIG_HARDEN
#ifndef CONFIG_CPU_V7M
int in_both;
#else
int v7m_only;
#endif
#endif
#if IS_ENABLED(CONFIG_A) && !defined(CONFIG_B)
int a_not_b;
#elif defined(CONFIG_C)
int elif_branch;
#endif
#if defined(CONFIG_A) || defined(CONFIG_B)
int either;
#endif
#ifdef CONFIG_A /* a comment */ 
int commented;
#endif
"""


@pytest.mark.parametrize("marker,required,excluded", [
    ("int a;", set(), set()),
    ("in_both", {"HARDEN"}, {"CPU_V7M"}),
    ("v7m_only", {"HARDEN", "CPU_V7M"}, set()),
    ("a_not_b", {"A"}, {"B"}),
    ("elif_branch", set(), set()),  # an #elif chain: nothing certain
    ("either", set(), set()),  # a disjunction: nothing certain
    ("commented", {"A"}, set()),
])
def test_the_configs_a_line_is_built_under(marker: str, required: set[str], excluded: set[str]):
    line = next(i for i, text in enumerate(C.decode().splitlines(), 1) if marker in text)
    under = built_under(C, line)
    assert (set(under.required), set(under.excluded)) == (required, excluded)


KCONFIG = """config CPU_V7
	bool
	select CPU_SPECTRE if MMU
	select CPU_CACHE_VIPT

config CPU_ARM926T
	bool "Support ARM926T processor"
	select CPU_CACHE_VIVT

config CPU_SPECTRE
	bool

config HARDEN_BRANCH_HISTORY
	bool "Harden Spectre style attacks against branch history" if EXPERT
	depends on CPU_SPECTRE
	default y

config FREE_OPTION
	bool "Anything"
"""
CPUS = frozenset({"CPU_V7", "CPU_ARM926T", "CPU_V7M"})


@pytest.mark.parametrize("cpu,option,possible", [
    ("CPU_V7", "HARDEN_BRANCH_HISTORY", True),
    ("CPU_ARM926T", "HARDEN_BRANCH_HISTORY", False),  # depends on a hidden option only CPU_V7 selects
    ("CPU_ARM926T", "CPU_SPECTRE", False),
    ("CPU_ARM926T", "FREE_OPTION", True),
    ("CPU_ARM926T", "UNKNOWN_ELSEWHERE", True),  # defined in another Kconfig: not ruled out
    ("CPU_ARM926T", "CPU_V7", False),  # another CPU
])
def test_what_a_cpu_config_can_have(cpu: str, option: str, possible: bool):
    assert read_kconfig(KCONFIG).possible(cpu, option, CPUS) is possible


BHB = """extern void *vectors_page;
#ifdef CONFIG_HARDEN_BRANCH_HISTORY
int bhb_update_vectors(void *vec_start, unsigned int len)
{
	memcpy(vectors_page, vec_start, len);
	flush_icache_range((unsigned long)vectors_page, (unsigned long)vectors_page + len);
	return 0;
}
#endif
"""


def test_vectors_code_built_only_for_v7_is_replayed_on_v7(tmp_path: Path):
    """The vectors are invalidated only at vectors_page, not where they run: a hazard on a VIVT
    I-cache, but the code is built only where CPU_V7 makes CONFIG_HARDEN_BRANCH_HISTORY possible,
    and there the model refutes it: a note, which says what it is built under."""
    d = tmp_path / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "bhb.c").write_text(BHB)
    raw = scan([d / "bhb.c"], ScanOptions(jobs=1, use_cache=False, model=False)).findings
    (f,) = [x for x in raw if x.rule == "AA004"]
    files = {"arch/arm/mm/Kconfig": KCONFIG.encode(), f.file: BHB.encode()}

    def read(rel: str) -> bytes:
        if rel not in files:
            raise FileNotFoundError(rel)
        return files[rel]

    impls = reference_implementations()
    (everywhere,) = validate([f], impls)
    (built,) = validate([f], impls, Builds(read))
    assert everywhere.severity == "error" and everywhere.model.verdict == "confirmed"
    assert built.severity == "note" and built.model.verdict == "refuted"
    assert dict(built.model.implementations).keys() == {"v7"}
    assert built.model.built_under == ("HARDEN_BRANCH_HISTORY",)
    assert "built for (HARDEN_BRANCH_HISTORY)" in built.message


def test_a_makefile_line_is_a_config_the_file_is_built_under():
    files = {"arch/arm/kernel/Makefile": b"obj-$(CONFIG_HARDEN_BRANCH_HISTORY) += bhb.o\nobj-y += traps.o\n",
             "arch/arm/kernel/bhb.c": b"int x;\n", "arch/arm/kernel/traps.c": b"int y;\n"}
    read = files.__getitem__
    assert Builds(read).under("arch/arm/kernel/bhb.c", 1).required == {"HARDEN_BRANCH_HISTORY"}
    assert Builds(read).under("arch/arm/kernel/traps.c", 1).required == frozenset()
