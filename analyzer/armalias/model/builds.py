"""Which cache implementations a finding's code is built for: the `#ifdef CONFIG_...` blocks around it
(armalias.source.ifdefs), the Makefile line that builds its file, and Kconfig (what each CPU config
selects, what an option depends on).  A finding is replayed only on the implementations of CPU
configs that can build it: the Spectre-BHB vectors code, under CONFIG_HARDEN_BRANCH_HISTORY (which
needs CPU_SPECTRE, which only CPU_V7 selects), never runs on a VIVT cache.

One CPU per kernel is assumed (code under an option runs on the CPU that made the option possible).
What cannot be read or decided leaves every implementation in.
"""

from __future__ import annotations

import posixpath
from typing import Callable

from armalias.cacheimpl import CacheImpl
from armalias.source.ifdefs import BuiltUnder, built_under
from armalias.source.kconfig import Kconfig, read_kconfig, read_makefile_objects

# read before any directory's own: where the CPU configs and the options they select live
KCONFIGS = ("arch/arm/mm/Kconfig", "arch/arm/Kconfig")


class Builds:
    def __init__(self, read: Callable[[str], bytes]):
        """`read`: a tree's file by its path (raising OSError or an Unreadable when it cannot)."""
        self.read = read
        self._kconfig: dict[str, Kconfig] = {}
        self._text: dict[str, str | None] = {}

    def _file(self, rel: str) -> str | None:
        if rel not in self._text:
            try:
                self._text[rel] = self.read(rel).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a file the tree lacks or cannot give says nothing
                self._text[rel] = None
        return self._text[rel]

    def kconfig(self, directory: str) -> Kconfig:
        if directory not in self._kconfig:
            k = Kconfig("")
            for rel in (*KCONFIGS, posixpath.join(directory, "Kconfig")):
                text = self._file(rel)
                if text is not None and rel not in k.lines.values():
                    k.merge(read_kconfig(text, rel))
            self._kconfig[directory] = k
        return self._kconfig[directory]

    def under(self, file: str, line: int) -> BuiltUnder:
        """The configs the code at file:line is built under: its #if blocks, and the one config of
        the Makefile line that builds the file (obj-$(CONFIG_X) += name.o)."""
        text = self._file(file)
        found = built_under(text.encode(), line) if text is not None else BuiltUnder()
        makefile = self._file(posixpath.join(posixpath.dirname(file), "Makefile"))
        if makefile is not None:
            stem = posixpath.splitext(posixpath.basename(file))[0]
            configs = read_makefile_objects(makefile).get(stem + ".o", ())
            if len(configs) == 1:
                found = BuiltUnder(found.required | {configs[0]}, found.excluded)
        return found

    def implementations(self, file: str, line: int, impls: tuple[CacheImpl, ...]
                        ) -> tuple[tuple[CacheImpl, ...], BuiltUnder]:
        """The implementations the code at file:line can run on, and what it is built under."""
        under = self.under(file, line)
        if not under.required and not under.excluded:
            return impls, under
        k = self.kconfig(posixpath.dirname(file))
        cpus = frozenset(c for i in impls for c in i.configs)

        def builds(cpu: str) -> bool:
            reach = k.closure(cpu) | {cpu}
            return (all(k.possible(cpu, x, cpus) for x in under.required)
                    and not any(x in reach for x in under.excluded))

        kept = tuple(i for i in impls if not i.configs or any(builds(c) for c in i.configs))
        return (kept or impls), under
