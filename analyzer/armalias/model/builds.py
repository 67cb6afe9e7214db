"""Which cache implementations a finding's code is built for: the `#ifdef CONFIG_...` blocks around it
(armalias.source.ifdefs), the Makefile line that builds its file, and Kconfig (what each CPU config
selects, what an option depends on).  A finding is replayed only on the implementations of CPU
configs that can build it: the Spectre-BHB vectors code, under CONFIG_HARDEN_BRANCH_HISTORY (which
needs CPU_SPECTRE, which only CPU_V7 selects), never runs on a VIVT cache.

One CPU per kernel is assumed (code under an option runs on the CPU that made the option possible).
What cannot be read or decided leaves every implementation in.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Callable

from armalias.cacheimpl import CacheImpl
from armalias.source.ifdefs import BuiltUnder, built_under
from armalias.source.kconfig import Kconfig, read_config_lines, read_kconfig, read_makefile_objects

# Kconfig and defconfig texts (a digest) -> each defconfig's configs (Builds.defconfigs), per process
_DEFCONFIG_TABLES: dict[str, dict[str, frozenset[str]]] = {}

def lister(source) -> Callable[[str], list[str]]:
    """The names in a directory of a tree source that has it on disk (a directory, a patch over one);
    OSError otherwise."""
    def names(rel: str) -> list[str]:
        local = source.local_path(rel)
        if local is None:
            raise OSError(f"{rel}: not on disk")
        return os.listdir(local)
    return names


# read before any directory's own: where the CPU configs and the options they select live
KCONFIGS = ("arch/arm/mm/Kconfig", "arch/arm/Kconfig")


class Builds:
    def __init__(self, read: Callable[[str], bytes], listdir: Callable[[str], list[str]] | None = None,
                 config: dict[str, bool] | None = None):
        """`read`: a tree's file by its path (raising OSError or an Unreadable when it cannot);
        `listdir`: the names in one of its directories (None: defconfigs are not read); `config`: a
        kernel .config's settings (--config), which keep only the implementations it builds."""
        self.read = read
        self.listdir = listdir
        self.config = config
        self._arch_kconfig: Kconfig | None = None
        self._enabled: frozenset[str] | None = None  # what `config` sets, through arch/arm's Kconfig
        self._kconfig: dict[str, Kconfig] = {}
        self._text: dict[str, str | None] = {}
        self._defconfigs: dict[str, frozenset[str]] | None = None
        self._arch_files: list[str] = []  # the Kconfig files arch_kconfig read

    def defconfigs(self, cpus: frozenset[str]) -> dict[str, frozenset[str]]:
        """arch/arm/configs/*_defconfig -> the CPU configs (of `cpus`) each builds: its settings and
        what they select through arch/arm's Kconfig files (Kconfig.enabled_by)."""
        if self._defconfigs is None:
            self._defconfigs = {}
            try:
                names = sorted(n for n in (self.listdir("arch/arm/configs") if self.listdir else ())
                               if n.endswith("_defconfig"))
            except OSError:
                names = []
            if names:
                texts = {name: text for name in names if (text := self._file(f"arch/arm/configs/{name}")) is not None}
                key = self._kconfig_digest(texts)
                if key not in _DEFCONFIG_TABLES:  # a check's base and head share arch/arm's Kconfig
                    k = self.arch_kconfig()
                    _DEFCONFIG_TABLES[key] = {name: k.enabled_by(read_config_lines(text))
                                              for name, text in texts.items()}
                self._defconfigs = _DEFCONFIG_TABLES[key]
        return {name: cpus & on for name, on in self._defconfigs.items() if cpus & on}

    def _kconfig_digest(self, defconfigs: dict[str, str]) -> str:
        """What the defconfig table is read from: arch/arm's Kconfig files and the defconfigs."""
        self.arch_kconfig()
        h = hashlib.sha256()
        for rel in self._arch_files:
            h.update(f"{rel}\0{self._file(rel)}\0".encode())
        for name, text in sorted(defconfigs.items()):
            h.update(f"{name}\0{text}\0".encode())
        return h.hexdigest()

    def _file(self, rel: str) -> str | None:
        if rel not in self._text:
            try:
                self._text[rel] = self.read(rel).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a file the tree lacks or cannot give says nothing
                self._text[rel] = None
        return self._text[rel]

    def arch_kconfig(self) -> Kconfig:
        """arch/arm's Kconfig files, the machines' included (where boards select their CPUs)."""
        if self._arch_kconfig is None:
            k = Kconfig("")
            files = ["arch/arm/Kconfig", "arch/arm/Kconfig.platforms", "arch/arm/mm/Kconfig"]
            try:
                files += sorted(f"arch/arm/{d}/Kconfig" for d in (self.listdir("arch/arm") if self.listdir else ())
                                if d.startswith("mach-"))
            except OSError:
                pass
            for rel in files:
                if (text := self._file(rel)) is not None:
                    k.merge(read_kconfig(text, rel))
            self._arch_kconfig, self._arch_files = k, files
        return self._arch_kconfig

    def configured(self, impls: tuple[CacheImpl, ...]) -> tuple[CacheImpl, ...]:
        """The implementations the --config builds (all when there is none, or when it names no CPU
        config any of them has: nothing is then known)."""
        if not self.config:
            return impls
        if self._enabled is None:
            self._enabled = self.arch_kconfig().enabled_by(self.config)
        on = self._enabled
        kept = tuple(i for i in impls if set(i.configs) & on)
        return kept or impls

    def kconfig(self, directory: str) -> Kconfig:
        if directory not in self._kconfig:
            k = Kconfig("")
            for rel in dict.fromkeys((*KCONFIGS, posixpath.join(directory, "Kconfig"))):  # each file once
                if (text := self._file(rel)) is not None:
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
        impls = self.configured(impls)
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
