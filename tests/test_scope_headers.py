"""The headers an arch/arm scan extracts: those arch/arm includes, transitively, that mention a word
of the last prefilter round, each once, whether the extraction runs in this process or in workers,
whether the prefilter read the files or its memo passed over them, and with the prefilter off."""

from __future__ import annotations

from pathlib import Path

import pytest

import armalias.extraction as extraction
import armalias.prefilter as prefilter
from armalias.scan import ScanOptions, extract_scope, source_for

HEADERS = {
    # a word of the rules: taken in the first round
    "include/linux/first.h": "#include <linux/second.h>\nstatic inline void f1(void) { flush_icache_range(0, 4); }\n",
    # only a function found reaching a root in the first round (wrap_flush): taken with the last words
    "include/linux/second.h": "static inline void f2(unsigned long a) { wrap_flush(a); }\n",
    # no word: not extracted, but what it includes is followed
    "include/linux/plain.h": "#include <linux/third.h>\nextern int plain;\n",
    "include/linux/third.h": "void wrap_flush(unsigned long a);\n",
    # a word, but included by nothing
    "include/linux/orphan.h": "static inline void o(void) { flush_icache_range(0, 8); }\n",
}
EXPECTED_HEADERS = ["include/linux/first.h", "include/linux/second.h", "include/linux/third.h"]


def _tree(root: Path, callers: int) -> Path:
    files = {
        "arch/arm/kernel/a.c": "#include <linux/first.h>\n#include <linux/plain.h>\n"
                               "void wrap_flush(unsigned long a) { flush_icache_range(a, a + 4); }\n",
        # names no word: not parsed, but it includes first.h too (taken once)
        "arch/arm/kernel/b.c": "#include <linux/first.h>\nint b(void) { return 0; }\n",
        **HEADERS,
    }
    for i in range(callers):  # enough files for the first round to go to worker processes
        files[f"arch/arm/kernel/u{i}.c"] = f"void u{i}(unsigned long a) {{ flush_icache_range(a, a + {i}); }}\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _files(root: Path, **options) -> list[str]:
    source, _ = source_for(root)
    scope = extract_scope(source, ScanOptions(**options))
    files = [f.file for f in scope.facts]
    assert len(files) == len(set(files)), "a file extracted twice"
    return sorted(files)


@pytest.mark.parametrize("callers, jobs", [(0, 1), (20, 2)])
def test_included_headers_mentioning_a_word_are_extracted_once(tmp_path: Path, monkeypatch, callers, jobs):
    root = _tree(tmp_path / "tree", callers)
    started = []
    real_workers = extraction.Extractor._workers
    monkeypatch.setattr(extraction, "IN_PROCESS_BYTES", 0)
    monkeypatch.setattr(extraction.Extractor, "_workers", lambda self: started.append(1) or real_workers(self))
    files = _files(root, jobs=jobs, use_cache=False)
    assert bool(started) == (jobs > 1)  # the second case runs the rounds and the headers in workers
    headers = [f for f in files if f.startswith("include/")]
    assert headers == EXPECTED_HEADERS
    assert "arch/arm/kernel/a.c" in files and "arch/arm/kernel/b.c" not in files
    assert _files(root, jobs=jobs, use_cache=False, prefilter=False) == sorted(set(files) | {"arch/arm/kernel/b.c"})


def test_headers_when_the_prefilter_memo_reads_nothing(tmp_path: Path, monkeypatch):
    """A second scan with the cache: the prefilter's memo answers without reading the files, so their
    #include names come from their facts (parsed files) or are read (the others)."""
    root = _tree(tmp_path / "tree", 0)
    monkeypatch.setenv("ARMALIAS_CACHE_DIR", str(tmp_path / "cache"))
    first = _files(root, jobs=1, reuse=False)
    read_by_prefilter: list[str] = []
    real = prefilter._decide
    monkeypatch.setattr(prefilter, "_decide", lambda rels, *a, **k: read_by_prefilter.extend(rels) or real(rels, *a, **k))
    assert _files(root, jobs=1, reuse=False) == first
    assert not read_by_prefilter
    assert [f for f in first if f.startswith("include/")] == EXPECTED_HEADERS


def test_workers_write_every_cache_entry_before_the_scan_returns(tmp_path: Path, monkeypatch):
    """The worker processes hold their cache entries back until the last round is extracted
    (Extractor.finish) and write them while the flow runs; the scan returns once they are written,
    and a worker closed without being asked writes what it holds as it exits."""
    import time

    import armalias.cache as cache_module
    from armalias.extraction import Extractor
    from armalias.scan import scan

    root = _tree(tmp_path / "tree", 20)
    monkeypatch.setattr(extraction, "IN_PROCESS_BYTES", 0)
    write = cache_module.write_atomic  # slow writes (the workers are forked with this): the scan waits
    monkeypatch.setattr(cache_module, "write_atomic", lambda path, text: time.sleep(0.02) or write(path, text))
    cache = tmp_path / "cache"
    result = scan([root], ScanOptions(jobs=2, cache_dir=cache / "facts"))
    entries = list((cache / "facts").glob("*.marshal"))
    assert result.parsed > 16 and len(entries) == result.parsed

    other = tmp_path / "cache2" / "facts"
    source, _ = source_for(root)
    extractor = Extractor(source, ScanOptions(jobs=2, cache_dir=other))
    rels = [f.file for f in result.facts]
    facts, skipped = extractor.run(rels)  # in the workers, held back
    assert extractor._pool is not None and not skipped and len(facts) == len(rels)
    extractor.close()  # never finished: the workers write as they exit
    assert len(list(other.glob("*.marshal"))) == len(rels)
    warm = Extractor(source, ScanOptions(jobs=2, cache_dir=other))
    monkeypatch.setattr(extraction, "extract_one", lambda args: pytest.fail(f"{args[0]} extracted again"))
    again, _ = warm.run(rels)
    assert sorted(f.file for f in again) == sorted(rels)


def test_an_include_probe_lists_no_directory_its_parent_does_not_name(tmp_path: Path, monkeypatch):
    """resolve_include first looks next to the includer (arch/arm/kernel/linux/first.h): a directory
    that is not there is known from its parent's listing, not listed itself; what exists is found."""
    import os

    from armalias.scan import resolve_include
    from armalias.source.tree import DirectorySource

    root = _tree(tmp_path, 0)
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(os.path.relpath(path, root)) or real_listdir(path))
    source = DirectorySource(root)
    assert resolve_include(source, "arch/arm/kernel", "linux/first.h") == "include/linux/first.h"
    assert resolve_include(source, "arch/arm/kernel", "asm/none.h") is None
    assert source.is_file("arch/arm/kernel/a.c") and not source.is_file("arch/arm/kernel/a.c/x.h")
    assert "arch/arm/kernel/linux" not in listed and "arch/arm/kernel/asm" not in listed
    assert "include/linux" in listed and len(listed) == len(set(listed))  # each listed once
