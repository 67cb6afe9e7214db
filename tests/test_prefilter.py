"""The identifier prefilter's text test: the same answer as a plain substring search, whatever the number
of words (bytes.find for a few, an Aho-Corasick automaton for many), on any bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from armalias.prefilter import matcher, rule_words

IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{3,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(words=st.frozensets(IDENT, min_size=1, max_size=40), filler=st.binary(max_size=300),
       pick=st.integers(min_value=0), where=st.integers(min_value=0), plant=st.booleans())
def test_matcher_is_a_substring_search(words, filler, pick, where, plant):
    data = filler
    if plant:
        w = sorted(words)[pick % len(words)].encode()
        i = where % (len(filler) + 1)
        data = filler[:i] + w + filler[i:]
    expected = any(w.encode() in data for w in words)
    assert matcher(words)(data) is expected
    if plant:
        assert expected


def test_rule_words_in_kernel_shaped_text():
    words = rule_words()
    assert len(words) > 8  # the automaton, not the few-words path
    mentions = matcher(words)
    assert mentions(b"static void f(void)\n{\n\tflush_icache_range(a, b);\n}\n")
    assert mentions(b"x = __cpuc_coherent_kern_range;")  # a substring test: no call needed
    assert not mentions(b"static int g(int x)\n{\n\treturn x + 1;\n}\n")
    assert not mentions(b"")
    assert mentions(b"\x00\xff" * 1000 + b"patch_map" + b"\xfe" * 10)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=60).map(lambda b: bytes(b"ab\\\n /*"[x % 7] for x in b)), a=st.integers(0, 60),
       b=st.integers(0, 60), keep=st.booleans())
def test_blank_keeps_offsets_newlines_and_continuations(data, a, b, keep):
    from armalias.source.text import blank

    start, end = min(a, b, len(data)), min(max(a, b), len(data))
    buf = bytearray(data)
    blank(buf, start, end, keep_backslash_newline=keep)
    assert len(buf) == len(data) and buf[:start] == data[:start] and buf[end:] == data[end:]
    for i in range(start, end):
        continuation = data[i:i + 2] == b"\\\n"
        if data[i] == 0x0A or (keep and continuation):
            assert buf[i] == data[i]
        else:
            assert buf[i] == 0x20
