"""The flow's summary rounds (FlowAnalysis.run): a function analysed in the round before is analysed
again only when a name it depends on got a new or different summary.  The flows and summaries must be
those of analysing every function in every round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armalias.cli import main
from armalias.flow.alias import FlowAnalysis
from armalias.pipeline import bodies_reader
from armalias.rules import load_vocabulary
from armalias.scan import ScanOptions, scan

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# three levels of wrappers: each round summarizes one more; `plain` and `other` depend on none of them
CHAIN = {
    "arch/arm/kernel/chain.c": (
        "void level1(unsigned long s, unsigned long e)\n{\n\tflush_icache_range(s, e);\n}\n"
        "void level2(unsigned long s, unsigned long e)\n{\n\tlevel1(s, e);\n}\n"
        "void level3(unsigned long s, unsigned long e)\n{\n\tlevel2(s, e);\n}\n"
        "void plain(void *p)\n{\n\tvoid *w = patch_map(p, 0);\n\t*(u32 *)w = 1;\n"
        "\tflush_icache_range((unsigned long)p, (unsigned long)p + 4);\n}\n"
        "void top(void *p)\n{\n\tvoid *w = patch_map(p, 0);\n\t*(u32 *)w = 1;\n"
        "\tlevel3((unsigned long)p, (unsigned long)p + 4);\n}\n"),
    "arch/arm/kernel/other.c": (
        "#define SYNC(a) level2(a, a + 4)\n"
        "void other(void *p)\n{\n\tvoid *w = patch_map(p, 0);\n\t*(u32 *)w = 2;\n\tSYNC((unsigned long)p);\n}\n"),
}


class Counting(FlowAnalysis):
    analysed = 0

    def analyse(self, body):
        Counting.analysed += 1
        return super().analyse(body)


class EveryRound(Counting):
    """Analyses every function in every round: what names it depends on is never known."""

    def _depends_on(self, body):
        return frozenset(self.summaries) | frozenset(self.index.functions) | frozenset(self.index.macros)


def _flows(result, cls):
    Counting.analysed = 0
    read = lambda rel: result.sources[rel].read(rel)  # noqa: E731
    analysis = cls(result.index, load_vocabulary(), bodies_reader(result, read, 1))
    flows = analysis.run()
    return [repr(f) for f in flows], analysis.summaries, Counting.analysed


def _trees(tmp_path: Path):
    chain = tmp_path / "chain"
    for rel, text in CHAIN.items():
        (chain / rel).parent.mkdir(parents=True, exist_ok=True)
        (chain / rel).write_text(text)
    yield chain
    yield FIXTURES / "tree"
    yield from sorted((FIXTURES / "rules").glob("*.c"))


def test_reused_flows_are_those_of_analysing_every_round(tmp_path: Path):
    for path in _trees(tmp_path):
        result = scan([path], ScanOptions(jobs=1, use_cache=False, model=False))
        flows, summaries, _ = _flows(result, Counting)
        every_flows, every_summaries, _ = _flows(result, EveryRound)
        assert flows == every_flows and summaries == every_summaries, path


def test_a_round_analyses_again_only_what_a_new_summary_reaches(tmp_path: Path):
    chain = next(_trees(tmp_path))
    result = scan([chain], ScanOptions(jobs=1, use_cache=False, model=False))
    _, summaries, reused = _flows(result, Counting)
    _, _, every = _flows(result, EveryRound)
    assert {"level1", "level2", "level3"} <= set(summaries)
    assert reused < every
    # the findings: `top` and `other` reach flush_icache_range only through the summaries
    functions = {f.function for f in result.findings}
    assert {"top", "other", "plain"} <= functions


@pytest.mark.parametrize("name", ["top", "other"])
def test_a_function_is_analysed_again_when_its_callee_is_summarized(tmp_path: Path, name: str):
    chain = next(_trees(tmp_path))
    result = scan([chain], ScanOptions(jobs=1, use_cache=False, model=False))
    flows = {f.split("name='", 1)[1].split("'", 1)[0]: f for f in _flows(result, Counting)[0]}
    assert "level3" in flows[name] or "level2" in flows[name]  # the wrappers crossed show in `via`


@pytest.mark.parametrize("seed", range(25))
def test_calls_naming_a_word_are_those_the_pattern_finds_in_each(seed: int):
    """flow.alias._naming searches the arguments of every call at once: it must find exactly the
    calls whose own arguments name a word as a whole identifier."""
    import random
    import re

    from armalias.facts import Call
    from armalias.flow.alias import _naming

    rnd = random.Random(seed)
    words = frozenset(rnd.sample(["vectors_page", "vectors_base", "CONFIG_VECTORS_BASE", "v"], rnd.randint(1, 4)))
    pieces = ["vectors_page", "vectors_pages", "my_vectors_base", "vectors_base", "CONFIG_VECTORS_BASE", "v",
              "x", "0", "(void *)", " + ", "->", "&", "vv", "_v"]
    calls = [Call(f"f{i}", rnd.choice(["a", "b", ""]), "x.c", i, 1,
                  tuple("".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 4))) for _ in range(rnd.randint(0, 3))))
             for i in range(rnd.randint(0, 60))]
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b")
    expected = [c for c in calls if any(pattern.search(a) for a in c.args)]
    assert _naming(calls, words) == expected
    assert _naming(calls, frozenset()) == []


# A helper that writes through a mapping of its parameter and does no maintenance of its own hands
# that write to its callers; a round before its own helpers are summarized it looks like one.
# Extracting a helper adds a level, and callers several levels up must end with the final
# summaries, not that first look.
POKE = """#include <linux/kernel.h>

static void poke_flush(void *addr, int size)
{
	flush_icache_range((uintptr_t)addr, (uintptr_t)addr + size);
}

static void poke_clean(void *waddr, int size)
{
	__cpuc_flush_dcache_area(waddr, size);
}

void __patch_text_real(void *addr, unsigned int insn)
{
	void *waddr = patch_map(addr, FIX_TEXT_POKE0, NULL);

	*(u32 *)waddr = insn;
	poke_clean(waddr, 4);
	patch_unmap(FIX_TEXT_POKE0, NULL);
	poke_flush(addr, 4);
}

void poke1(void *a, unsigned int i) { __patch_text_real(a, i); }
void poke2(void *a, unsigned int i) { poke1(a, i); }
void poke3(void *a, unsigned int i) { poke2(a, i); }
void poke4(void *a, unsigned int i) { poke3(a, i); }
void poke5(struct rec *r, unsigned int i) { poke4(r->ip, i); }
"""


def test_callers_six_levels_above_a_maintenance_call_read_the_final_summaries(tmp_path: Path, capsys):
    root = tmp_path / "linux"
    (root / "arch/arm/kernel").mkdir(parents=True)
    (root / "Makefile").write_text("")
    (root / "arch/arm/kernel/poke.c").write_text(POKE)
    main(["scan", str(root), "--format", "json", "--no-cache"])
    found = [(f["rule"], f["function"]) for f in json.loads(capsys.readouterr().out)["findings"]]
    # the residual hazard of the text-patching shape (AA002, a note), and nothing in the callers
    assert found == [("AA002", "__patch_text_real")]
