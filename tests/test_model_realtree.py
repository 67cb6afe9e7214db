"""The model on implementations decoded from a real kernel tree (needs .ci/fetch-kernel 6.12).

The hand-built implementations in fixtures/model/impls.toml were written by reading the same .S
files; here the acceptance fixtures run on what the audit decodes, and must agree with the hand-built
expectations for the implementations both know.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from armalias.model import Fetch, Maintain, Map, Read, Scenario, Unmap, Write
from armalias.model.scenario import load_fixture, replay, replay_all

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "model"
KERNELS = Path(os.environ.get("ARMALIAS_KERNELS", Path.home() / ".cache" / "armalias" / "kernels"))
TREE = KERNELS / "linux-source-6.12"

pytestmark = pytest.mark.realtree


@pytest.fixture(scope="module")
def decoded():
    if not (TREE / ".armalias-complete").exists():
        pytest.skip(f"no kernel tree at {TREE} (run .ci/fetch-kernel 6.12)")
    from armalias.audit import audit_tree

    return {impl.name: impl for impl in audit_tree(TREE).implementations}


@pytest.mark.parametrize("name", ["patch-text-pre2017", "patch-text-fixed", "patch-text-residual-read",
                                  "poc-mmu-off-reader"])
def test_decoded_implementations_agree_with_the_hand_built_ones(decoded, name):
    scenario, expect = load_fixture(FIXTURES / f"{name}.toml")
    both = [decoded[n] for n in sorted(expect) if n in decoded]
    assert len(both) >= 5
    got = {n: v.verdict for n, v in replay_all(scenario, both).items()}
    assert got == {n: expect[n] for n in got}


def test_every_decoded_vivt_write_back_implementation_has_the_pre2017_bug(decoded):
    # Every write-back VIVT coherent_kern_range works on the execution alias only.
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    vivt_wb = [i for i in decoded.values() if i.cache_type == "VIVT" and not i.write_through and not i.mpu_only
               and {"clean-d-line", "clean+invalidate-d-line"} & set(i.functions["coherent_kern_range"].ops)]
    assert len(vivt_wb) >= 10
    verdicts = replay_all(scenario, vivt_wb)
    assert {v.verdict for v in verdicts.values()} == {"confirmed"}


def test_mpu_only_implementations_refute_what_needs_two_aliases(decoded):
    # ARM940T, ARM946E-S and ARMv7-M build only without an MMU: the fixmap alias of the text cannot exist.
    scenario, _ = load_fixture(FIXTURES / "patch-text-pre2017.toml")
    mpu = [decoded[n] for n in ("arm940", "arm946", "v7m", "nop")]
    assert all(i.mpu_only for i in mpu)
    for name, verdict in replay_all(scenario, mpu).items():
        assert verdict.verdict == "refuted", name
        assert any("no MMU" in n and "cannot exist apart" in n for n in verdict.notes), name
    # What one address has too stays: code written and run without any maintenance, on the
    # separate caches of the ARM940T/946E-S and the Cortex-M7 (not on the cache-less nop).
    unsynced = Scenario("no sync", (Map("exec", "text"), Fetch("exec"), Write("exec"), Fetch("exec")))
    got = {n: v.verdict for n, v in replay_all(unsynced, mpu).items()}
    assert got == {"arm940": "confirmed", "arm946": "confirmed", "v7m": "confirmed", "nop": "refuted"}


def test_unified_write_through_v4_keeps_a_stale_line_only_where_nothing_flushes_it(decoded):
    # cache-v4.S (ARM720T): coherent_kern_range does nothing, flush_kern_dcache_area invalidates the
    # whole unified cache. A stale line at the execution alias survives the first, not the second.
    v4 = decoded["v4"]
    assert (v4.cache_type, v4.unified, v4.write_through, v4.mpu_only) == ("VIVT", True, True, False)
    steps = (Map("exec", "text"), Map("fixmap", "text"), Read("exec"), Write("fixmap"))
    tail = (Unmap("fixmap"), Read("exec"))
    only_coherent = Scenario("coherent only", steps + (Maintain("flush_icache_range", "exec", 0, 4),) + tail)
    with_flush = Scenario("dcache area first", steps + (Maintain("__cpuc_flush_dcache_area", "fixmap", 0, 4),
                                                        Maintain("flush_icache_range", "exec", 0, 4)) + tail)
    stale = replay(only_coherent, v4)
    assert stale.verdict == "confirmed" and "STALE" in stale.witness[-1]
    assert replay(with_flush, v4).verdict == "refuted"
    # One alias: the unified cache needs no maintenance at all between the write and the fetch.
    same = Scenario("same alias", (Map("exec", "text"), Fetch("exec"), Write("exec"), Fetch("exec")))
    assert replay(same, v4).verdict == "refuted"
