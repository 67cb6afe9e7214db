"""Properties of the cache model and its exploration, on random programs (hypothesis)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armalias.model.cache import INDEXING, ORGANIZATIONS, CacheGeometry, Machine, ModelConfig
from armalias.model.explore import explore
from armalias.model.scenario import (
    Fetch,
    Maintain,
    Map,
    Read,
    Scenario,
    Unmap,
    Write,
    as_run_on,
    compile_scenario,
    default_config,
    impl_from_dict,
    replay,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "model"
with open(FIXTURES / "impls.toml", "rb") as _f:
    IMPLS = {e["name"]: impl_from_dict(e) for e in tomllib.load(_f)["implementations"]}

ALIASES = ("exec", "fixmap", "lowmem", "kmap")  # lowmem shares exec's colour, fixmap and kmap do not
VA = {"exec": 0xC0008000, "fixmap": 0xFFDF3000, "lowmem": 0xC0108000, "kmap": 0xFFE01000}
REGION = 96  # bytes of the page the random programs touch (three 32-byte lines)
# Maintenance that never loses data (invalidate-only D ops discard dirty lines by definition).
SAFE_OPS = ("clean-d-line", "clean+invalidate-d-line", "clean-d-line-pou", "clean-d-range",
            "clean+invalidate-d-range", "invalidate-i-line", "invalidate-i-range", "clean-d-all",
            "clean+invalidate-d-all", "invalidate-i-all", "invalidate-i-all-is", "drain-wb", "dsb", "isb")

def make_config(indexing: str, wb: bool, wa: bool, outer: bool, sets: int, ways: int,
                organization: str = "harvard") -> ModelConfig:
    return ModelConfig(
        d=CacheGeometry(indexing=indexing, write_back=wb, write_allocate=wa, sets=sets, ways=ways),
        i=CacheGeometry(indexing=indexing, sets=sets, ways=ways), outer=outer and organization != "none",
        organization=organization, kind="uncached" if organization == "none" else "vivt")


configs = st.builds(make_config, st.sampled_from(INDEXING), st.booleans(), st.booleans(), st.booleans(),
                    st.sampled_from((1, 2, 4)), st.sampled_from((1, 2)), st.sampled_from(ORGANIZATIONS))

offsets = st.integers(0, REGION - 4)
actions = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3), offsets, st.sampled_from((1, 2, 4))),
    st.tuples(st.just("read"), st.sampled_from(ALIASES), offsets),
    st.tuples(st.just("fetch"), st.sampled_from(ALIASES), offsets),
    st.tuples(st.just("op"), st.sampled_from(SAFE_OPS), st.sampled_from(ALIASES), offsets, st.integers(1, 40)),
    st.tuples(st.just("env"), st.integers(0, 1000)),
), max_size=25)


def new_machine(config: ModelConfig) -> Machine:
    m = Machine(config, VA, {"text": 0})
    for alias in ALIASES:
        m.map(alias, "text")
    return m


def run(m: Machine, program, writers: tuple[str, ...], check=None) -> None:
    interest = [("text", o) for o in range(0, REGION, 32)]
    version = 0
    for action in program:
        kind = action[0]
        if kind == "write":
            version += 1
            m.write(writers[action[1] % len(writers)], action[2], action[3], version, None)
        elif kind == "read":
            m.read(action[1], action[2], 4, None)
        elif kind == "fetch":
            m.fetch(action[1], action[2], 4, None)
        elif kind == "op":
            m.maintain(action[1], action[2], action[3], action[4], None)
        else:
            choices = m.env_actions(interest, ALIASES)
            if choices:
                m.env_apply(choices[action[1] % len(choices)], None)
        if check is not None:
            check(m)


@settings(max_examples=300, deadline=None)
@given(configs, actions, st.sampled_from(ALIASES))
def test_flushing_every_alias_makes_every_consumer_current(config, program, writer):
    # On VIVT and aliasing VIPT, two aliases written in turn without maintenance between them can
    # legitimately lose a write (whichever dirty line is written back last wins), so there the
    # program writes through one alias; physically tagged caches take writes through any alias.
    writers = ALIASES if config.d.indexing == "PIPT" else (writer,)
    m = new_machine(config)
    run(m, program, writers)
    for alias in ALIASES:
        m.maintain("clean+invalidate-d-line", alias, 0, REGION, None)
    m.maintain("invalidate-i-all", None, 0, 0, None)
    for alias in ALIASES:
        for offset in range(0, REGION, 4):
            want = m.expected(alias, offset, 4)
            assert m.external_read(alias, offset, 4)[0] == want
            assert m.fetch(alias, offset, 4, None)[0] == want
            assert m.read(alias, offset, 4, None)[0] == want


@settings(max_examples=150, deadline=None)
@given(configs, actions)
def test_write_through_never_holds_dirty_lines(config, program):
    config = make_config(config.d.indexing, False, config.d.write_allocate, config.outer, config.d.sets,
                         config.d.ways, config.organization)

    def no_dirty(m: Machine) -> None:
        assert not any(line[3] for lines in m.dsets for line in lines)

    run(new_machine(config), program, ALIASES, no_dirty)


@settings(max_examples=150, deadline=None)
@given(configs, actions, st.sampled_from(ALIASES))
def test_unified_write_through_needs_no_maintenance_through_the_written_alias(config, program, writer):
    # ARM720T: one write-through cache, so what is written through an alias is what a fetch through
    # the same alias gets, whatever else happened (other aliases may still hold stale lines).
    config = make_config(config.d.indexing, False, config.d.write_allocate, config.outer, config.d.sets,
                         config.d.ways, "unified")
    m = new_machine(config)
    run(m, program, (writer,))
    for offset in range(0, REGION, 4):
        want = m.expected(writer, offset, 4)
        assert m.fetch(writer, offset, 4, None)[0] == want
        assert m.read(writer, offset, 4, None)[0] == want
    assert not any(m.isets)  # the I array of a unified machine is never used


@settings(max_examples=100, deadline=None)
@given(configs, actions)
def test_snapshots_restore_exactly(config, program):
    m = new_machine(config)
    run(m, program, ALIASES)
    snap = m.snapshot()
    other = new_machine(config)
    other.restore(snap)
    assert other.snapshot() == snap
    run(m, program[:5], ALIASES)
    m.restore(snap)
    assert m.snapshot() == snap


# -- random scenarios: the search against concrete schedules ---------------------------------------


@st.composite
def scenarios(draw):
    impl = IMPLS[draw(st.sampled_from(sorted(IMPLS)))]
    steps = [Map("exec", "text"), Map("fixmap", "text")]
    mapped = {"exec", "fixmap"}
    members = sorted(impl.functions)
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(("write", "write", "read", "fetch", "maintain", "remap")))
        alias = draw(st.sampled_from(sorted(mapped)))
        offset = draw(st.sampled_from((0, 4, 32)))
        if kind == "write":
            steps.append(Write(alias, offset, value=0x1000 + len(steps)))
        elif kind == "read":
            steps.append(Read(alias, offset))
        elif kind == "fetch":
            steps.append(Fetch("exec", offset))
        elif kind == "maintain":
            steps.append(Maintain(draw(st.sampled_from(members)), alias, offset, draw(st.sampled_from((4, 36)))))
        elif "fixmap" in mapped:
            steps.append(Unmap("fixmap"))
            mapped.discard("fixmap")
        else:
            steps.append(Map("fixmap", "text"))
            mapped.add("fixmap")
    steps.append(draw(st.sampled_from((Fetch("exec", 0), Read("exec", 0), Fetch("exec", 32)))))
    return Scenario("random", tuple(steps)), impl


def naive_hazard(steps, m: Machine, interest, executable, index: int, budget: int) -> bool:
    """Reference search: every schedule of at most `budget` environment actions, no memoization."""
    snap = m.snapshot()
    if index == len(steps):
        return False
    if steps[index].apply(m, None):
        m.restore(snap)
        return True
    if naive_hazard(steps, m, interest, executable, index + 1, budget):
        m.restore(snap)
        return True
    m.restore(snap)
    if budget:
        for action in m.env_actions(interest, executable):
            m.env_apply(action, None)
            found = naive_hazard(steps, m, interest, executable, index, budget - 1)
            m.restore(snap)
            if found:
                return True
    return False


def check_against_reference(scenario, impl, bound: int) -> None:
    verdict = replay(scenario, impl, bound=bound)
    as_run, _ = as_run_on(scenario, impl)  # MPU-only: the aliases of a page are one address
    steps, m, interest, executable = compile_scenario(as_run, impl, default_config(impl))
    reference = naive_hazard(steps, m, interest, executable, 0, bound)
    assert (verdict.verdict == "confirmed") == reference
    if verdict.verdict == "confirmed":
        assert verdict.env_actions <= bound
        assert verdict.witness[-1].endswith("STALE")
        assert replay(scenario, impl, bound=bound + 1).verdict == "confirmed"
        if verdict.env_actions:  # shortest: one action fewer is not enough
            assert replay(scenario, impl, bound=verdict.env_actions - 1).verdict == "refuted"
    else:
        assert verdict.verdict == "refuted" and verdict.witness == ()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(0, 1))
def test_search_agrees_with_a_naive_reference(case, bound):
    check_against_reference(*case, bound)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_search_agrees_with_a_naive_reference_at_bound_2(case):
    check_against_reference(*case, 2)


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_replay_is_deterministic(case):
    scenario, impl = case
    assert replay(scenario, impl) == replay(scenario, impl)
    steps, m, interest, executable = compile_scenario(as_run_on(scenario, impl)[0], impl, default_config(impl))
    assert explore(steps, m, interest, executable).verdict == replay(scenario, impl).verdict
