"""The model on implementations decoded from a real kernel tree (needs .ci/fetch-kernel 6.12).

The hand-built implementations in fixtures/model/impls.toml were written by reading the same .S
files; here the acceptance fixtures run on what the audit decodes, and must agree with the hand-built
expectations for the implementations both know.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from armalias.model.scenario import load_fixture, replay_all

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
    vivt_wb = [i for i in decoded.values() if i.cache_type == "VIVT" and not i.write_through
               and {"clean-d-line", "clean+invalidate-d-line"} & set(i.functions["coherent_kern_range"].ops)]
    assert len(vivt_wb) >= 10
    verdicts = replay_all(scenario, vivt_wb)
    assert {v.verdict for v in verdicts.values()} == {"confirmed"}
