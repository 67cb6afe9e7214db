"""Per-file extraction results cached by content, shared by scan and check.

Key: the extractor key (extractor version + neutralize data), the file's relative path and the sha256
of its bytes.  Entries are plain data, never pickle (a cache entry is data, never code): JSON, or for
the per-file facts and bodies, the remembered states and the prefilter's memos, marshal's encoding of
dicts, lists, tuples, strings and numbers behind a digest of it (MarshalEntries).  Each is written to a temporary file and renamed into place, so concurrent
runs never see half an entry.  An entry that fails to load or does not match its key is deleted and
recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sys
from dataclasses import fields
from functools import lru_cache, partial
from pathlib import Path

from armalias.source.files import read_regular
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


_REFUSED: set[str] = set()  # cache roots refused, said once per process


def trusted_cache(facts_dir: Path) -> bool:
    """Whether the cache root (the parent of `facts_dir`, which holds every cache and the state) may be
    used: refused when it is another user's or others can write it (anyone who can write it could
    forge a remembered result)."""
    root = facts_dir.parent
    try:
        st = os.stat(root)
    except OSError:
        return True  # not there yet: the first write makes it, this user's alone (_make_private)
    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    if owner_ok and not st.st_mode & 0o022:
        return True
    if str(root) not in _REFUSED:
        _REFUSED.add(str(root))
        why = "belongs to another user" if not owner_ok else "is writable by other users"
        print(f"armalias: note: the cache directory {root} {why}; running without a cache", file=sys.stderr)
    return False


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


_NAMED = ("name", "callee", "caller", "struct", "variable", "member")  # fields holding a name


def _row_maker(cls):
    """Object -> row for one class: its fields in order (a named tuple's own, or
    facts.positional_pickle's), the names interned.  Marshal writes an interned string as such and
    every later use of one string object as a reference to the first, so an entry holds each name
    and the file's path once, and loading gives back one shared, interned string for each."""
    names = _names(cls)
    interned = [i for i, n in enumerate(names) if n in _NAMED or n == "file"]
    intern = sys.intern

    def row(obj) -> tuple:
        out = list(obj) if isinstance(obj, tuple) else list(obj.__reduce__()[1])
        for i in interned:
            out[i] = intern(out[i])
        return tuple(out)

    return row


_ROW_MAKERS = tuple((name, _row_maker(cls)) for name, cls in _ROWS)


def facts_to_rows(facts: FileFacts) -> dict:
    """Rows of positional values (field order of each class), in tuples as marshal keeps them."""
    out = {"file": sys.intern(facts.file), "digest": facts.digest, "includes": tuple(facts.includes),
           "error_functions": facts.error_functions, "has_error": facts.has_error, "notes": tuple(facts.notes),
           "error_lines": tuple(tuple(x) for x in facts.error_lines)}
    for name, row in _ROW_MAKERS:
        out[name] = tuple(map(row, getattr(facts, name)))
    out["bodies"] = _body_rows(facts.bodies)
    return out


def _body_rows(bodies) -> tuple:
    return tuple((b.name, b.line, tuple(b.params),
                  tuple((e.kind, e.line, e.column, e.target, e.expr, tuple(e.args),
                         tuple((g.cond, g.holds, g.exit) for g in e.guards), e.width) for e in b.events))
                 for b in bodies)


def _bodies_from_rows(rows: tuple, rel: str) -> list:
    from armalias.source.cflow import Event, FunctionBody, Guard

    return [FunctionBody(n, rel, line, params,
                         tuple(Event(k, el, ec, t, x, a, tuple(Guard(c, h, x) for c, h, x in g), w)
                               for k, el, ec, t, x, a, g, w in events))
            for n, line, params, events in rows]


def _loader(cls):
    """Row -> object for one class: a named tuple (Call) made from the row as it is, in C."""
    if issubclass(cls, tuple):
        return partial(tuple.__new__, cls)
    return lambda row: cls(*row)


_LOADERS = tuple((name, _loader(cls)) for name, cls in _ROWS)


def facts_from_rows(raw: dict) -> FileFacts:
    parts = {name: tuple(map(load, raw[name])) for name, load in _LOADERS}
    return FileFacts(file=raw["file"], digest=raw["digest"], includes=raw["includes"],
                     error_functions=raw["error_functions"], has_error=raw["has_error"], notes=raw["notes"],
                     error_lines=raw["error_lines"],
                     bodies=tuple(_bodies_from_rows(raw["bodies"], raw["file"])) if raw["bodies"] else (), **parts)


# An entry larger than this is damaged (the largest real one, a whole tree's state, is far below it).
MAX_ENTRY_BYTES = 256 * 1024 * 1024


class JsonEntries:
    """JSON entries in a directory, each named by the hash of its key parts and holding that hash:
    written atomically; an entry that does not load or does not match is deleted and read as a miss.
    Every cache of armalias keeps its entries this way (the facts, bodies, states and prefilter memos
    in marshal's encoding: MarshalEntries).  The entries lie in the directory itself, not
    fanned out into subdirectories by their first hex digits: a cold arch/arm scan writes about 200
    entries, and a new subdirectory costs a mkdir and a first file in it, each about what writing an
    entry costs.  Hashed directory indexes (ext4, XFS, btrfs, APFS) keep a lookup in a directory of
    tens of thousands of entries cheap."""

    suffix = "json"

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, parts: tuple[str, ...]) -> tuple[Path, str]:
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
        return self.directory / f"{key}.{self.suffix}", key

    @staticmethod
    def _loads(data: bytes):
        return json.loads(data)

    @staticmethod
    def _dumps(obj: dict) -> bytes:
        # dumps, not dump: json.dump to a file runs the pure-Python encoder, dumps the C one
        return json.dumps(obj, separators=(",", ":")).encode("utf-8")

    def read(self, parts: tuple[str, ...], decode):
        """decode(the entry's object), None when there is none or it is damaged (decode raising
        ValueError, KeyError, TypeError or AttributeError counts as damaged)."""
        path, key = self._path(parts)
        try:
            raw = self._loads(read_regular(path, MAX_ENTRY_BYTES)[0])
            if raw.get("key") != key:
                raise ValueError("key mismatch")
            return decode(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError):
            try:
                path.unlink()
            except OSError:
                pass
            return None

    def write(self, parts: tuple[str, ...], data: dict) -> bool:
        return write_atomic(*self.encoded(parts, data))

    def touch(self, parts: tuple[str, ...]) -> None:
        """Mark the entry as used now (its modification time), when it is there."""
        try:
            os.utime(self._path(parts)[0])
        except OSError:
            pass

    def encoded(self, parts: tuple[str, ...], data: dict) -> tuple[Path, bytes]:
        """Where the entry goes and its bytes (write_atomic writes them)."""
        path, key = self._path(parts)
        return path, self._dumps({"key": key, **data})


