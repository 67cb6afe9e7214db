"""Per-file extraction results cached by content, shared by scan and check.

Key: the extractor key (extractor version + neutralize data), the file's relative path and the sha256
of its bytes.  Entries are JSON (never pickle: a cache entry is data, never code), written to a
temporary file and renamed into place, so concurrent runs never see half an entry.  An entry that
fails to load or does not match its key is deleted and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from armalias.facts import AsmSymbol, Call, FileFacts, FunctionDef, Initializer, MacroDef


def code_digest(*relative: str) -> str:
    """A hash of armalias's own source files (paths relative to the package): part of a cache key,
    so an edited extractor or reader never serves results computed by the old code."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for rel in relative:
        h.update(rel.encode())
        h.update((package / rel).read_bytes())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """The per-file facts cache.  Every other cache of armalias sits beside it, in the same parent
    directory (bodies, state, prefilter, audit): ARMALIAS_CACHE_DIR, else ~/.cache/armalias."""
    env = os.environ.get("ARMALIAS_CACHE_DIR")
    if env:
        return Path(env) / "facts"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "armalias" / "facts"


_ROWS = (("functions", FunctionDef), ("calls", Call), ("macros", MacroDef), ("initializers", Initializer),
         ("asm_symbols", AsmSymbol))


def _names(cls) -> list[str]:
    """The fields of a facts class in order: a named tuple's (Call), or a dataclass's."""
    return list(cls._fields) if issubclass(cls, tuple) else [f.name for f in fields(cls)]


_FILE_AT = {cls: _names(cls).index("file") for _, cls in _ROWS}  # where a row holds the path


def _rows(objs, file_at: int) -> list[list]:
    """The fields in order (a named tuple's own, or facts.positional_pickle's), the file's path left
    out (0): the entry names it once, and each row repeating it made a quarter of a whole-tree
    scan's entries."""
    out = []
    for obj in objs:
        row = list(obj) if isinstance(obj, tuple) else list(obj.__reduce__()[1])
        row[file_at] = 0
        out.append(row)
    return out


def facts_to_json(facts: FileFacts) -> dict:
    """Rows of positional values (field order of each dataclass): compact and quick to load."""
    out = {"file": facts.file, "digest": facts.digest, "includes": list(facts.includes),
           "error_functions": facts.error_functions, "has_error": facts.has_error, "notes": list(facts.notes),
           "error_lines": [list(x) for x in facts.error_lines]}
    for name, cls in _ROWS:
        out[name] = _rows(getattr(facts, name), _FILE_AT[cls])
    out["bodies"] = _body_rows(facts.bodies)
    return out


def _body_rows(bodies) -> list:
    return [[b.name, b.line, list(b.params),
             [[e.kind, e.line, e.column, e.target, e.expr, list(e.args), [[g.cond, g.holds] for g in e.guards],
               e.width] for e in b.events]] for b in bodies]


def _bodies_from_rows(rows: list, rel: str) -> list:
    from armalias.source.cflow import Event, FunctionBody, Guard

    return [FunctionBody(n, rel, int(line), tuple(params),
                         tuple(Event(k, el, ec, t, x, tuple(a), tuple(Guard(c, bool(h)) for c, h in g), w)
                               for k, el, ec, t, x, a, g, w in events))
            for n, line, params, events in rows]


def _loader(cls):
    """Row -> object for one class: lists back to tuples, the file path shared, names interned (a
    whole-tree scan holds millions of calls: one string per distinct name, not one per call)."""
    names = _names(cls)
    file_at = _FILE_AT[cls]
    interned = [i for i, n in enumerate(names) if n in ("name", "callee", "caller", "struct", "variable", "member")]
    tuples = [i for i, n in enumerate(names) if n in ("params", "args")]
    intern = sys.intern

    make = (lambda row: tuple.__new__(cls, row)) if issubclass(cls, tuple) else (lambda row: cls(*row))

    def load(row: list, file: str):
        row[file_at] = file
        for i in interned:
            row[i] = intern(row[i])
        for i in tuples:
            if row[i] is not None:
                row[i] = tuple(row[i])
        return make(row)

    return load


_LOADERS = tuple((name, _loader(cls)) for name, cls in _ROWS)


def facts_from_dict(raw: dict) -> FileFacts:
    file = sys.intern(raw["file"])
    parts = {name: tuple(load(r, file) for r in raw[name]) for name, load in _LOADERS}
    return FileFacts(file=file, digest=raw["digest"], includes=tuple(raw["includes"]),
                     error_functions=int(raw["error_functions"]), has_error=bool(raw["has_error"]),
                     notes=tuple(raw["notes"]), error_lines=tuple((int(a), int(b)) for a, b in raw["error_lines"]),
                     bodies=tuple(_bodies_from_rows(raw["bodies"], file)) if raw["bodies"] else (), **parts)


