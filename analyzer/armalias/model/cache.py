"""A small, explicit model of an ARM CPU's L1 D and I caches, an optional outer level, and memory.

What is modelled
----------------
* Separate D and I caches (`CacheGeometry` each): line size, sets, ways, VIVT / VIPT-aliasing / PIPT
  indexing; the D side is write-back or write-through, write-allocate or not (reads always allocate, as
  on every ARM L1). The I side never snoops D: an I miss fills from the level below the L1 D-cache.
* Virtual aliases: named mappings ("exec", "fixmap", "vectors", "lowmem", "kmap", "vmalloc", "user",
  "sram", "phys", or any other name) each with a fixed virtual base address, mapped onto one physical
  page at a time; an alias can be unmapped and remapped (like a fixmap slot).
* Cache line identity:
    - VIVT: the tag is the virtual line address, so two aliases of one page hold separate lines, and a
      maintenance operation by MVA only finds the line tagged with that virtual address. Each line also
      records the physical line it was filled from, so a write-back after an unmap still reaches that
      physical page (ARM926/Feroceon keep a PA tag for write-back; no translation is needed).
    - VIPT-aliasing: the index uses the VA colour bits; a line is (colour, physical line), so aliases of
      different colour are separate lines and aliases of the same colour share one.
    - PIPT (also used for non-aliasing VIPT, e.g. ARMv7 D-caches): one line per physical line, whatever
      the alias. Maintenance by MVA then needs a translation: through an unmapped alias it does nothing
      (the real op would fault; the v7 code has a fixup for that).
* Replacement: a fill into a full set evicts the oldest line of that set (writing it back when dirty).
  The exploration's environment may evict any line at any time as well, so the choice of victim only
  adds behaviours that the environment could produce anyway.
* Levels and the two consumers:
    - the *point of unification* (PoU) is where the I-side fills come from;
    - the *point of coherency* (PoC) is memory, what a consumer with the MMU off or another bus master
      reads (`external_read`).
  With `ModelConfig.outer` false, PoU and PoC are both memory. With it true, an outer unified level sits
  between them: `clean-d-line-pou` and L1 evictions stop there (I fills and D fills see it), every other
  clean (by MVA "to the point of coherency" or whole-cache) pushes the line through to memory and also
  cleans the outer copy of that physical line. The outer level holds only lines newer than memory and
  has unbounded capacity; the environment may write any of them back.
* Write-through: a write updates a hitting line and always goes to the level below (the outer level when
  present, else memory); write-through lines are never dirty.
* Organization (`ModelConfig.organization`):
    - `harvard`: separate D and I caches, as above;
    - `unified`: one cache for instructions and data (ARM720T's "IDC" cache, `cache-v4.S`). It is the
      D geometry; an instruction fetch looks up and fills D lines like a load. An I-side operation
      (`invalidate-i-line`, `invalidate-i-all`, ...) has no separate cache to act on and does
      nothing: the combined encodings the kernel issues on unified caches (c7,c7,0 on v4; c7,c7,1
      and c7,c15,x in cache-v6.S's unified branch) also decode to a D-side operation, which does
      the work. The environment's prefetch is its read: the same fill;
    - `none`: no cache (`nop_cache_fns`, Cortex-M3/M4): every write reaches memory, every load and
      fetch reads it, maintenance does nothing and the environment has nothing to act on.

Values are *versions*: every byte holds the number of the program write that produced it (0 for the
page's contents before the scenario), which is all the model needs to tell "current" from "stale";
`labels` maps versions to what a kernel developer would recognise (an instruction encoding).

Maintenance operations use the vocabulary of `armalias.cacheimpl` (see `LINE_OPS`, `WHOLE_OPS`,
`NO_DATA_OPS`). An `unknown` or unrecognised operation does nothing here; the caller records it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

INDEXING = ("VIVT", "VIPT-aliasing", "PIPT")
# What cache_is_vivt()/cache_is_vipt_aliasing()/... would say; "uncached" is a CPU without caches (the
# kernel's cacheid 0 on ARMv7-M, where every cache_is_*() is false).
CACHE_KINDS = ("vivt", "vipt-aliasing", "vipt-nonaliasing", "pipt", "uncached")
ORGANIZATIONS = ("harvard", "unified", "none")

# By-MVA operations (the Feroceon range forms are applied line by line over the range) -> (side, effect).
LINE_OPS: dict[str, tuple[str, str]] = {
    "clean-d-line": ("d", "clean"),
    "invalidate-d-line": ("d", "invalidate"),
    "clean+invalidate-d-line": ("d", "clean+invalidate"),
    "clean-d-line-pou": ("d", "clean-pou"),
    "clean-d-range": ("d", "clean"),
    "invalidate-d-range": ("d", "invalidate"),
    "clean+invalidate-d-range": ("d", "clean+invalidate"),
    "invalidate-i-line": ("i", "invalidate"),
    "invalidate-i-range": ("i", "invalidate"),
}
WHOLE_OPS: dict[str, tuple[str, str]] = {
    "clean-d-all": ("d", "clean"),
    "invalidate-d-all": ("d", "invalidate"),
    "clean+invalidate-d-all": ("d", "clean+invalidate"),
    "invalidate-i-all": ("i", "invalidate"),
    "invalidate-i-all-is": ("i", "invalidate"),
    # the levels up to the point of unification only (flush_cache_louis: the set/way loop stops at
    # LoUIS): L1 lines are written to the outer level, which keeps them
    "clean-d-all-pou": ("d", "clean-pou"),
    "clean+invalidate-d-all-pou": ("d", "clean+invalidate-pou"),
}
# Barriers, write-buffer drains and branch-predictor maintenance: no effect on cached data.
NO_DATA_OPS = frozenset({"drain-wb", "flush-btb", "flush-btb-line", "dsb", "isb", "barrier"})
UNKNOWN_OP = "unknown"
# A by-MVA operation over more lines than this names only the lines it found something at in a
# witness; the rest are one count (a page is 128 lines of 32 bytes).
_SHOWN_LINES = 4

# Illustrative virtual bases (4 KiB aligned, pairwise distinct) for the usual alias names. Only their
# distinctness and their colour (VIPT-aliasing) matter: "fixmap" and "exec" differ in colour on
# purpose, as the text-poke fixmap slot and the kernel text generally do.
DEFAULT_VA: dict[str, int] = {
    "exec": 0xC0008000,
    "lowmem": 0xC0100000,
    "fixmap": 0xFFDF3000,
    "fixmap1": 0xFFDF2000,
    # the kernel's mapping of the vectors page (vectors_page, a lowmem page of any colour), not the
    # high vectors where the bytes run ("exec"): of the other colour, as nothing makes them match
    "vectors": 0xC0101000,
    "kmap": 0xFFE01000,
    "vmalloc": 0xE0801000,
    "user": 0x00010000,
    "sram": 0xFEC01000,
    "phys": 0x80008000,
    # a pointer a caller passed, a second mapping of the page: of the other colour than "exec", as
    # nothing makes a caller's mapping match the colour of where the bytes are used
    "param": 0x40001000,
}

PALine = tuple[str, int]  # (physical page name, line index within the page)
Data = tuple[int, ...]  # one version per byte of a line


class ScenarioError(ValueError):
    """A scenario the model cannot run (an access through an unmapped alias, a range off its page)."""


@dataclass(frozen=True)
class CacheGeometry:
    """One L1 cache. `write_back`/`write_allocate` only matter for the D side."""

    line_size: int = 32
    sets: int = 4
    ways: int = 2
    indexing: str = "VIVT"
    write_back: bool = True
    write_allocate: bool = False
    colours: int = 2  # VIPT-aliasing: way size / page size

    def __post_init__(self) -> None:
        if self.indexing not in INDEXING:
            raise ValueError(f"indexing must be one of {INDEXING}, not {self.indexing!r}")
        if self.line_size < 4 or self.line_size & (self.line_size - 1):
            raise ValueError(f"line_size must be a power of two >= 4, not {self.line_size}")
        if self.sets < 1 or self.ways < 1 or self.colours < 1:
            raise ValueError("sets, ways and colours must be positive")


@dataclass(frozen=True)
class ModelConfig:
    """The whole machine: D and I geometry, outer level, page size, and the kernel's name for it."""

    d: CacheGeometry
    i: CacheGeometry
    outer: bool = False
    page_size: int = 4096
    kind: str = "vivt"  # what cache_is_vivt()/cache_is_vipt_aliasing()/... would say
    organization: str = "harvard"  # one of ORGANIZATIONS; `unified` uses `d` for both, `none` neither

    def __post_init__(self) -> None:
        if self.kind not in CACHE_KINDS:
            raise ValueError(f"kind must be one of {CACHE_KINDS}, not {self.kind!r}")
        if self.organization not in ORGANIZATIONS:
            raise ValueError(f"organization must be one of {ORGANIZATIONS}, not {self.organization!r}")
        if (self.organization == "none") != (self.kind == "uncached"):
            raise ValueError("kind 'uncached' goes with organization 'none' and only with it")
        if self.organization == "none" and self.outer:
            raise ValueError("a machine without caches has no outer level either")
        if self.d.line_size != self.i.line_size:
            # One physical line granule keeps write-back and I fills simple; every ARM core the
            # kernel's VIVT code supports uses one L1 line size for both sides.
            raise ValueError("the model needs equal D and I line sizes")
        if self.page_size % self.d.line_size:
            raise ValueError("page_size must be a multiple of the line size")


