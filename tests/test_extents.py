"""Ranges as symbolic extents (armalias.flow.extent) and the AA003 check built on them: a write of
code that starts at or past the end of every range maintained after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from armalias.flow.extent import Extent, Poly, Reader, const, starts_at_or_past, symbol
from armalias.scan import ScanOptions, scan


def reader(linear=None, mutated=(), bases=("addr", "code", "ptr")) -> Reader:
    return Reader(dict(linear or {}), set(mutated), lambda n: n in bases)


def test_offsets_of_one_base_are_polynomials():
    r = reader({"ptr": "(unsigned long)addr", "end": "ptr + len"})
    assert r.address("ptr + 4") == Extent("addr", const(4))
    assert r.address("end") == Extent("addr", symbol("len"))
    assert r.address("(unsigned long)(&code[TMPL_END_IDX])") == Extent(
        "code", symbol("TMPL_END_IDX").mul(symbol("sizeof(*code)")))
    assert r.address("addr + 2 * (len + 1) - len") == Extent("addr", symbol("len").add(const(2)))
    assert r.length("PAGE_SIZE * 2") == symbol("PAGE_SIZE").mul(const(2))


def test_what_has_no_one_value_has_no_extent():
    r = reader({"n": "get_len() & 3"}, mutated={"p"}, bases=("addr", "p"))
    assert r.address("p + 4") is None  # p++ somewhere: no one value
    assert r.address("addr + buf[i]") is None  # a value read from memory
    assert r.address("addr + len / 2") is None
    assert r.address("addr + n") == Extent("addr", symbol("n"))  # one value, named by the local


@pytest.mark.parametrize("write,end,past", [
    (Extent("a", symbol("off")), Extent("a", symbol("off")), True),
    (Extent("a", symbol("off").add(const(4))), Extent("a", symbol("off")), True),
    (Extent("a", symbol("off")), Extent("a", symbol("off").add(const(1))), False),
    (Extent("a", symbol("off")), Extent("a", symbol("PAGE_SIZE")), False),  # not comparable
    (Extent("a", Poly()), Extent("b", Poly()), False),  # two bases
])
def test_a_write_past_the_end_is_told_only_when_certain(write: Extent, end: Extent, past: bool):
    assert starts_at_or_past(write, end) is past


SIGPAGE = """static struct page *get_signal_page(void)
{
	unsigned long ptr;
	unsigned offset;
	struct page *page;
	void *addr;

	page = alloc_pages(GFP_KERNEL, 0);
	if (!page)
		return NULL;
	addr = page_address(page);
	offset = 0x200 + (get_random_u16() & 0x7fc);
	memcpy(addr + offset, sigreturn_codes, sizeof(sigreturn_codes));
	ptr = (unsigned long)addr;
	flush_icache_range(ptr, ptr + END);
	return page;
}
"""

OPTPROBE = """int prepare_optimized(struct optimized_kprobe *op, unsigned long val)
{
	kprobe_opcode_t *code = get_optinsn_slot();

	memcpy(code, optprobe_template_entry, TMPL_END_IDX * sizeof(kprobe_opcode_t));
	code[TMPL_VAL_IDX] = (unsigned long)op;
	code[TMPL_RESTORE_BEGIN] = val;
	flush_icache_range((unsigned long)code, (unsigned long)(&code[END]));
	return 0;
}
"""


def aa003(tmp_path: Path, text: str) -> list[str]:
    d = tmp_path / "arch/arm/kernel"
    d.mkdir(parents=True)
    (d / "f.c").write_text(text)
    found = scan([d / "f.c"], ScanOptions(jobs=1, use_cache=False)).findings
    return [f.message for f in found if f.rule == "AA003"]


@pytest.mark.parametrize("text,end,caught", [
    (SIGPAGE, "PAGE_SIZE", False),
    (SIGPAGE, "offset", True),  # stops where the copied code starts
    (SIGPAGE, "offset + sizeof(sigreturn_codes)", False),
    (OPTPROBE, "TMPL_END_IDX", False),
    (OPTPROBE, "TMPL_RESTORE_BEGIN", True),  # the store to code[TMPL_RESTORE_BEGIN] is left out
    (OPTPROBE, "TMPL_RESTORE_BEGIN + 1", False),
])
def test_a_range_that_ends_where_the_code_starts(tmp_path: Path, text: str, end: str, caught: bool):
    messages = aa003(tmp_path, text.replace("END", end))
    assert bool([m for m in messages if "starts at or past the end" in m]) is caught


VECTORS = """static void flush_vectors(void *vma, size_t offset, size_t size)
{
	unsigned long start = (unsigned long)vma + offset;
	unsigned long end = start + size;

	flush_icache_range(start, end);
}

void early_trap_init(void *vectors_base)
{
	unsigned long vectors = (unsigned long)vectors_base;

	memcpy((void *)vectors, __vectors_start, __vectors_end - __vectors_start);
	memcpy((void *)vectors + 0x1000, __stubs_start, __stubs_end - __stubs_start);
	flush_vectors(vectors_base, 0, SIZE);
}
"""


@pytest.mark.parametrize("size,caught", [("PAGE_SIZE * 2", False), ("PAGE_SIZE", True), ("0x1000", True),
                                         ("2 * PAGE_SIZE", False)])
def test_a_helper_s_range_carries_its_offset_and_size_to_the_caller(tmp_path: Path, size: str, caught: bool):
    """flush_vectors(vma, offset, size) maintains [vma + offset, vma + offset + size): the caller's
    range, with PAGE_SIZE 4096 on ARM (rules/vocabulary.toml), stops before the stubs' page."""
    messages = aa003(tmp_path, VECTORS.replace("SIZE", size))
    assert bool([m for m in messages if "`(void *)vectors + 0x1000`" in m]) is caught


@pytest.mark.parametrize("text,known,value", [
    ("FLAG_A | FLAG_B", {"FLAG_A": 1, "FLAG_B": 2}, 3),
    ("!X && (Y || Z)", {"X": 0, "Y": 0, "Z": 1}, 1),
    ("1 << PAGE_SHIFT", {"PAGE_SHIFT": 12}, 4096),
    ("X == 2", {"X": 2}, 1),
    ("X && UNKNOWN", {"X": 0}, None),  # a name with no value leaves the whole unknown
    ("X +", {"X": 1}, None),
    ("sizeof(x)", {}, None),
])
def test_const_eval_parses_once_and_evaluates_per_values(text, known, value):
    """const_eval keeps the parse of a text (Kconfig's select conditions are evaluated again for every
    defconfig): the values come from the function given on each call."""
    from armalias.flow.constants import const_eval

    assert const_eval(text, known.get) == value
    assert const_eval(text, lambda n: known.get(n)) == value  # again, from the kept parse
