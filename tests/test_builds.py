"""A finding is replayed on the cache implementations its code is built for: #if blocks, the Makefile
line of its file, and what Kconfig lets each CPU config have (armalias.model.builds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.model.builds import Builds
from armalias.scan import ScanOptions, scan
from armalias.source.ifdefs import built_under
from armalias.source.kconfig import read_kconfig
from armalias.model.validate import reference_implementations, validate

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

config SOC_WITH_V7
	bool "A SoC"
	select CPU_V7

config SOC_MAYBE_V7
	bool "Another SoC"
	select CPU_V7 if FREE_OPTION
"""
CPUS = frozenset({"CPU_V7", "CPU_ARM926T", "CPU_V7M"})


@pytest.mark.parametrize("cpu,option,possible", [
    ("CPU_V7", "HARDEN_BRANCH_HISTORY", True),
    ("CPU_ARM926T", "HARDEN_BRANCH_HISTORY", False),  # depends on a hidden option only CPU_V7 selects
    ("CPU_ARM926T", "CPU_SPECTRE", False),
    ("CPU_ARM926T", "FREE_OPTION", True),
    ("CPU_ARM926T", "UNKNOWN_ELSEWHERE", True),  # defined in another Kconfig: not ruled out
    ("CPU_ARM926T", "CPU_V7", False),  # another CPU
    ("CPU_ARM926T", "SOC_WITH_V7", False),  # it brings another CPU in (PXA3xx selects CPU_XSC3)
    ("CPU_V7", "SOC_WITH_V7", True),
    ("CPU_ARM926T", "SOC_MAYBE_V7", True),  # only under a condition: not ruled out
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


ARCH_KCONFIG = """config ARCH_MULTI_V7
	bool "ARMv7 based platforms"
	default y
	select CPU_V7

config ARCH_MULTI_V5
	bool "ARMv5 based platforms"

config MACH_KIRKWOOD
	bool "Marvell Kirkwood boards"
	depends on ARCH_MULTI_V5
	select CPU_FEROCEON
"""
MM_KCONFIG = """config CPU_FEROCEON
	bool
	select CPU_CACHE_VIVT

config CPU_V7
	bool
	select CPU_CACHE_VIPT
"""


def test_the_defconfigs_that_build_each_cpu():
    """A defconfig sets some options and leaves `default y` ones alone (multi_v7 never says
    ARCH_MULTI_V7=y); what they select, transitively, names its CPU configs."""
    files = {"arch/arm/Kconfig": ARCH_KCONFIG.encode(), "arch/arm/mm/Kconfig": MM_KCONFIG.encode(),
             "arch/arm/configs/mvebu_v5_defconfig": b"# CONFIG_ARCH_MULTI_V7 is not set\nCONFIG_ARCH_MULTI_V5=y\n"
                                                     b"CONFIG_MACH_KIRKWOOD=y\nCONFIG_CMDLINE=\"x\"\n",
             "arch/arm/configs/multi_v7_defconfig": b"CONFIG_SMP=y\n",
             "arch/arm/configs/README": b"not a defconfig\n"}

    def read(rel: str) -> bytes:
        if rel not in files:
            raise FileNotFoundError(rel)
        return files[rel]

    def listdir(rel: str) -> list[str]:
        return sorted({f[len(rel) + 1:].split("/")[0] for f in files if f.startswith(rel + "/")})

    cpus = frozenset({"CPU_FEROCEON", "CPU_V7", "CPU_ARM926T"})
    assert Builds(read, listdir).defconfigs(cpus) == {"mvebu_v5_defconfig": {"CPU_FEROCEON"},
                                                       "multi_v7_defconfig": {"CPU_V7"}}
    assert Builds(read, listdir).defconfigs(frozenset({"CPU_ARM926T"})) == {}
    assert Builds(read).defconfigs(cpus) == {}  # no listing: no defconfigs


def test_a_kernel_config_keeps_the_implementations_it_builds():
    """--config multi_v7: the findings are replayed on v7's implementations only, so one that holds on
    VIVT alone is refuted there, a note that says why."""
    files = {"arch/arm/Kconfig": ARCH_KCONFIG.encode(), "arch/arm/mm/Kconfig": MM_KCONFIG.encode()}

    def read(rel: str) -> bytes:
        if rel not in files:
            raise FileNotFoundError(rel)
        return files[rel]

    impls = reference_implementations()
    v7 = Builds(read, config={"SMP": True})  # ARCH_MULTI_V7 by default, which selects CPU_V7
    assert {i.name for i in v7.configured(impls)} == {"v7"}
    kirkwood = Builds(read, config={"ARCH_MULTI_V7": False, "MACH_KIRKWOOD": True})
    assert {i.name for i in kirkwood.configured(impls)} == {"feroceon", "feroceon_range"}
    nothing = Builds(read, config={"ARCH_MULTI_V7": False})  # no CPU known: nothing is left out
    assert nothing.configured(impls) == impls

    d = BHB.replace("#ifdef CONFIG_HARDEN_BRANCH_HISTORY\n", "").replace("#endif\n", "")
    (f,) = [x for x in _raw_findings(d) if x.rule == "AA004"]
    files[f.file] = d.encode()
    (everywhere,) = validate([f], impls, Builds(read))
    (on_v7,) = validate([f], impls, v7)
    assert everywhere.severity == "error"
    assert on_v7.severity == "note" and "the --config builds" in on_v7.message
    assert dict(on_v7.model.implementations).keys() == {"v7"}


def _raw_findings(text: str):
    import tempfile

    d = Path(tempfile.mkdtemp()) / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "bhb.c").write_text(text)
    return scan([d / "bhb.c"], ScanOptions(jobs=1, use_cache=False, model=False)).findings


@pytest.mark.parametrize("content,message", [(None, "no such kernel config"), ("hello\n", "not a kernel config")])
def test_a_bad_kernel_config_is_a_clear_error(tmp_path: Path, capsys, content, message):
    from armalias.cli import main

    config = tmp_path / ".config"
    if content is not None:
        config.write_text(content)
    (tmp_path / "t/arch/arm").mkdir(parents=True)
    assert main(["scan", str(tmp_path / "t"), "--config", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_a_select_under_a_negated_condition_is_decided_last():
    """ARCH_MULTI_V4 selects CPU_FA526 unless a StrongARM is selected, which a board option selects
    later: assabet builds the SA1100, not the FA526."""
    from armalias.source.kconfig import read_kconfig

    k = read_kconfig("""config ARCH_MULTI_V4
	bool "ARMv4 based platforms (FA526, StrongARM)"
	select CPU_FA526 if !(CPU_SA110 || CPU_SA1100)

config ARCH_SA1100
	bool "SA1100"
	select CPU_SA1100

config CPU_SA1100
	bool

config CPU_FA526
	bool

config MMU
	bool "MMU-based Paged Memory Management Support"
	default y

config CPU_V7
	bool
	select CPU_SPECTRE if MMU
""")
    assert {"CPU_SA1100"} <= k.enabled_by({"ARCH_MULTI_V4": True, "ARCH_SA1100": True})
    assert "CPU_FA526" not in k.enabled_by({"ARCH_MULTI_V4": True, "ARCH_SA1100": True})
    assert "CPU_FA526" in k.enabled_by({"ARCH_MULTI_V4": True})
    assert "CPU_SPECTRE" in k.enabled_by({"CPU_V7": True})  # MMU is on by default
    assert "CPU_SPECTRE" not in k.enabled_by({"CPU_V7": True, "MMU": False})


def test_the_audit_lists_the_defconfigs_of_each_implementation(tmp_path: Path):
    """The kinds fixture's CPUs, and two defconfigs of a board Kconfig that select them."""
    import shutil

    from armalias.audit import audit_tree, to_json

    root = tmp_path / "linux"
    shutil.copytree(Path(__file__).parent.parent / "fixtures/asm/kinds", root)
    (root / "arch/arm/Kconfig").write_text('config BOARD_U7\n\tbool "a board"\n\tselect CPU_U7\n')
    (root / "arch/arm/configs").mkdir()
    (root / "arch/arm/configs/u7_defconfig").write_text("CONFIG_BOARD_U7=y\n")
    (root / "arch/arm/configs/none_defconfig").write_text("# CONFIG_BOARD_U7 is not set\n")
    result = audit_tree(root)
    u7 = [i.name for i in result.implementations if "CPU_U7" in i.configs]
    assert u7 and to_json(result, str(root))["defconfigs"] == {"u7_defconfig": u7}