class JsonEntries:
    """JSON entries in a directory, each named by the hash of its key parts and holding that hash:
    written atomically; an entry that does not load or does not match is deleted and read as a miss.
    Every cache of armalias keeps its entries this way.  The entries lie in the directory itself, not
    fanned out into subdirectories by their first hex digits: a cold arch/arm scan writes about 200
    entries, and a new subdirectory costs a mkdir and a first file in it that were each as slow as
    writing an entry (0.3-0.8 ms of system time on the shared machine measured).  Flat, that scan took
    0.65 s against 0.74 s (mean of 6 each).  Hashed directory indexes (ext4, XFS, btrfs, APFS) keep a
    lookup in a directory of tens of thousands of entries cheap."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, parts: tuple[str, ...]) -> tuple[Path, str]:
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
        return self.directory / f"{key}.json", key

    def read(self, parts: tuple[str, ...], decode):
        """decode(the entry's JSON object), None when there is none or it is damaged (decode raising
        ValueError, KeyError, TypeError or AttributeError counts as damaged)."""
        path, key = self._path(parts)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("key") != key:
                raise ValueError("key mismatch")
            return decode(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def write(self, parts: tuple[str, ...], data: dict) -> bool:
        return write_atomic(*self.encoded(parts, data))

    def encoded(self, parts: tuple[str, ...], data: dict) -> tuple[Path, bytes]:
        """Where the entry goes and its bytes (write_atomic writes them)."""
        path, key = self._path(parts)
        # dumps, not dump: json.dump to a file runs the pure-Python encoder, dumps the C one
        return path, json.dumps({"key": key, **data}, separators=(",", ":")).encode("utf-8")


class FactsCache(JsonEntries):
    def __init__(self, directory: Path, extractor_key: str):
        super().__init__(directory)
        self.extractor_key = extractor_key

    def get(self, rel: str, digest: str) -> FileFacts | None:
        def decode(raw: dict) -> FileFacts:
            facts = facts_from_dict(raw["facts"])
            if facts.file != rel or facts.digest != digest:
                raise ValueError("entry for another file")
            return facts

        return self.read((self.extractor_key, rel, digest), decode)

    def put(self, facts: FileFacts) -> None:
        write_atomic(*self.entry(facts))

    def entry(self, facts: FileFacts) -> tuple[Path, bytes]:
        return self.encoded((self.extractor_key, facts.file, facts.digest), {"facts": facts_to_json(facts)})


_MADE: set[str] = set()  # directories this process made or found: one mkdir each, not one per entry
_TEMP = iter(range(1 << 62))
_RUN = os.urandom(6).hex()  # with the process id: no two writers' temporary files share a name,
# even in two PID namespaces over one cache directory


def write_atomic(path: Path, text: bytes) -> bool:
    """Bytes (an entry's JSON) to a temporary file renamed into place: a reader sees the old entry or
    the new one.  False when it could not be written (a cache that cannot be written only costs
    time).  The temporary file is named by the process and a count, made with O_EXCL: no two
    writers share one."""
    parent = str(path.parent)
    tmp = os.path.join(parent, f".tmp-{os.getpid()}-{_RUN}-{next(_TEMP)}.json")
    made = False
    try:
        if parent not in _MADE:
            os.makedirs(parent, exist_ok=True)
            _MADE.add(parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the directory was removed since this process made it
            os.makedirs(parent, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        made = True
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        if made:  # never another writer's file
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False
    return True


class BodiesCache(JsonEntries):
    """The statement events of some functions of a file (armalias.source.cflow.function_bodies), by
    the file's content and the names asked for, next to the facts: a warm scan does not parse a file
    again for its function bodies.  Same rules as FactsCache: JSON, atomic, a bad entry discarded."""

    def __init__(self, directory: Path, key: str):
        super().__init__(directory.parent / "bodies")  # beside the facts: each directory holds one kind
        self.key = key

    def get(self, rel: str, digest: str, names: list[str]):
        return self.read((self.key, rel, digest, ",".join(names)), lambda raw: _bodies_from_rows(raw["bodies"], rel))

    def put(self, rel: str, digest: str, names: list[str], bodies) -> None:
        self.write((self.key, rel, digest, ",".join(names)), {"bodies": _body_rows(bodies)})