_DIGEST = 16  # bytes of blake2b in front of a marshal entry


class MarshalEntries(JsonEntries):
    """Entries in marshal's encoding of plain data (dicts, lists, tuples, strings, numbers; a writer
    never gives it anything else), behind a blake2b digest of the encoding that is checked before it
    is decoded: a damaged entry (cut short, overwritten, bytes flipped) is discarded unread, since
    marshal does not promise to survive malformed input.  Marshal keeps tuples, interned names and
    shared strings as they were (_row_maker): the rows come back as they are built, where JSON's
    lists would have to become tuples and its names be interned one by one, for every facts entry
    of a whole-tree check and every file stamp (61,000) of a whole-tree state.  Python's marshal
    format may change between versions: the format version is part of every entry's key, and so is
    the code of this file (_entry_format)."""

    suffix = "marshal"

    def _path(self, parts: tuple[str, ...]) -> tuple[Path, str]:
        return super()._path((*parts, _entry_format()))

    @staticmethod
    def _loads(data: bytes):
        body = memoryview(data)[_DIGEST:]
        if len(data) <= _DIGEST or hashlib.blake2b(body, digest_size=_DIGEST).digest() != data[:_DIGEST]:
            raise ValueError("damaged entry")
        raw = marshal.loads(body)
        if type(raw) is not dict:
            raise ValueError("not an entry")
        return raw

    @staticmethod
    def _dumps(obj: dict) -> bytes:
        body = marshal.dumps(obj, marshal.version)
        return hashlib.blake2b(body, digest_size=_DIGEST).digest() + body


@lru_cache(maxsize=None)
def _entry_format() -> str:
    """What, besides the entry's own key parts, decides how a marshal entry reads: this file's code
    and marshal's format version."""
    return f"{code_digest('cache.py')}-{marshal.version}"


class FactsCache(MarshalEntries):
    def __init__(self, directory: Path, extractor_key: str):
        super().__init__(directory)
        self.extractor_key = extractor_key

    def get(self, rel: str, digest: str) -> FileFacts | None:
        def decode(raw: dict) -> FileFacts:
            facts = facts_from_rows(raw["facts"])
            if facts.file != rel or facts.digest != digest:
                raise ValueError("entry for another file")
            return facts

        return self.read((self.extractor_key, rel, digest), decode)

    def put(self, facts: FileFacts) -> None:
        write_atomic(*self.entry(facts))

    def entry(self, facts: FileFacts) -> tuple[Path, bytes]:
        return self.encoded((self.extractor_key, facts.file, facts.digest), {"facts": facts_to_rows(facts)})


_MADE: set[str] = set()  # directories this process made or found: one mkdir each, not one per entry
_TEMP = iter(range(1 << 62))
_RUN = os.urandom(6).hex()  # with the process id: no two writers' temporary files share a name,
# even in two PID namespaces over one cache directory


def _make_private(directory: str) -> None:
    """Make a directory and the missing ones above it, each readable and writable by this user only."""
    missing = []
    d = os.path.abspath(directory)
    while not os.path.isdir(d):
        missing.append(d)
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass


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
            _make_private(parent)
            _MADE.add(parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the directory was removed since this process made it
            _make_private(parent)
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


class BodiesCache(MarshalEntries):
    """The statement events of some functions of a file (armalias.source.cflow.function_bodies), by
    the file's content and the names asked for, next to the facts: a warm scan does not parse a file
    again for its function bodies.  Same rules as FactsCache: marshal, atomic, a bad entry discarded."""

    def __init__(self, directory: Path, key: str):
        super().__init__(directory.parent / "bodies")  # beside the facts: each directory holds one kind
        self.key = key

    def get(self, rel: str, digest: str, names: list[str]):
        return self.read((self.key, rel, digest, ",".join(names)), lambda raw: _bodies_from_rows(raw["bodies"], rel))

    def put(self, rel: str, digest: str, names: list[str], bodies) -> None:
        self.write((self.key, rel, digest, ",".join(names)), {"bodies": _body_rows(bodies)})
