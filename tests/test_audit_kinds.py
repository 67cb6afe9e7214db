"""What an implementation is (cache type, unified, write-through, MPU only), on the "kinds" fixture tree.

fixtures/asm/kinds holds, written for armalias: a unified write-through cache used by a CPU with an MMU
and by one without (u4, like cache-v4.S), the table of a CPU without caches (none, like cache-nop.S),
separate caches of a CPU that only builds without an MMU (mpu9, like proc-arm946.S) and of one whose
Kconfig gives no cache type but selects an option that needs !MMU (m7, like cache-v7m.S).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armalias.audit import audit_tree, to_json
from armalias.model import Fetch, Maintain, Map, Scenario, Write, replay, summarize
from armalias.model.scenario import impl_from_dict
from armalias.source.kconfig import read_kconfig

KINDS = Path(__file__).resolve().parent.parent / "fixtures" / "asm" / "kinds"


@pytest.fixture(scope="module")
def impls():
    return {impl.name: impl for impl in audit_tree(KINDS).implementations}


def test_each_implementation_is_what_its_sources_say(impls):
    got = {n: (i.cache_type, i.unified, i.write_through, i.mpu_only, i.configs) for n, i in impls.items()}
    assert got == {
        "u4": ("VIVT", True, True, False, ("CPU_U7", "CPU_U7P")),
        "none": ("none", False, False, True, ("CPU_M3",)),
        "mpu9": ("VIVT", False, False, True, ("CPU_MPU9",)),
        "m7": ("PIPT", False, False, True, ("CPU_M3",)),
    }


def test_the_notes_say_why(impls):
    u4 = impls["u4"].notes
    assert ("unified I/D cache: u4_coherent_kern_range does nothing while u4_flush_kern_cache_all maintains "
            "the cache, so instruction fetches must see the data side") in u4
    assert "write-through D-cache: members invalidate it but none ever cleans it" in u4
    assert "no MMU on CPU_U7P (depends on !MMU); modelled as the CPUs with an MMU" in u4
    assert ("no MMU on any CPU using it (MPU only, no virtual aliases): CPU_M3 (selects CPU_THUMBONLY "
            "(depends on !MMU))") in impls["m7"].notes
    assert "cache type from Kconfig unknown; without an MMU every address is physical: PIPT" in impls["m7"].notes
    assert "no member maintains a cache: modelled as no cache (every access reaches memory)" in impls["none"].notes


def test_an_undecoded_member_decides_nothing(impls):
    # The same no-op coherent_kern_range, but flush_kern_all defined outside the assembly: the code
    # evidence is incomplete, so neither "unified" nor "write-through" nor "no cache" is claimed.
    from dataclasses import replace

    from armalias.audit import _what_the_code_says

    functions = dict(impls["u4"].functions)
    functions["flush_kern_all"] = replace(functions["flush_kern_all"], resolved="", ops=("unknown",))
    assert _what_the_code_says(functions) == ("", False, False, [])
    assert _what_the_code_says(impls["u4"].functions)[:3] == ("", True, True)


def test_json_carries_the_kinds_and_reads_back():
    doc = to_json(audit_tree(KINDS), "fixtures/asm/kinds")
    json.dumps(doc)
    by_name = {i["name"]: i for i in doc["implementations"]}
    assert {n: (i["cache_type"], i["unified"], i["mpu_only"], i["write_through"]) for n, i in by_name.items()} == {
        "u4": ("VIVT", True, False, True), "none": ("none", False, True, False),
        "mpu9": ("VIVT", False, True, False), "m7": ("PIPT", False, True, False)}
    again = impl_from_dict(by_name["u4"])
    assert (again.unified, again.write_through, again.mpu_only) == (True, True, False)


def test_replay_on_the_audited_implementations(impls):
    # Written through a second alias, coherent_kern_range on the execution alias, fetched: the
    # unified u4 keeps the exec line it had (its coherent_kern_range does nothing); without an MMU
    # the two aliases are one address, which coherent_kern_range makes coherent; no cache, no stale line.
    scenario = Scenario("fixmap poke", (Map("exec", "text"), Map("fixmap", "text"), Fetch("exec"),
                                        Write("fixmap"), Maintain("coherent_kern_range", "exec", 0, 4),
                                        Fetch("exec")))
    verdicts = {n: replay(scenario, i) for n, i in impls.items()}
    assert {n: v.verdict for n, v in verdicts.items()} == {
        "u4": "confirmed", "none": "refuted", "mpu9": "refuted", "m7": "refuted"}
    assert verdicts["u4"].witness[-1].endswith("STALE") and "unified D hit exec+0x0" in verdicts["u4"].witness[-1]
    assert summarize(verdicts).verdict == "confirmed"


def test_kconfig_no_mmu_reasons():
    kconfig = read_kconfig((KINDS / "arch" / "arm" / "mm" / "Kconfig").read_text())
    assert kconfig.no_mmu_reason("CPU_U7") == ""  # `select ... if !MMU` and the help text do not count
    assert kconfig.no_mmu_reason("CPU_U7P") == "depends on !MMU"
    assert kconfig.no_mmu_reason("CPU_MPU9") == "depends on !MMU"  # "!MMU && \ CPU_CP15" over two lines
    assert kconfig.no_mmu_reason("CPU_M3") == "selects CPU_THUMBONLY (depends on !MMU)"
    assert kconfig.depends["CPU_MPU9"] == ["!MMU && CPU_CP15"]
    odd = read_kconfig("config A\n\tdepends on !MMU || B\nconfig C\n\tdepends on (X && !MMU)\n"
                       "config D\n\tselect D\n\tselect C\n")
    assert odd.no_mmu_reason("A") == ""  # one operand of an || is not a requirement
    assert odd.no_mmu_reason("C") == "depends on !MMU"
    assert odd.no_mmu_reason("D") == "selects C (depends on !MMU)"  # a select cycle ends
