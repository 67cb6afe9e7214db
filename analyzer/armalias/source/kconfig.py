"""Small readers of arch/arm/mm/Kconfig and arch/arm/mm/Makefile: what the cache audit needs.

Not a Kconfig implementation (kconfiglib is not a dependency): the audit needs only which ``config``
entries ``select`` which option (``CPU_FEROCEON`` selects ``CPU_CACHE_VIVT``), and which ``CONFIG_``
builds which object (``obj-$(CONFIG_CPU_FEROCEON) += proc-feroceon.o``), to tie a cache implementation
to the CPUs that use it. Config names are kept without the ``CONFIG_`` prefix, as Kconfig writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from armalias.source.files import read_regular
from armalias.source.text import MAX_FILE_BYTES

_CONFIG_RE = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$")
_SELECT_RE = re.compile(r"^\s*select\s+(\w+)(?:\s+if\s+(.+?))?\s*$")
_DEPENDS_RE = re.compile(r"^\s*depends\s+on\s+(.+?)\s*$")
_BLOCK_END_RE = re.compile(r"^\s*(?:menu|endmenu|choice|endchoice|if|endif|source|comment|mainmenu)\b")
_OBJ_RE = re.compile(r"^\s*obj-\$\(CONFIG_(\w+)\)\s*[+:]?=\s*(.*)$")

# Options whose selection tells how a CPU's L1 data cache is indexed and tagged.
CACHE_TYPE_OPTIONS = {"CPU_CACHE_VIVT": "VIVT", "CPU_CACHE_VIPT": "VIPT"}


@dataclass(frozen=True)
class Select:
    target: str
    condition: str = ""  # the `if EXPR` of the select line, if any


@dataclass
class Kconfig:
    """``config`` entries of one Kconfig file and what each selects."""

    path: str
    selects: dict[str, list[Select]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # config -> line of its `config` keyword
    depends: dict[str, list[str]] = field(default_factory=dict)  # config -> its `depends on` expressions
    prompts: set[str] = field(default_factory=set)  # configs a user can set (they have a prompt)
    defaults_y: set[str] = field(default_factory=set)  # configs with an unconditional `default y`

    def merge(self, other: "Kconfig") -> None:
        """Take in another Kconfig file's entries (a config defined in both keeps both's lines)."""
        for name, sels in other.selects.items():
            self.selects.setdefault(name, []).extend(sels)
        for name, deps in other.depends.items():
            self.depends.setdefault(name, []).extend(deps)
        for name, line in other.lines.items():
            self.lines.setdefault(name, line)
        self.prompts |= other.prompts
        self.defaults_y |= other.defaults_y

    def enabled_by(self, options: dict[str, bool]) -> frozenset[str]:
        """The configs a defconfig or .config sets, given its `CONFIG_X=y/m` (True) and `# CONFIG_X is
        not set` (False) lines: those, the unconditional `default y` options it leaves alone whose
        `depends on` symbols are set, and everything they select, transitively.  An approximation of
        Kconfig: conditions of selects and defaults other than these are taken as met."""
        on = {name for name, v in options.items() if v}
        negated = False  # a select `if !X` is decided once nothing more is selected without one
        # a name's selects are walked again only when that walk left a conditional one out (what the
        # others select is in `on` already): a round walks the names whose selects may still grow,
        # not every name, and this runs for every defconfig of the tree
        settled: set[str] = set()
        defaults = [(name, [p for e in self.depends.get(name, ()) for p in _conjuncts(e) if re.fullmatch(r"\w+", p)])
                    for name in sorted(self.defaults_y) if options.get(name) is not False]
        while True:
            grown = set(on)
            for name in on - settled:
                found, open_ = self._selects_of(name, on, negated)
                grown |= found
                if not open_:
                    settled.add(name)
            for name, deps in defaults:
                if name not in grown and all(d in grown for d in deps):
                    grown.add(name)
            if grown == on:
                if negated:
                    return frozenset(on)
                negated = True
            else:
                on, negated = grown, False

    def closure(self, config: str, conditional: bool = True) -> frozenset[str]:
        """What `config` selects, transitively: a select's `if` taken as met, or (`conditional`
        False) only the selects with no `if`."""
        out: set[str] = set()
        todo = [config]
        while todo:
            for sel in self.selects.get(todo.pop(), ()):
                if (conditional or not sel.condition) and sel.target not in out:
                    out.add(sel.target)
                    todo.append(sel.target)
        return frozenset(out)

    def _selects_of(self, config: str, on: set[str], negated: bool) -> tuple[set[str], bool]:
        """What `config` selects, transitively, where the select's `if` holds on the options `on` (a
        condition this reader cannot evaluate is taken as met; one with a negation is left out unless
        `negated`), and whether the walk left a conditional select out (more options set may let it
        in)."""
        from armalias.flow.constants import const_eval

        out: set[str] = set()
        left_out = False
        todo = [config]
        while todo:
            for sel in self.selects.get(todo.pop(), ()):
                if sel.target in out:
                    continue
                if sel.condition and "!" in sel.condition and not negated:
                    left_out = True
                    continue
                if sel.condition:
                    value = const_eval(sel.condition, lambda n: int(n in on or n in out))
                    if value == 0:
                        left_out = True
                        continue
                out.add(sel.target)
                todo.append(sel.target)
        return out, left_out

    def possible(self, cpu: str, option: str, cpus: frozenset[str], seen: frozenset[str] = frozenset()) -> bool:
        """Whether a kernel built for the CPU config `cpu` can have `option` set, counting one CPU per
        kernel (the code under `option` runs on that CPU): it is the CPU or one of its selects; or a
        prompt whose `depends on` symbols are possible; or a hidden option some possible config
        selects.  An option this Kconfig does not define, or a cycle, is taken as possible."""
        if option == cpu or option in self.closure(cpu):
            return True
        if option in cpus:
            return False  # another CPU
        if any(c in cpus and c != cpu for c in self.closure(option, conditional=False)):
            return False  # it brings in another CPU (PXA3xx selects CPU_XSC3)
        if option not in self.selects or option in seen:
            return True
        seen = seen | {option}
        for expr in self.depends.get(option, ()):
            for part in _conjuncts(expr):
                if re.fullmatch(r"\w+", part) and not self.possible(cpu, part, cpus, seen):
                    return False
        if option in self.prompts:
            return True
        return any(self.possible(cpu, s, cpus, seen) for s in self.selecting(option))

    def selecting(self, option: str) -> tuple[str, ...]:
        """Every config that selects ``option`` (sorted)."""
        return tuple(sorted(name for name, sels in self.selects.items() if any(s.target == option for s in sels)))

    def cache_type(self, config: str) -> str | None:
        """``VIVT``/``VIPT`` when ``config`` selects CPU_CACHE_VIVT/CPU_CACHE_VIPT, else None."""
        for sel in self.selects.get(config, ()):
            if sel.target in CACHE_TYPE_OPTIONS:
                return CACHE_TYPE_OPTIONS[sel.target]
        return None

    def no_mmu_reason(self, config: str) -> str:
        """Why ``config`` can only be built without an MMU, or "" when nothing says so.

        A config needs ``!MMU`` when one of its ``depends on`` lines has ``!MMU`` as a top-level
        conjunct (CPU_ARM940T), or when it selects, unconditionally, a config that needs it (CPU_V7M
        selects CPU_THUMBONLY, which depends on !MMU). ``if MMU`` blocks are not tracked.
        """
        return self._no_mmu(config, frozenset())

    def _no_mmu(self, config: str, seen: frozenset[str]) -> str:
        if config in seen:
            return ""
        for expr in self.depends.get(config, ()):
            if "!MMU" in _conjuncts(expr):
                return "depends on !MMU"
        for sel in self.selects.get(config, ()):
            if sel.condition:
                continue
            why = self._no_mmu(sel.target, seen | {config})
            if why:
                return f"selects {sel.target} ({why})"
        return ""


def _conjuncts(expr: str) -> list[str]:
    """Top-level ``&&`` operands of a Kconfig expression, spaces removed, outer parentheses dropped."""
    text = expr.replace(" ", "").replace("\t", "")
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and text.startswith("&&", i):
            parts.append(text[start:i])
            start = i + 2
    parts.append(text[start:])
    return [p for p in parts if p]


def _closing(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    return -1


def read_kconfig(text: str, path: str = "") -> Kconfig:
    """Read ``config NAME`` blocks and their ``select`` lines (help text is skipped)."""
    kconfig = Kconfig(path)
    current: str | None = None
    in_help = False
    help_indent = 0
    pending = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        if in_help:
            stripped = raw.strip()
            indent = len(raw) - len(raw.lstrip())
            if not stripped:
                continue
            if help_indent == 0:
                help_indent = indent
            if indent >= help_indent and indent > 0:
                continue
            in_help = False
        line = pending + raw.split("#", 1)[0]
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        m = _CONFIG_RE.match(line)
        if m:
            current = m.group(1)
            kconfig.selects.setdefault(current, [])
            kconfig.lines.setdefault(current, lineno)
            continue
        if re.match(r"^\s*(?:help|---help---)\s*$", line):
            in_help, help_indent = True, 0
            continue
        if _BLOCK_END_RE.match(line):
            current = None
            continue
        if current and re.match(r'^\s*(?:bool|tristate|prompt|string|int|hex)\s+"', line):
            kconfig.prompts.add(current)
        if current and re.match(r"^\s*(?:default|def_bool)\s+y\s*$", line):
            kconfig.defaults_y.add(current)
        m = _SELECT_RE.match(line)
        if m and current:
            kconfig.selects[current].append(Select(m.group(1), " ".join((m.group(2) or "").split())))
            continue
        m = _DEPENDS_RE.match(line)
        if m and current:
            kconfig.depends.setdefault(current, []).append(" ".join(m.group(1).split()))
    return kconfig


def read_makefile_objects(text: str) -> dict[str, tuple[str, ...]]:
    """``obj-$(CONFIG_X) += a.o b.o`` -> {"a.o": ("X",), "b.o": ("X",)}; an object may have several."""
    objects: dict[str, list[str]] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.split("#", 1)[0]
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        m = _OBJ_RE.match(line)
        if not m:
            continue
        for obj in m.group(2).split():
            configs = objects.setdefault(obj, [])
            if m.group(1) not in configs:
                configs.append(m.group(1))
    return {obj: tuple(configs) for obj, configs in objects.items()}


@dataclass
class MmBuild:
    """What arch/arm/mm's Kconfig and Makefile say, with the problems met reading them."""

    kconfig: Kconfig
    objects: dict[str, tuple[str, ...]]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def configs_of_file(self, rel: str) -> tuple[str, ...]:
        """The CONFIG options (no prefix) that build ``arch/arm/mm/NAME.S``/``.c`` into the kernel."""
        stem = Path(rel).stem
        return self.objects.get(stem + ".o", ())

    def cpus_for(self, option: str) -> tuple[str, ...]:
        """CPU_* options behind ``option``: itself when it is a CPU, or the CPUs selecting it."""
        if option.startswith("CPU_CACHE_") or option not in self.kconfig.selects or not option.startswith("CPU_"):
            selecting = self.kconfig.selecting(option)
            if selecting:
                return selecting
        return (option,)


