"""Maintenance of ranges longer than a page, and operations that cover one page whatever the length.

The acceptance fixtures fixtures/model/flush-dcache-area-*.toml replay both on every hand-built
implementation (tests/test_model.py); these tests pin the pieces.
"""

from __future__ import annotations

import random

import pytest

import armalias.model.cache as cache_module
from armalias.model import ExternalRead, Maintain, Map, Scenario, ScenarioError, Write, replay, scenario_from_dict
from armalias.model.cache import CacheGeometry, Machine, ModelConfig
from armalias.model.scenario import function_steps, without_mmu

from test_model import IMPLS

TWO_PAGES = Maintain("__cpuc_flush_dcache_area", "lowmem", 0, 0x2000, next_aliases=("lowmem1",))


def two_page_flush(maintain: Maintain = TWO_PAGES) -> Scenario:
    return Scenario("two pages", (
        Map("lowmem", "buf0"), Map("lowmem1", "buf1"),
        Write("lowmem1", 0x40, 4, 0x22222222), maintain, ExternalRead("lowmem1", 0x40)))


def test_next_aliases_round_trip_through_the_fixture_format():
    scenario = two_page_flush()
    data = scenario.to_dict()
    assert data["steps"][3]["next_aliases"] == ["lowmem1"]
    assert scenario_from_dict(data) == scenario
    assert "next_aliases" not in Scenario("one", (Maintain("flush_icache_range", "exec", 0, 4),)).to_dict()["steps"][0]


def test_a_range_beyond_the_pages_named_is_refused():
    short = Maintain("__cpuc_flush_dcache_area", "lowmem", 0x800, 0x2000, next_aliases=("lowmem1",))
    with pytest.raises(ScenarioError, match="runs past the page of lowmem1"):
        replay(two_page_flush(short), IMPLS["feroceon"])
    with pytest.raises(ScenarioError, match="leaves the page"):  # no next alias: the page is the limit, as before
        replay(two_page_flush(Maintain("__cpuc_flush_dcache_area", "lowmem", 0, 0x2000)), IMPLS["feroceon"])


def test_the_second_page_is_flushed_by_a_loop_over_the_size_and_not_by_one_page():
    assert replay(two_page_flush(), IMPLS["feroceon"]).verdict == "refuted"
    v = replay(two_page_flush(), IMPLS["feroceon_range"])
    assert v.verdict == "confirmed" and not v.unknown_ops
    assert v.witness[-1] == "external read (PoC) lowmem1+0x40 -> memory (PoC): old; last written 0x22222222: STALE"
    call = next(w for w in v.witness if w.startswith("__cpuc_flush_dcache_area("))
    assert "clean+invalidate-d-range covers one page from lowmem+0x0, not the 0x2000 bytes asked" in call
    assert "no line at any of its 128 lines" in call  # a page of quiet lines is one count, not 128 entries


def test_hand_built_tables_give_the_page_from_their_scope():
    fn = IMPLS["feroceon_range"].functions["flush_kern_dcache_area"]
    assert function_steps(fn, IMPLS["feroceon_range"]) == (
        ("clean+invalidate-d-range", "page"), ("invalidate-i-all", ""), ("drain-wb", ""))
    fn = IMPLS["feroceon"].functions["flush_kern_dcache_area"]
    assert {extent for _, extent in function_steps(fn, IMPLS["feroceon"])} == {""}


def test_without_an_mmu_the_next_aliases_are_the_pages_one_names():
    scenario = Scenario("s", (Map("lowmem", "buf0"), Map("vmalloc", "buf1"), Map("lowmem1", "buf1"),
                              Maintain("__cpuc_flush_dcache_area", "lowmem", 0, 0x2000, next_aliases=("lowmem1",))))
    assert without_mmu(scenario).steps[-1].next_aliases == ("vmalloc",)


@pytest.mark.parametrize("indexing,outer", [("VIVT", False), ("PIPT", True), ("VIPT-aliasing", False)])
def test_a_long_range_visits_only_held_lines_with_the_same_result_as_every_line(monkeypatch, indexing, outer):
    """Machine.maintain skips the lines nothing is held for on a long range: the machine ends in the
    state the line-by-line walk leaves, whatever the lines held."""
    rng = random.Random(7)
    for _ in range(40):
        config = ModelConfig(d=CacheGeometry(indexing=indexing, sets=8, ways=2),
                             i=CacheGeometry(indexing=indexing, sets=8, ways=2), outer=outer)
        machines = []
        seed = rng.random()
        for shown in (cache_module._SHOWN_LINES, 10_000):
            monkeypatch.setattr(cache_module, "_SHOWN_LINES", shown)
            m = Machine(config, {"lowmem": 0xC0100000, "vmalloc": 0xE0801000}, {"buf0": 0, "buf1": 1})
            m.map("lowmem", "buf0")
            m.map("vmalloc", "buf0")
            r = random.Random(seed)
            for version in range(1, 12):
                alias = r.choice(("lowmem", "vmalloc"))
                offset = r.randrange(0, 4096, 4)
                if r.random() < 0.6:
                    m.write(alias, offset, 4, version, None)
                else:
                    m.read(alias, offset, 4, None)
                if outer and r.random() < 0.3:
                    m.maintain("clean-d-line-pou", alias, offset, 4, None)
            op = r.choice(("clean-d-line", "invalidate-d-line", "clean+invalidate-d-line", "invalidate-i-line"))
            start = r.randrange(0, 2048, 32)
            m.maintain(op, "lowmem", start, 4096 - start, None)
            machines.append(m.snapshot())
        assert machines[0] == machines[1]