def version_label(version: int, labels: Mapping[int, str]) -> str:
    return "old" if version == 0 else labels.get(version, f"write#{version}")


def data_label(versions: Iterable[int], labels: Mapping[int, str]) -> str:
    distinct = sorted(set(versions))
    if len(distinct) == 1:
        return version_label(distinct[0], labels)
    return "mixed(" + ",".join(version_label(v, labels) for v in distinct) + ")"


class Machine:
    """Mutable machine state with cheap hashable snapshots (for the exploration's visited set).

    Every method that changes or observes state takes an optional `trace` list and appends a short
    description of what happened, in the kernel's vocabulary; pass None to run silently.
    """

    def __init__(
        self,
        config: ModelConfig,
        va: Mapping[str, int],
        pfn: Mapping[str, int],
        labels: Mapping[int, str] | None = None,
    ) -> None:
        self.config = config
        self.cached = config.organization != "none"
        self.unified = config.organization == "unified"
        self.va = dict(va)
        self.pfn = dict(pfn)
        self.labels = dict(labels or {})
        self._alias_of_vline = {}
        for alias, base in self.va.items():
            if base % config.page_size:
                raise ValueError(f"virtual base of {alias} is not page aligned")
            self._alias_of_vline[base // config.page_size] = alias
        self.dsets: list[list[tuple]] = [[] for _ in range(config.d.sets)]  # (tag, pa, data, dirty)
        self.isets: list[list[tuple]] = [[] for _ in range(config.i.sets)]  # (tag, pa, data)
        self.outer: dict[PALine, Data] = {}
        self.memory: dict[PALine, Data] = {}
        self.mapping: dict[str, str] = {}
        self.latest: dict[PALine, Data] = {}  # ghost: what the program last wrote, per byte

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self) -> tuple:
        return (
            tuple(tuple(s) for s in self.dsets),
            tuple(tuple(s) for s in self.isets),
            tuple(sorted(self.outer.items())),
            tuple(sorted(self.memory.items())),
            tuple(sorted(self.mapping.items())),
            tuple(sorted(self.latest.items())),
        )

    def restore(self, snap: tuple) -> None:
        dsets, isets, outer, memory, mapping, latest = snap
        self.dsets = [list(s) for s in dsets]
        self.isets = [list(s) for s in isets]
        self.outer = dict(outer)
        self.memory = dict(memory)
        self.mapping = dict(mapping)
        self.latest = dict(latest)

    # -- addressing ------------------------------------------------------------------------------

    def _zero(self) -> Data:
        return (0,) * self.config.d.line_size

    def _check_range(self, alias: str, offset: int, size: int) -> None:
        if alias not in self.va:
            raise ScenarioError(f"alias {alias!r} has no virtual base")
        if offset < 0 or size < 0 or offset + size > self.config.page_size:
            raise ScenarioError(f"{alias}+{offset:#x} size {size} leaves the page")

    def _pa(self, alias: str, line_offset: int) -> PALine | None:
        page = self.mapping.get(alias)
        if page is None:
            return None
        return (page, line_offset // self.config.d.line_size)

    def _need_pa(self, alias: str, line_offset: int, what: str) -> PALine:
        pa = self._pa(alias, line_offset)
        if pa is None:
            raise ScenarioError(f"{what} through unmapped alias {alias!r}")
        return pa

    def _key(self, geometry: CacheGeometry, alias: str, line_offset: int) -> tuple[int, object] | None:
        """(set index, tag) of the line an access through alias+line_offset looks up; None when the
        cache needs a translation and the alias is unmapped."""
        size = self.config.page_size
        va = self.va[alias] + line_offset
        if geometry.indexing == "VIVT":
            return (va // geometry.line_size) % geometry.sets, va // geometry.line_size
        page = self.mapping.get(alias)
        if page is None:
            return None
        pa_offset = line_offset
        pa = (page, line_offset // geometry.line_size)
        if geometry.indexing == "PIPT":
            index_address = self.pfn[page] * size + pa_offset
            return (index_address // geometry.line_size) % geometry.sets, pa
        colour = (va // size) % geometry.colours
        index_address = colour * size + pa_offset
        return (index_address // geometry.line_size) % geometry.sets, (colour, pa)

    def _tag_name(self, geometry: CacheGeometry, tag: object) -> str:
        if geometry.indexing == "VIVT":
            va = tag * geometry.line_size  # type: ignore[operator]
            page_size = self.config.page_size
            alias = self._alias_of_vline.get(va // page_size)
            return f"{alias}+{va % page_size:#x}" if alias else f"va {va:#x}"
        if geometry.indexing == "PIPT":
            page, index = tag  # type: ignore[misc]
            return f"page {page}+{index * geometry.line_size:#x}"
        colour, (page, index) = tag  # type: ignore[misc]
        return f"page {page}+{index * geometry.line_size:#x} colour {colour}"

    def chunks(self, offset: int, size: int) -> list[tuple[int, int, int]]:
        """Split [offset, offset+size) into (line offset, start within line, byte count)."""
        line = self.config.d.line_size
        out = []
        pos, end = offset, offset + size
        while pos < end:
            base = pos - pos % line
            n = min(end, base + line) - pos
            out.append((base, pos - base, n))
            pos += n
        return out

    def line_offsets(self, offset: int, length: int, line_size: int) -> list[int]:
        """Line-aligned offsets of every line that [offset, offset+length) touches."""
        if length <= 0:
            return []
        first = offset - offset % line_size
        return list(range(first, offset + length, line_size))

    # -- the levels below L1 ---------------------------------------------------------------------

    def _below(self, pa: PALine) -> Data:
        """What an L1 fill (D or I) sees: the outer level, else memory (the point of unification)."""
        if pa in self.outer:
            return self.outer[pa]
        return self.memory.get(pa, self._zero())

    def _store_below(self, pa: PALine, data: Data) -> str:
        """An L1 write-back, eviction or PoU clean: lands in the outer level when there is one."""
        if self.config.outer:
            self.outer[pa] = data
            return "outer level"
        self.memory[pa] = data
        return "memory"

    def _to_poc(self, pa: PALine, data: Data | None) -> None:
        """Clean to the point of coherency: L1 data (if dirty) or the outer copy reaches memory."""
        if data is None:
            data = self.outer.get(pa)
        self.outer.pop(pa, None)
        if data is not None:
            self.memory[pa] = data

    # -- line lookup and fill --------------------------------------------------------------------

    @staticmethod
    def _find(lines: list[tuple], tag: object) -> int:
        for index, line in enumerate(lines):
            if line[0] == tag:
                return index
        return -1

    def _make_room(self, lines: list[tuple], ways: int, is_d: bool, trace: list[str] | None) -> None:
        while len(lines) >= ways:
            victim = lines.pop(0)
            if is_d and victim[3]:
                where = self._store_below(victim[1], victim[2])
                if trace is not None:
                    trace.append(f"(set full: dirty D line {self._tag_name(self.config.d, victim[0])} "
                                 f"evicted, written back to {where})")
            elif trace is not None:
                side, geometry = ("D", self.config.d) if is_d else ("I", self.config.i)
                trace.append(f"(set full: {side} line {self._tag_name(geometry, victim[0])} evicted)")

    def _fill_d(self, alias: str, line_offset: int, trace: list[str] | None) -> tuple[list[tuple], int]:
        """Return (set, index) of the D line for alias+line_offset, filling it on a miss."""
        geometry = self.config.d
        key = self._key(geometry, alias, line_offset)
        assert key is not None  # callers check the mapping first
        set_index, tag = key
        lines = self.dsets[set_index]
        index = self._find(lines, tag)
        if index >= 0:
            return lines, index
        pa = self._need_pa(alias, line_offset, "D fill")
        self._make_room(lines, geometry.ways, True, trace)
        lines.append((tag, pa, self._below(pa), False))
        return lines, len(lines) - 1

    # -- program accesses ------------------------------------------------------------------------

    def map(self, alias: str, page: str) -> None:
        self._check_range(alias, 0, 0)
        if page not in self.pfn:
            raise ScenarioError(f"unknown physical page {page!r}")
        self.mapping[alias] = page

    def unmap(self, alias: str) -> None:
        if alias not in self.mapping:
            raise ScenarioError(f"unmap of alias {alias!r}, which is not mapped")
        del self.mapping[alias]

    def write(self, alias: str, offset: int, size: int, version: int, trace: list[str] | None) -> None:
        self._check_range(alias, offset, size)
        geometry = self.config.d
        notes = []
        for line_offset, start, n in self.chunks(offset, size):
            pa = self._need_pa(alias, line_offset, "write")
            ghost = list(self.latest.get(pa, self._zero()))
            ghost[start:start + n] = [version] * n
            self.latest[pa] = tuple(ghost)
            if not self.cached:
                below = list(self.memory.get(pa, self._zero()))
                below[start:start + n] = [version] * n
                self.memory[pa] = tuple(below)
                notes.append("no cache: memory updated")
                continue
            set_index, tag = self._key(geometry, alias, line_offset)  # type: ignore[misc]
            lines = self.dsets[set_index]
            index = self._find(lines, tag)
            name = self._tag_name(geometry, tag)
            if index < 0 and geometry.write_back and geometry.write_allocate:
                lines, index = self._fill_d(alias, line_offset, trace)
                name += " allocated"
            if index >= 0:
                line_tag, line_pa, data, dirty = lines[index]
                updated = list(data)
                updated[start:start + n] = [version] * n
                if geometry.write_back:
                    lines[index] = (line_tag, line_pa, tuple(updated), True)
                    state = "dirty" if line_pa == pa else f"dirty, holds page {line_pa[0]}"
                    notes.append(f"D line {name} {state}")
                    continue
                lines[index] = (line_tag, line_pa, tuple(updated), False)
                notes.append(f"D line {name} updated")
            below = list(self._below(pa))
            below[start:start + n] = [version] * n
            where = self._store_below(pa, tuple(below))
            notes.append(f"{'write-through' if index >= 0 else 'D miss, no write-allocate'}: "
                         f"{where} updated")
        if trace is not None:
            trace.append(f"write {version_label(version, self.labels)} through {alias}+{offset:#x} "
                         f"({'; '.join(notes)})")

    def expected(self, alias: str, offset: int, size: int) -> Data:
        """What the program last wrote to the bytes alias+offset maps to (the ghost state)."""
        out: list[int] = []
        for line_offset, start, n in self.chunks(offset, size):
            pa = self._need_pa(alias, line_offset, "read")
            out.extend(self.latest.get(pa, self._zero())[start:start + n])
        return tuple(out)

    def read(self, alias: str, offset: int, size: int, trace: list[str] | None) -> tuple[Data, str]:
        """A D-side load: hit, or fill (read-allocate) from the outer level or memory."""
        self._check_range(alias, offset, size)
        out: list[int] = []
        sources = []
        for line_offset, start, n in self.chunks(offset, size):
            pa = self._need_pa(alias, line_offset, "read")
            if not self.cached:
                out.extend(self.memory.get(pa, self._zero())[start:start + n])
                sources.append("no cache: memory")
                continue
            set_index, tag = self._key(self.config.d, alias, line_offset)  # type: ignore[misc]
            hit = self._find(self.dsets[set_index], tag) >= 0
            lines, index = self._fill_d(alias, line_offset, trace)
            out.extend(lines[index][2][start:start + n])
            name = self._tag_name(self.config.d, tag)
            sources.append(f"D hit {name}" if hit else f"D miss, {name} filled from {self._level(lines[index][1])}")
        return tuple(out), "; ".join(sources)

    def fetch(self, alias: str, offset: int, size: int, trace: list[str] | None) -> tuple[Data, str]:
        """An instruction fetch: I hit, or fill from the outer level or memory (never from L1 D).
        On a unified cache it is a load (the same lines); without a cache it reads memory."""
        if self.unified or not self.cached:
            data, source = self.read(alias, offset, size, trace)
            return data, ("unified " + source if self.unified else source)
        self._check_range(alias, offset, size)
        geometry = self.config.i
        out: list[int] = []
        sources = []
        for line_offset, start, n in self.chunks(offset, size):
            pa = self._need_pa(alias, line_offset, "fetch")
            set_index, tag = self._key(geometry, alias, line_offset)  # type: ignore[misc]
            lines = self.isets[set_index]
            index = self._find(lines, tag)
            name = self._tag_name(geometry, tag)
            if index < 0:
                level = self._level(pa)
                self._make_room(lines, geometry.ways, False, trace)
                lines.append((tag, pa, self._below(pa)))
                index = len(lines) - 1
                sources.append(f"I miss, filled from {level}")
            else:
                sources.append(f"I hit {name}")
            out.extend(lines[index][2][start:start + n])
        return tuple(out), "; ".join(sources)

    def external_read(self, alias: str, offset: int, size: int) -> tuple[Data, str]:
        """A point-of-coherency consumer (MMU off, another bus master): memory only."""
        self._check_range(alias, offset, size)
        out: list[int] = []
        for line_offset, start, n in self.chunks(offset, size):
            pa = self._need_pa(alias, line_offset, "external read")
            out.extend(self.memory.get(pa, self._zero())[start:start + n])
        return tuple(out), "memory (PoC)"

    def _level(self, pa: PALine) -> str:
        return "outer level" if pa in self.outer else "memory"

    # -- maintenance -----------------------------------------------------------------------------

    def maintain(self, op: str, alias: str | None, offset: int, length: int,
                 trace: list[str] | None) -> bool:
        """Apply one vocabulary operation; by-MVA forms over every line of [offset, offset+length)
        of `alias`. Returns False when the operation is unknown (it then does nothing)."""
        if op in NO_DATA_OPS:
            if trace is not None:
                trace.append(op)
            return True
        if not self.cached and (op in WHOLE_OPS or op in LINE_OPS):
            if trace is not None:
                trace.append(f"{op} (no cache: nothing to do)")
            return True
        if op in WHOLE_OPS:
            side, effect = WHOLE_OPS[op]
            result = self._whole(side, effect)
            if trace is not None:
                trace.append(f"{op} ({result})")
            return True
        if op in LINE_OPS and alias is not None:
            side, effect = LINE_OPS[op]
            geometry = self.config.d if side == "d" else self.config.i
            self._check_range(alias, offset, length)
            parts = []
            offsets = self.line_offsets(offset, length, geometry.line_size)
            long = len(offsets) > _SHOWN_LINES
            # A long range (a page is 128 lines) visits only the lines something is held for: at
            # any other offset the operation finds no line and changes nothing
            visited = self._held_offsets(side, alias, offsets) if long else offsets
            for line_offset in visited:
                result = self._by_mva(side, effect, alias, line_offset)
                if result != "no line" or not long:
                    parts.append(f"{op} {alias}+{line_offset:#x} ({result})")
            quiet = len(offsets) - len(parts)
            if long and quiet:  # the lines that held nothing, as one count
                which = "any of its" if quiet == len(offsets) else "the other"
                parts.append(f"{op} {alias}+{offsets[0]:#x}..+{offsets[-1]:#x}: no line at {which} {quiet} lines")
            if trace is not None:
                trace.append(", ".join(parts) if parts else f"{op} (empty range)")
            return True
        if trace is not None:
            why = "no address range" if op in LINE_OPS else "not modelled"
            trace.append(f"{op}: {why}, treated as doing nothing")
        return False

    def _held_offsets(self, side: str, alias: str, offsets: list[int]) -> list[int]:
        """Those of `offsets` (line offsets of `alias`) at which a by-MVA operation on `side` can find
        anything: a line of that cache whose tag is this alias's (VIVT) or this alias's page's
        (PIPT, VIPT), or an outer-level copy of a line of that page; in ascending order."""
        if side == "i" and self.unified:
            return offsets  # "no separate I line" at every one
        geometry = self.config.d if side == "d" else self.config.i
        size, line = self.config.page_size, geometry.line_size
        page = self.mapping.get(alias)
        held: set[int] = set()
        base = self.va[alias]
        for lines in self.dsets if side == "d" else self.isets:
            for entry in lines:
                tag = entry[0]
                if geometry.indexing == "VIVT":
                    held.add(tag * line - base)  # type: ignore[operator]
                else:
                    pa = tag if geometry.indexing == "PIPT" else tag[1]  # type: ignore[index]
                    if pa[0] == page:
                        held.add(pa[1] * line)
        held.update(index * line for (outer_page, index) in self.outer if outer_page == page)
        wanted = set(offsets)
        return sorted(o for o in held if o in wanted and 0 <= o < size)

    def _by_mva(self, side: str, effect: str, alias: str, line_offset: int) -> str:
        if side == "i" and self.unified:
            return "unified cache: no separate I line"
        geometry = self.config.d if side == "d" else self.config.i
        key = self._key(geometry, alias, line_offset)
        if key is None:
            return "alias unmapped, no translation: no effect"
        set_index, tag = key
        lines = (self.dsets if side == "d" else self.isets)[set_index]
        index = self._find(lines, tag)
        # The physical line an MVA op reaches below L1 (cleans to PoC also clean the outer copy).
        pa = lines[index][1] if index >= 0 else self._pa(alias, line_offset)
        if side == "i":
            if index < 0:
                return "no line"
            del lines[index]
            return "I line dropped"
        if index < 0:
            if effect in ("clean", "clean+invalidate") and pa is not None and pa in self.outer:
                self._to_poc(pa, None)
                return "no L1 line; outer copy written to memory"
            if effect == "invalidate" and pa is not None and pa in self.outer:
                del self.outer[pa]
                return "no L1 line; outer copy discarded"
            return "no line"
        tag, line_pa, data, dirty = lines[index]
        notes = []
        if effect == "clean-pou":
            if dirty:
                where = self._store_below(line_pa, data)
                lines[index] = (tag, line_pa, data, False)
                return f"dirty line written to {where} (PoU), stays valid"
            return "clean line, stays valid"
        if effect in ("clean", "clean+invalidate"):
            had_outer = line_pa in self.outer
            self._to_poc(line_pa, data if dirty else None)
            if dirty:
                notes.append("dirty line written back to memory")
            elif had_outer:
                notes.append("outer copy written to memory")
            else:
                notes.append("line clean")
        if effect == "clean":
            lines[index] = (tag, line_pa, data, False)
            notes.append("stays valid")
        else:
            del lines[index]
            if effect == "invalidate":
                self.outer.pop(line_pa, None)
                notes.append("dirty data discarded" if dirty else "line dropped")
            else:
                notes.append("dropped")
        return ", ".join(notes)

    def _whole(self, side: str, effect: str) -> str:
        if side == "i" and self.unified:
            return "unified cache: no separate I lines"
        if side == "i":
            count = sum(len(s) for s in self.isets)
            self.isets = [[] for _ in self.isets]
            return f"{count} I lines dropped"
        to_pou = effect.endswith("-pou")
        effect = effect.removesuffix("-pou")
        written = dropped = 0
        for lines in self.dsets:
            kept = []
            for tag, pa, data, dirty in lines:
                if effect in ("clean", "clean+invalidate") and dirty:
                    if to_pou:
                        self._store_below(pa, data)
                    else:
                        self._to_poc(pa, data)
                    written += 1
                if effect == "clean":
                    kept.append((tag, pa, data, False))
                else:
                    dropped += 1
            lines[:] = kept
        if to_pou:
            return f"{written} written to the point of unification, {dropped} dropped; the outer level keeps its lines"
        if effect in ("clean", "clean+invalidate"):
            for pa in sorted(self.outer):
                self._to_poc(pa, None)
                written += 1
        else:
            self.outer.clear()
        return f"{written} written back, {dropped} dropped"

    # -- the environment -------------------------------------------------------------------------

    def env_actions(self, lines_of_interest: Iterable[tuple[str, int]],
                    executable: Iterable[str]) -> list[tuple]:
        """What the environment may do now: evict any L1 line or outer line; read (allocating a D
        line) through any mapped alias, or prefetch through any mapped executable alias, at a
        (page, line offset) the scenario touches. Actions that would change nothing are left out."""
        actions: list[tuple] = []
        if not self.cached:
            return actions
        for set_index, lines in enumerate(self.dsets):
            for line in lines:
                actions.append(("evict-d", set_index, line[0]))
        for set_index, lines in enumerate(self.isets):
            for line in lines:
                actions.append(("evict-i", set_index, line[0]))
        for pa in sorted(self.outer):
            actions.append(("evict-outer", pa))
        interesting = sorted(set(lines_of_interest))
        executable = set(executable)
        for alias, page in sorted(self.mapping.items()):
            for want_page, line_offset in interesting:
                if want_page != page:
                    continue
                set_index, tag = self._key(self.config.d, alias, line_offset)  # type: ignore[misc]
                if self._find(self.dsets[set_index], tag) < 0:
                    actions.append(("read", alias, line_offset))
                if alias in executable and not self.unified:  # unified: the read above is the prefetch
                    i_offset = line_offset - line_offset % self.config.i.line_size
                    set_index, tag = self._key(self.config.i, alias, i_offset)  # type: ignore[misc]
                    if self._find(self.isets[set_index], tag) < 0:
                        actions.append(("prefetch", alias, i_offset))
        return actions

    def env_apply(self, action: tuple, trace: list[str] | None) -> None:
        kind = action[0]
        if kind in ("evict-d", "evict-i"):
            _, set_index, tag = action
            is_d = kind == "evict-d"
            lines = (self.dsets if is_d else self.isets)[set_index]
            line = lines.pop(self._find(lines, tag))
            if is_d and line[3]:
                where = self._store_below(line[1], line[2])
                what = f"evict dirty D line {self._tag_name(self.config.d, tag)} (written back to {where})"
            elif is_d:
                what = f"evict clean D line {self._tag_name(self.config.d, tag)}"
            else:
                what = f"evict I line {self._tag_name(self.config.i, tag)}"
        elif kind == "evict-outer":
            pa = action[1]
            self._to_poc(pa, None)
            what = f"outer level writes page {pa[0]}+{pa[1] * self.config.d.line_size:#x} back to memory"
        elif kind == "read":
            _, alias, line_offset = action
            inner: list[str] = []
            lines, index = self._fill_d(alias, line_offset, inner)
            label = data_label(lines[index][2], self.labels)
            what = f"read through {alias}+{line_offset:#x} allocates a D line ({label})"
            what = " ".join([what, *inner])
        elif kind == "prefetch":
            _, alias, line_offset = action
            inner = []
            self.fetch(alias, line_offset, 4, inner)
            set_index, tag = self._key(self.config.i, alias, line_offset)  # type: ignore[misc]
            lines = self.isets[set_index]
            label = data_label(lines[self._find(lines, tag)][2], self.labels)
            what = f"prefetch through {alias}+{line_offset:#x} fills an I line ({label})"
            what = " ".join([what, *inner])
        else:
            raise ValueError(f"unknown environment action {action!r}")
        if trace is not None:
            trace.append("env: " + what)