def read_mm_build(mm_dir: Path) -> MmBuild:
    """Read ``mm_dir/Kconfig`` and ``mm_dir/Makefile``; a missing or unreadable one is a problem, not an error."""
    problems: list[tuple[str, str]] = []

    def text_of(name: str) -> str:
        path = mm_dir / name
        try:
            return read_regular(path, MAX_FILE_BYTES, mm_dir)[0].decode("utf-8")
        except OSError as exc:
            problems.append((name, f"unreadable: {exc.strerror or exc}"))
        except UnicodeDecodeError as exc:
            problems.append((name, f"not valid UTF-8 (byte {exc.start})"))
        return ""

    kconfig = read_kconfig(text_of("Kconfig"), "Kconfig")
    objects = read_makefile_objects(text_of("Makefile"))
    return MmBuild(kconfig, objects, problems)


def read_config_lines(text: str) -> dict[str, bool]:
    """A defconfig's or .config's settings: `CONFIG_X=y` or `=m` -> True, `# CONFIG_X is not set` ->
    False (other values, strings and numbers, are left out)."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        m = re.match(r"^CONFIG_(\w+)=(y|m)\s*$", line)
        if m:
            out[m.group(1)] = True
            continue
        m = re.match(r"^#\s*CONFIG_(\w+) is not set\s*$", line)
        if m:
            out[m.group(1)] = False
    return out
