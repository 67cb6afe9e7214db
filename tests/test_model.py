"""The bundled cache model: cache semantics, exploration, scenario replay and the acceptance fixtures."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from armalias.cacheimpl import CACHE_OPS, CacheFunction, CacheImpl, CacheOp
from armalias.model.cache import (
    LINE_OPS,
    NO_DATA_OPS,
    UNKNOWN_OP,
    WHOLE_OPS,
    CacheGeometry,
    Machine,
    ModelConfig,
    ScenarioError,
)
from armalias.model.explore import Verdict
from armalias.model.scenario import (
    ExternalRead,
    Fetch,
    Maintain,
    Map,
    Op,
    Read,
    Scenario,
    Unmap,
    Write,
    aliases_sharing_a_page,
    compile_scenario,
    default_config,
    function_ops,
    impl_from_dict,
    load_fixture,
    machines,
    overall,
    replay,
    replay_all,
    replay_shared,
    scenario_from_dict,
    summarize,
    without_mmu,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "model"
SCENARIO_FILES = sorted(p for p in FIXTURES.glob("*.toml") if p.name != "impls.toml") + sorted(
    FIXTURES.glob("*.json"))


def load_impls() -> dict[str, CacheImpl]:
    with open(FIXTURES / "impls.toml", "rb") as f:
        entries = tomllib.load(f)["implementations"]
    return {entry["name"]: impl_from_dict(entry) for entry in entries}


IMPLS = load_impls()


def machine(indexing: str = "VIVT", *, write_back: bool = True, write_allocate: bool = False,
            outer: bool = False, sets: int = 4, ways: int = 2) -> Machine:
    d = CacheGeometry(indexing=indexing, write_back=write_back, write_allocate=write_allocate,
                      sets=sets, ways=ways)
    i = CacheGeometry(indexing=indexing, sets=sets, ways=ways)
    config = ModelConfig(d=d, i=i, outer=outer)
    m = Machine(config, {"exec": 0xC0008000, "fixmap": 0xFFDF3000, "lowmem": 0xC0108000},
                {"text": 0, "other": 1})
    m.map("exec", "text")
    m.map("fixmap", "text")
    return m


def dirty_lines(m: Machine) -> list:
    return [line for lines in m.dsets for line in lines if line[3]]


# -- acceptance fixtures ---------------------------------------------------------------------------


def test_fixtures_were_collected():
    assert len(SCENARIO_FILES) >= 4


MACHINES = sorted(name for impl in IMPLS.values() for name, _ in machines(impl))


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_acceptance_fixture(path: Path):
    """The whole verdict table of a fixture: every hand-built implementation on every machine it runs
    on (ARMv6 also as aliasing VIPT, `v6/aliasing`), as findings are replayed (replay_shared)."""
    scenario, expect = load_fixture(path)
    assert set(expect) == set(MACHINES), "every fixture states a verdict for every machine"
    verdicts = replay_shared(scenario, IMPLS.values())
    got = {name: v.verdict for name, v in verdicts.items()}
    assert got == expect
    for name, v in verdicts.items():
        assert not v.unknown_ops
        if v.verdict == "confirmed":
            assert v.witness[-1].endswith("STALE"), v.witness
        else:
            assert v.witness == ()
    # The verdicts do not change with a larger bound.
    assert {n: v.verdict for n, v in replay_shared(scenario, IMPLS.values(), bound=3).items()} == expect


def test_pre2017_witness_reads_like_the_bug():
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    v = replay(scenario, IMPLS["feroceon"])
    assert v.verdict == "confirmed" and v.env_actions == 1
    text = "\n".join(v.witness)
    assert "env: read through fixmap+0x0 allocates a D line" in text
    assert "write 0xe7f001f0 through fixmap+0x0 (D line fixmap+0x0 dirty)" in text
    assert "clean-d-line exec+0x0 (no line)" in text
    assert v.witness[-1] == "fetch exec+0x0 -> I miss, filled from memory: old; last written 0xe7f001f0: STALE"


def test_pre2017_with_write_allocate_needs_no_environment():
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    base = default_config(IMPLS["arm926"])
    config = ModelConfig(d=CacheGeometry(indexing="VIVT", write_allocate=True), i=base.i)
    v = replay(scenario, IMPLS["arm926"], geometry=config)
    assert v.verdict == "confirmed" and v.env_actions == 0
    assert not any(line.startswith("env:") for line in v.witness)
    assert replay(scenario, IMPLS["arm926"], geometry=config, bound=0).verdict == "confirmed"
    assert replay(scenario, IMPLS["arm926"], bound=0).verdict == "refuted"


def test_aliasing_vipt_needs_flush_kernel_vmap_range():
    pre, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    fixed, _ = load_fixture(FIXTURES / "patch-text-fixed.toml")
    config = default_config(IMPLS["v6"], vipt_aliasing=True)
    assert config.kind == "vipt-aliasing"
    assert replay(pre, IMPLS["v6"], geometry=config).verdict == "confirmed"
    assert replay(fixed, IMPLS["v6"], geometry=config).verdict == "refuted"
    aliasing = replay_all(pre, [IMPLS["v6"], IMPLS["v7"]],
                          geometry=lambda impl: default_config(impl, vipt_aliasing=True))
    assert {n: v.verdict for n, v in aliasing.items()} == {"v6": "confirmed", "v7": "confirmed"}


def test_flush_kernel_vmap_range_is_skipped_on_nonaliasing_vipt():
    scenario = Scenario("vmap on v7", (Map("exec", "text"), Map("fixmap", "text"), Write("fixmap", 0),
                                       Maintain("flush_kernel_vmap_range", "fixmap", 0, 4),
                                       ExternalRead("exec", 0)))
    # Not run on v7: the dirty line stays in L1, memory is old. Run (forced) it would be refuted.
    v7 = replay(scenario, IMPLS["v7"])
    assert v7.verdict == "confirmed"
    assert ("skipped flush_kernel_vmap_range: runs only on vivt, vipt-aliasing "
            "(this cache is vipt-nonaliasing): no operations") in v7.witness
    forced = Scenario("forced", tuple(Maintain("__cpuc_flush_dcache_area", "fixmap", 0, 4)
                                      if isinstance(s, Maintain) else s for s in scenario.steps))
    assert replay(forced, IMPLS["v7"]).verdict == "refuted"


def test_two_dirty_vivt_aliases_written_back_in_the_wrong_order():
    # Two writes to one word through two aliases, no maintenance in between: whichever dirty line is
    # written back last wins. Needs a line present for each alias and the right eviction order.
    scenario = Scenario("two writers", (
        Map("exec", "text"), Map("fixmap", "text"), Write("exec", 0, value=0x11111111),
        Write("fixmap", 0, value=0x22222222), Maintain("flush_kern_dcache_area", "fixmap", 0, 4),
        Maintain("coherent_kern_range", "exec", 0, 4), Fetch("exec", 0)))
    config = ModelConfig(d=CacheGeometry(indexing="VIVT", write_allocate=True),
                         i=CacheGeometry(indexing="VIVT"))
    v = replay(scenario, IMPLS["arm926"], geometry=config)
    assert v.verdict == "confirmed"
    assert "0x11111111" in v.witness[-1] and "0x22222222" in v.witness[-1]
    pipt = replay(scenario, IMPLS["v7"])
    assert pipt.verdict == "refuted"


def test_prefetch_before_the_write_needs_an_i_invalidate():
    no_i = CacheImpl("clean-only", "x.S", "VIVT", functions={"coherent_kern_range": CacheFunction(
        "coherent_kern_range", "x_coherent_kern_range", "clean", "none", "range", ("clean-d-line",))})
    scenario = Scenario("no I invalidate", (Map("exec", "text"), Write("exec", 0), Maintain(
        "coherent_kern_range", "exec", 0, 4), Fetch("exec", 0)))
    v = replay(scenario, no_i)
    assert v.verdict == "confirmed"
    assert v.witness[0] == "map exec -> page text"
    assert v.witness[1].startswith("env: prefetch through exec+0x0 fills an I line (old)")
    assert replay(scenario, IMPLS["arm926"]).verdict == "refuted"
    assert replay(scenario, no_i, bound=0).verdict == "refuted"


def test_remapped_fixmap_slot_keeps_the_old_pages_line_on_vivt():
    # Two patches through one fixmap slot to two pages with no flush in between (pre-2017): the second
    # write hits the VIVT line still tagged with the slot's address and holding page A.
    steps = (Map("exec", "a"), Map("fixmap", "a"), Write("fixmap", 0, value=0xAAAAAAAA), Unmap("fixmap"),
             Map("lowmem", "b"), Map("fixmap", "b"), Write("fixmap", 0, value=0xBBBBBBBB), Unmap("fixmap"),
             Maintain("flush_kern_all"), Read("lowmem", 0))
    config = ModelConfig(d=CacheGeometry(indexing="VIVT", write_allocate=True), i=CacheGeometry(indexing="VIVT"))
    v = replay(Scenario("remap", steps), IMPLS["arm926"], geometry=config)
    assert v.verdict == "confirmed" and v.env_actions == 0
    assert "holds page a" in "\n".join(v.witness)
    assert replay(Scenario("remap", steps), IMPLS["v7"]).verdict == "refuted"


# -- unknown operations ------------------------------------------------------------------------------


def test_unknown_op_is_flagged_and_does_nothing():
    scenario = Scenario("flush all", (Map("exec", "text"), Write("exec", 0), Maintain("flush_kern_all"),
                                      ExternalRead("exec", 0)))
    config = ModelConfig(d=CacheGeometry(indexing="VIVT", write_allocate=True), i=CacheGeometry(indexing="VIVT"))
    v4wb = replay(scenario, IMPLS["v4wb"], geometry=config)
    assert v4wb.unknown_ops and v4wb.verdict == "confirmed"
    assert any("unknown op" in note for note in v4wb.notes)
    assert any("undecoded" in note for note in v4wb.notes)
    arm926 = replay(scenario, IMPLS["arm926"], geometry=config)
    assert not arm926.unknown_ops and arm926.verdict == "refuted"


def test_missing_member_and_unrecognised_op_are_flagged():
    scenario = Scenario("s", (Map("exec", "text"), Maintain("dma_flush_range", "exec", 0, 4),
                              Op("frobnicate-d"), Op("clean-d-line")))
    v = replay(scenario, IMPLS["arm926"])
    assert v.unknown_ops
    assert any("dma_flush_range" in n for n in v.notes)
    assert any("frobnicate-d" in n for n in v.notes)
    assert any("without an address range" in n for n in v.notes)
    assert not replay(Scenario("s", (Map("exec", "text"), Op("dsb"))), IMPLS["arm926"]).unknown_ops


def test_vocabulary_is_covered():
    assert set(LINE_OPS) | set(WHOLE_OPS) | set(NO_DATA_OPS) | {UNKNOWN_OP} == set(CACHE_OPS)


# -- cache semantics -------------------------------------------------------------------------------


def test_clean_writes_back_and_keeps_the_line():
    m = machine(write_allocate=True)
    m.write("exec", 0, 4, 1, None)
    assert m.memory.get(("text", 0)) is None
    m.maintain("clean-d-line", "exec", 0, 4, None)
    assert m.memory[("text", 0)][:4] == (1, 1, 1, 1)
    assert len(m.dsets[0]) == 1 and not dirty_lines(m)
    assert m.read("exec", 0, 4, None)[1].startswith("D hit")


def test_invalidate_discards_dirty_data():
    m = machine(write_allocate=True)
    m.write("exec", 0, 4, 1, None)
    m.maintain("invalidate-d-line", "exec", 0, 4, None)
    assert m.read("exec", 0, 4, None)[0] == (0, 0, 0, 0)


def test_clean_invalidate_writes_back_then_drops():
    m = machine(write_allocate=True)
    m.write("exec", 0, 4, 1, None)
    m.maintain("clean+invalidate-d-range", "exec", 0, 4, None)
    assert m.memory[("text", 0)][:4] == (1, 1, 1, 1)
    assert not any(m.dsets)


def test_vivt_mva_op_only_touches_that_alias():
    m = machine(write_allocate=True)
    m.write("fixmap", 0, 4, 1, None)
    trace: list[str] = []
    m.maintain("clean+invalidate-d-line", "exec", 0, 4, trace)
    assert "no line" in trace[0] and len(dirty_lines(m)) == 1
    m.maintain("clean+invalidate-d-line", "fixmap", 0, 4, None)
    assert not dirty_lines(m)


@pytest.mark.parametrize("indexing", ["PIPT", "VIPT-aliasing"])
def test_physically_tagged_mva_op_reaches_the_line_through_any_alias(indexing: str):
    # exec and lowmem have the same colour (bit 12 clear), fixmap the other one.
    m = machine(indexing, write_allocate=True)
    m.map("lowmem", "text")
    m.write("lowmem", 0, 4, 1, None)
    m.maintain("clean+invalidate-d-line", "exec", 0, 4, None)
    assert not dirty_lines(m)
    m.write("fixmap", 0, 4, 2, None)
    m.maintain("clean+invalidate-d-line", "exec", 0, 4, None)
    assert bool(dirty_lines(m)) == (indexing == "VIPT-aliasing")


def test_mva_op_through_unmapped_alias():
    vivt = machine(write_allocate=True)
    vivt.write("fixmap", 0, 4, 1, None)
    vivt.unmap("fixmap")
    vivt.maintain("clean-d-line", "fixmap", 0, 4, None)
    assert vivt.memory[("text", 0)][:4] == (1, 1, 1, 1)  # VIVT needs no translation
    pipt = machine("PIPT", write_allocate=True)
    pipt.write("fixmap", 0, 4, 1, None)
    pipt.unmap("fixmap")
    trace: list[str] = []
    pipt.maintain("clean-d-line", "fixmap", 0, 4, trace)
    assert "unmapped" in trace[0] and ("text", 0) not in pipt.memory


def test_pou_clean_reaches_the_i_side_but_not_memory_with_an_outer_level():
    m = machine("PIPT", write_allocate=True, outer=True)
    m.write("exec", 0, 4, 1, None)
    m.maintain("clean-d-line-pou", "exec", 0, 4, None)
    assert m.fetch("exec", 0, 4, None)[0] == (1, 1, 1, 1)
    assert m.external_read("exec", 0, 4)[0] == (0, 0, 0, 0)
    m.maintain("clean-d-line", "exec", 0, 4, None)  # to PoC: the outer copy goes to memory too
    assert m.external_read("exec", 0, 4)[0] == (1, 1, 1, 1)
    without = machine("PIPT", write_allocate=True)
    without.write("exec", 0, 4, 1, None)
    without.maintain("clean-d-line-pou", "exec", 0, 4, None)
    assert without.external_read("exec", 0, 4)[0] == (1, 1, 1, 1)


def test_i_side_does_not_snoop_d():
    m = machine(write_allocate=True)
    m.write("exec", 0, 4, 1, None)
    assert m.fetch("exec", 0, 4, None)[0] == (0, 0, 0, 0)
    m.maintain("clean-d-line", "exec", 0, 4, None)
    assert m.fetch("exec", 0, 4, None)[0] == (0, 0, 0, 0)  # the old I line is still there
    m.maintain("invalidate-i-line", "exec", 0, 4, None)
    assert m.fetch("exec", 0, 4, None)[0] == (1, 1, 1, 1)


def test_whole_cache_ops():
    m = machine(write_allocate=True)
    m.write("exec", 0, 4, 1, None)
    m.write("fixmap", 32, 4, 2, None)
    m.fetch("exec", 64, 4, None)
    m.maintain("clean-d-all", None, 0, 0, None)
    assert not dirty_lines(m) and sum(map(len, m.dsets)) == 2
    assert m.memory[("text", 1)][:4] == (2, 2, 2, 2)
    m.maintain("invalidate-i-all-is", None, 0, 0, None)
    assert not any(m.isets)
    m.write("exec", 0, 4, 3, None)
    m.maintain("invalidate-d-all", None, 0, 0, None)
    assert not any(m.dsets) and m.memory[("text", 0)][:4] == (1, 1, 1, 1)


def test_write_through_updates_memory_and_never_dirties():
    m = machine(write_back=False)
    m.read("exec", 0, 4, None)
    m.write("exec", 0, 4, 1, None)
    assert not dirty_lines(m) and m.memory[("text", 0)][:4] == (1, 1, 1, 1)
    assert m.read("exec", 0, 4, None)[0] == (1, 1, 1, 1)
    assert m.read("fixmap", 0, 4, None)[0] == (1, 1, 1, 1)


def test_full_set_evicts_the_oldest_line_and_writes_it_back():
    m = machine(write_allocate=True, sets=1, ways=1)
    m.write("exec", 0, 4, 1, None)
    trace: list[str] = []
    m.read("fixmap", 32, 4, trace)
    assert "evicted, written back to memory" in trace[0]
    assert m.memory[("text", 0)][:4] == (1, 1, 1, 1)


def test_writes_split_across_lines_and_stay_on_the_page():
    m = machine(write_allocate=True)
    m.write("exec", 30, 4, 1, None)
    assert m.expected("exec", 28, 8) == (0, 0, 1, 1, 1, 1, 0, 0)
    with pytest.raises(ScenarioError):
        m.write("exec", 4094, 4, 2, None)
    m.unmap("fixmap")
    with pytest.raises(ScenarioError):
        m.read("fixmap", 0, 4, None)


# -- scenarios, verdicts, the contract field -----------------------------------------------------------


def test_scenario_round_trips_through_json():
    scenario, _ = load_fixture(FIXTURES / "patch-text-fixed.toml")
    again = scenario_from_dict(json.loads(json.dumps(scenario.to_dict())))
    assert again == scenario


@pytest.mark.parametrize("bad", [
    {"steps": [{"step": "poke", "alias": "exec"}]},
    {"steps": [{"step": "map", "alias": "exec"}]},
    {"steps": [{"step": "op", "op": "dsb", "only_on": ["vivt", "mips"]}]},
])
def test_bad_scenarios_are_rejected(bad):
    with pytest.raises(ScenarioError):
        scenario_from_dict(bad)


def test_summary_matches_the_contract_field():
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    verdicts = replay_all(scenario, [IMPLS["v7"], IMPLS["feroceon"], IMPLS["arm926"]])
    assert list(verdicts) == ["arm926", "feroceon", "v7"]
    field = summarize(verdicts).to_dict()
    assert field["verdict"] == "confirmed"
    assert field["implementations"] == {"arm926": "confirmed", "feroceon": "confirmed", "v7": "refuted"}
    assert field["witness"][0] == "on arm926:"
    assert field["witness"][1:] == list(verdicts["arm926"].witness)
    json.dumps(field)
    assert summarize({}).to_dict() == {"verdict": "not-run", "implementations": {}, "witness": []}
    assert overall({"v7": verdicts["v7"]}) == "refuted"


def test_replay_is_deterministic():
    scenario, _ = load_fixture(FIXTURES / "patch-text-residual-read.toml")
    first = replay_all(scenario, IMPLS.values())
    second = replay_all(scenario, reversed(list(IMPLS.values())))
    assert first == second
    assert isinstance(first["arm926"], Verdict)


def test_write_through_branch_is_selected_from_reader_steps():
    def step(op: str, *conditions: str) -> CacheOp:
        return CacheOp(op=op, raw="mcr", file="arch/arm/mm/proc-arm926.S", line=1, conditions=conditions)

    fn = CacheFunction("flush_kern_all", "arm926_flush_kern_cache_all", "clean+invalidate", "invalidate",
                       "whole", ("invalidate-d-all", "clean+invalidate-d-all", "invalidate-i-all"),
                       steps=(step("invalidate-d-all", "CONFIG_CPU_DCACHE_WRITETHROUGH"),
                              step("clean+invalidate-d-all", "!CONFIG_CPU_DCACHE_WRITETHROUGH"),
                              step("invalidate-i-all")))
    wb = CacheImpl("arm926", "x", "VIVT", functions={"flush_kern_all": fn})
    wt = CacheImpl("arm926", "x", "VIVT", write_through=True, functions={"flush_kern_all": fn})
    assert function_ops(fn, wb) == ("clean+invalidate-d-all", "invalidate-i-all")
    assert function_ops(fn, wt) == ("invalidate-d-all", "invalidate-i-all")
    scenario = Scenario("s", (Map("exec", "text"), Write("exec", 0), Maintain("flush_kern_all"),
                              ExternalRead("exec", 0)))
    config = ModelConfig(d=CacheGeometry(indexing="VIVT", write_allocate=True), i=CacheGeometry(indexing="VIVT"))
    assert replay(scenario, wb, geometry=config).verdict == "refuted"


def test_default_configs():
    assert default_config(IMPLS["feroceon"]).d.indexing == "VIVT"
    assert default_config(IMPLS["feroceon"]).d.write_back
    assert not default_config(IMPLS["v4wt"]).d.write_back
    v7 = default_config(IMPLS["v7"])
    assert (v7.d.indexing, v7.kind, v7.outer) == ("PIPT", "vipt-nonaliasing", True)
    assert not default_config(IMPLS["v6"]).outer
    unknown = CacheImpl("mystery", "x.S", "unknown")
    assert default_config(unknown).kind == "vivt"
    v = replay(Scenario("s", (Map("exec", "text"), Fetch("exec", 0))), unknown)
    assert "cache type unknown: modelled as VIVT" in v.notes


def test_i_invalidate_before_the_d_clean_is_caught_inside_one_call():
    def impl(ops: tuple[str, ...]) -> CacheImpl:
        fn = CacheFunction("coherent_kern_range", "x_coherent_kern_range", "clean", "invalidate", "range", ops)
        return CacheImpl("x", "x.S", "VIVT", functions={"coherent_kern_range": fn})

    scenario = Scenario("self-modifying", (Map("exec", "text"), Read("exec", 0), Write("exec", 0),
                                           Maintain("coherent_kern_range", "exec", 0, 4), Fetch("exec", 0)))
    wrong = replay(scenario, impl(("invalidate-i-line", "drain-wb", "clean-d-line", "drain-wb")))
    assert wrong.verdict == "confirmed"
    # The environment acted between the two operations of the call: the call shows on two lines.
    assert [line.split(":")[0] for line in wrong.witness[-4:-1]] == [
        "coherent_kern_range(exec+0x0..+0x4) [x_coherent_kern_range]", "env",
        "coherent_kern_range(exec+0x0..+0x4) [x_coherent_kern_range]"]
    right = replay(scenario, impl(("clean-d-line", "drain-wb", "invalidate-i-line", "drain-wb")))
    assert right.verdict == "refuted"


def test_operations_of_one_call_share_a_witness_line():
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    witness = replay(scenario, IMPLS["v4wb"]).witness
    assert witness[-2] == ("flush_icache_range(exec+0x0..+0x4) = coherent_kern_range [v4wb_coherent_kern_range]: "
                           "clean-d-line exec+0x0 (no line); invalidate-d-line exec+0x0 (no line); "
                           "invalidate-i-all (0 I lines dropped); drain-wb")


# -- unified caches, no cache, no MMU ---------------------------------------------------------------


def organized(organization: str, *, write_back: bool = False, indexing: str = "VIVT") -> Machine:
    d = CacheGeometry(indexing=indexing, write_back=write_back)
    config = ModelConfig(d=d, i=CacheGeometry(indexing=indexing), organization=organization,
                         kind="uncached" if organization == "none" else "vivt")
    m = Machine(config, {"exec": 0xC0008000, "fixmap": 0xFFDF3000}, {"text": 0})
    m.map("exec", "text")
    m.map("fixmap", "text")
    return m


def test_unified_fetch_sees_the_data_lines():
    m = organized("unified", write_back=True)
    m.read("exec", 0, 4, None)  # the line is in the one cache
    m.write("exec", 0, 4, 1, None)  # a dirty hit: memory still holds the old word
    assert m.memory.get(("text", 0), (0,) * 32)[:4] == (0, 0, 0, 0)
    got, source = m.fetch("exec", 0, 4, None)
    assert got == (1, 1, 1, 1) and source.startswith("unified D hit")
    assert not any(m.isets)
    harvard = organized("harvard", write_back=True)
    harvard.read("exec", 0, 4, None)
    harvard.write("exec", 0, 4, 1, None)
    assert harvard.fetch("exec", 0, 4, None)[0] == (0, 0, 0, 0)


def test_unified_vivt_keeps_a_stale_line_per_alias_and_i_ops_leave_it():
    m = organized("unified")  # write-through, like the ARM720T
    m.fetch("exec", 0, 4, None)
    m.write("fixmap", 0, 4, 1, None)
    assert m.memory[("text", 0)][:4] == (1, 1, 1, 1)
    trace: list[str] = []
    m.maintain("invalidate-i-line", "exec", 0, 4, trace)
    m.maintain("invalidate-i-all", None, 0, 0, trace)
    assert trace == ["invalidate-i-line exec+0x0 (unified cache: no separate I line)",
                     "invalidate-i-all (unified cache: no separate I lines)"]
    assert m.fetch("exec", 0, 4, None)[0] == (0, 0, 0, 0)  # the exec line of the other alias is stale
    m.maintain("invalidate-d-line", "exec", 0, 4, None)
    assert m.fetch("exec", 0, 4, None)[0] == (1, 1, 1, 1)


def test_unified_environment_prefetch_is_its_read():
    m = organized("unified")
    kinds = {a[0] for a in m.env_actions([("text", 0)], ["exec"])}
    assert kinds == {"read"}
    harvard = organized("harvard")
    assert {a[0] for a in harvard.env_actions([("text", 0)], ["exec"])} == {"read", "prefetch"}


def test_no_cache_reads_and_writes_memory_and_maintenance_does_nothing():
    m = organized("none")
    m.write("fixmap", 0, 4, 1, None)
    assert m.memory[("text", 0)][:4] == (1, 1, 1, 1)
    assert m.fetch("exec", 0, 4, None) == ((1, 1, 1, 1), "no cache: memory")
    assert m.read("exec", 0, 4, None)[0] == (1, 1, 1, 1)
    trace: list[str] = []
    for op in ("clean-d-line", "invalidate-d-all"):
        assert m.maintain(op, "exec", 0, 4, trace)
    assert trace == ["clean-d-line (no cache: nothing to do)", "invalidate-d-all (no cache: nothing to do)"]
    assert not any(m.dsets) and not any(m.isets)
    assert m.env_actions([("text", 0)], ["exec"]) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"organization": "split"}, "organization must be one of"),
    ({"organization": "none"}, "kind 'uncached' goes with organization 'none'"),
    ({"kind": "uncached"}, "kind 'uncached' goes with organization 'none'"),
    ({"organization": "none", "kind": "uncached", "outer": True}, "no outer level"),
])
def test_bad_organizations_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(d=CacheGeometry(), i=CacheGeometry(), **kwargs)


def test_implementation_kinds_choose_the_machine():
    v4, nop, arm946 = IMPLS["v4"], IMPLS["nop"], IMPLS["arm946"]
    assert (v4.unified, v4.write_through, nop.cache_type, arm946.mpu_only) == (True, True, "none", True)
    config = default_config(v4)
    assert (config.organization, config.kind, config.d.indexing, config.d.write_back) == ("unified", "vivt", "VIVT", False)
    assert (default_config(nop).organization, default_config(nop).kind) == ("none", "uncached")
    assert default_config(arm946).organization == "harvard"
    assert default_config(IMPLS["arm926"]).organization == "harvard"
    same = Scenario("same alias", (Map("exec", "text"), Fetch("exec"), Write("exec"), Fetch("exec")))
    assert replay(same, v4).notes == ("unified I/D cache: fetches see the data lines",)
    assert replay(same, nop).notes == ("no cache: every access reaches memory",)
    # flush_kernel_vmap_range runs only where cache_is_vivt() || cache_is_vipt_aliasing(): not on "uncached".
    vmap = Scenario("vmap", (Map("exec", "text"), Maintain("flush_kernel_vmap_range", "exec", 0, 4), Fetch("exec")))
    steps = compile_scenario(vmap, nop, default_config(nop))[0]
    assert steps[1].label == "skipped flush_kernel_vmap_range: runs only on vivt, vipt-aliasing (this cache is uncached)"


def test_without_mmu_merges_the_aliases_of_a_page():
    scenario = Scenario("s", (
        Map("exec", "text"), Map("fixmap", "text"), Write("fixmap", 0), Unmap("fixmap"),
        Map("fixmap", "data"), Write("fixmap", 4), Maintain("coherent_kern_range", "fixmap", 0, 8),
        Map("exec1", "data"), Fetch("exec", 0), Read("exec1", 4)),
        executable=("exec", "exec1"))
    assert aliases_sharing_a_page(scenario) == {"text": ("exec", "fixmap"), "data": ("fixmap", "exec1")}
    merged = without_mmu(scenario)
    assert merged.steps == (
        Map("exec", "text"), Write("exec", 0), Map("fixmap", "data"), Write("fixmap", 4),
        Maintain("coherent_kern_range", "fixmap", 0, 8), Fetch("exec", 0), Read("fixmap", 4))
    assert merged.executable == ("exec", "exec1", "fixmap")
    assert aliases_sharing_a_page(merged) == {}


def test_mpu_only_refutes_what_needs_two_aliases_and_keeps_what_one_address_has():
    pre2017, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    arm946, arm926 = IMPLS["arm946"], IMPLS["arm926"]
    assert replay(pre2017, arm926).verdict == "confirmed"
    v = replay(pre2017, arm946)
    assert v.verdict == "refuted" and v.states > 0
    assert v.notes == ("no MMU (CPU_ARM946E: MPU only): the virtual aliases exec and fixmap of page text "
                       "cannot exist apart; replayed as one physical address",)
    unsynced = Scenario("no I invalidate", (Map("exec", "text"), Fetch("exec"), Write("exec"), Fetch("exec")))
    one = replay(unsynced, arm946)
    assert one.verdict == "confirmed" and one.notes == () and "STALE" in one.witness[-1]


def test_impl_from_dict_reads_the_audit_additions():
    impl = impl_from_dict({"name": "u", "cache_type": "VIVT", "unified": True, "mpu_only": True})
    assert (impl.unified, impl.mpu_only) == (True, True)
    plain = impl_from_dict({"name": "p", "cache_type": "VIVT"})
    assert (plain.unified, plain.mpu_only) == (False, False)
