"""A kernel tree's own settings: `.armalias.toml` at the tree root.

```toml
select = ["AA001", "AA003"]          # report only these codes (default: every rule)
ignore = ["AA002"]                   # never report these
baseline = "scripts/armalias-baseline.json"   # fingerprints not reported (relative to the tree root)
fail-on = "error"                    # note | warning | error

# The kernel vocabulary (rules/vocabulary.toml) extended with this tree's own idioms, written in the
# same shape as there.
[[alias_source]]                     # calls that return a virtual alias of what argument `origin` maps
names = ["my_text_map"]
kind = "fixmap"
origin = 0

[[exec_entry]]                       # functions whose parameter `param` holds the address code runs at
function = "my_patch_insn"
param = "addr"
```

Command-line flags win over the file: `--select`/`--ignore` replace its lists, `--baseline` its
baseline, `--fail-on` its threshold.  Entries extend the vocabulary; a name already there is
overridden by the tree's entry.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace

from armalias.errors import InputError
from armalias.findings import SEVERITIES
from armalias.rules import Vocabulary
from armalias.source.text import Unreadable
from armalias.source.tree import TreeSource

CONFIG_NAME = ".armalias.toml"
ALIAS_KINDS = ("fixmap", "vectors", "lowmem", "kmap", "vmalloc", "sram", "phys", "exec")
_KEYS = {"select", "ignore", "baseline", "fail-on", "alias_source", "exec_entry"}
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] | None = None  # None: not set
    ignore: tuple[str, ...] = ()
    baseline: str | None = None  # relative to the tree root
    fail_on: str | None = None
    alias_sources: dict[str, tuple[str, int]] = field(default_factory=dict)  # as Vocabulary.alias_sources
    exec_entries: dict[str, str] = field(default_factory=dict)  # as Vocabulary.exec_entries
    where: str = ""  # the file it was read from, for messages

    @property
    def extends_vocabulary(self) -> bool:
        return bool(self.alias_sources or self.exec_entries)


def parse_config(data: bytes, where: str = CONFIG_NAME) -> Config:
    """The settings in a .armalias.toml; InputError naming the file and the key for anything wrong
    (an unknown key is an error, so a typo never silently does nothing)."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InputError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")

    def codes(key: str) -> tuple[str, ...] | None:
        if key not in raw:
            return None
        value = raw[key]
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise InputError(f"{where}: {key} must be a list of rule codes")
        return tuple(c.strip().upper() for c in value)

    baseline = raw.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise InputError(f"{where}: baseline must be a path")
    fail_on = raw.get("fail-on")
    if fail_on is not None and fail_on not in SEVERITIES:
        raise InputError(f"{where}: fail-on must be one of {', '.join(SEVERITIES)}")
    sources: dict[str, tuple[str, int]] = {}
    for k, entry in enumerate(_tables(raw, "alias_source", where)):
        names, kind, origin = entry.get("names"), entry.get("kind"), entry.get("origin", -1)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and _IDENT.match(n) for n in names):
            raise InputError(f"{where}: alias_source {k + 1}: names must be a list of function names")
        if kind not in ALIAS_KINDS:
            raise InputError(f"{where}: alias_source {k + 1}: kind must be one of {', '.join(ALIAS_KINDS)}")
        if not isinstance(origin, int) or isinstance(origin, bool) or origin < -1:
            raise InputError(f"{where}: alias_source {k + 1}: origin must be an argument index (or -1)")
        extra = set(entry) - {"names", "kind", "origin"}
        if extra:
            raise InputError(f"{where}: alias_source {k + 1}: unknown key {sorted(extra)[0]!r}")
        sources.update({n: (kind, origin) for n in names})
    entries: dict[str, str] = {}
    for k, entry in enumerate(_tables(raw, "exec_entry", where)):
        fn, param = entry.get("function"), entry.get("param", "")
        if not isinstance(fn, str) or not _IDENT.match(fn):
            raise InputError(f"{where}: exec_entry {k + 1}: function must be a function name")
        if not isinstance(param, str) or (param and not _IDENT.match(param)):
            raise InputError(f"{where}: exec_entry {k + 1}: param must be a parameter name")
        extra = set(entry) - {"function", "param"}
        if extra:
            raise InputError(f"{where}: exec_entry {k + 1}: unknown key {sorted(extra)[0]!r}")
        entries[fn] = param
    return Config(codes("select"), codes("ignore") or (), baseline, fail_on, sources, entries, where)


def _tables(raw: dict, key: str, where: str) -> list[dict]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise InputError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def merge_vocabulary(vocab: Vocabulary, config: Config) -> Vocabulary:
    """rules/vocabulary.toml's vocabulary with the tree's alias sources and execution entry points."""
    if not config.extends_vocabulary:
        return vocab
    return replace(vocab, alias_sources={**vocab.alias_sources, **config.alias_sources},
                   exec_entries={**vocab.exec_entries, **config.exec_entries})


def parse_codes(text: str | None) -> tuple[str, ...] | None:
    """A --select/--ignore value: comma- or space-separated codes."""
    if text is None:
        return None
    return tuple(c.upper() for c in re.split(r"[\s,]+", text.strip()) if c)


def reported_codes(select: tuple[str, ...] | None, ignore: tuple[str, ...], known: set[str] | frozenset[str]
                   ) -> frozenset[str] | None:
    """The codes to report (None: every rule); an unknown code is an input error."""
    for code in (select or ()) + ignore:
        if code not in known:
            raise InputError(f"unknown rule code {code!r} (known: {', '.join(sorted(known))})")
    if select is None and not ignore:
        return None
    return frozenset(select if select is not None else known) - frozenset(ignore)


@dataclass(frozen=True)
class Settings:
    """What a check runs with after the file and the command line are merged (flags win)."""

    codes: frozenset[str] | None
    baseline: str | None
    fail_on: str
    config: Config


def settings(config: Config, known_codes: set[str] | frozenset[str], select: str | None = None,
             ignore: str | None = None, baseline: str | None = None, fail_on: str | None = None) -> Settings:
    sel = parse_codes(select)
    ign = parse_codes(ignore)
    codes = reported_codes(sel if sel is not None else config.select,
                           ign if ign is not None else config.ignore, known_codes)
    return Settings(codes, baseline if baseline is not None else config.baseline,
                    fail_on or config.fail_on or "warning", config)


def load_config(source: TreeSource) -> Config:
    """The .armalias.toml at the root of a side of a change (the head: a change to the settings
    applies to both sides it compares); an empty Config when there is none."""
    if not source.is_file(CONFIG_NAME):
        return Config()
    try:
        data = source.read(CONFIG_NAME)
    except Unreadable as exc:
        raise InputError(f"{CONFIG_NAME}: {exc}") from None
    return parse_config(data, CONFIG_NAME)
