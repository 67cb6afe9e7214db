"""The two trees a check compares (a Change): a git range, the index or the working tree against
HEAD, or a patch over a directory.  git is asked read-only plumbing questions only (check/git.py runs
it with none of the repository's configuration), so nothing is written into the user's tree, index
or refs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from armalias.check.git import run_git
from armalias.check.patch import MAX_PATCH_BYTES, apply_patches, parse_patch
from armalias.errors import InputError
from armalias.source.files import read_input, read_regular
from armalias.source.text import MAX_FILE_BYTES
from armalias.source.tree import SOURCE_SUFFIXES, DirectorySource, GitSource, OverlaySource, TreeSource, blob_id


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree
NULL_SHA = "0" * 40
SETTINGS_NAME = ".armalias.toml"  # armalias.config.CONFIG_NAME: untracked, it still counts


def _git(repo: Path, *args: str) -> bytes:
    # GIT_INDEX_FILE is kept (check.git): in a `git commit -a` hook it names the index being committed.
    return run_git(repo, *args).stdout


def repo_toplevel(path: Path) -> Path | None:
    """The work tree top of the git repository holding path, or None (not in a repository)."""
    try:
        res = run_git(path, "rev-parse", "--show-toplevel", check=False)
    except InputError:
        return None
    if res.returncode != 0 or not res.stdout.strip():
        return None
    return Path(res.stdout.decode("utf-8", "surrogateescape").strip())


def resolve_commit(repo: Path, rev: str) -> str:
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}").decode().strip()
    except InputError:
        raise InputError(f"{repo}: unknown revision {rev!r}") from None


def _head_or_empty(repo: Path) -> str:
    """HEAD's commit, or the empty tree in a repository with no commit yet."""
    res = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return res.stdout.decode().strip() if res.returncode == 0 else EMPTY_TREE


@dataclass(frozen=True)
class RawEntry:
    """One line of `git diff-* --raw -z`."""

    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    status: str  # A C D M R T U (the letter)
    old: str
    new: str


def _raw_entries(out: bytes) -> list[RawEntry]:
    fields = out.split(b"\0")
    entries = []
    i = 0
    while i < len(fields) and fields[i]:
        meta = fields[i].decode()
        old_mode, new_mode, old_sha, new_sha, status = meta.lstrip(":").split()
        letter = status[0]
        paths = fields[i + 1:i + (3 if letter in "RC" else 2)]
        i += 3 if letter in "RC" else 2
        names = [p.decode("utf-8", "surrogateescape") for p in paths]
        entries.append(RawEntry(old_mode, new_mode, old_sha, new_sha, letter, names[0], names[-1]))
    return entries


def _read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    res = run_git(repo, "cat-file", "--batch", stdin="".join(s + "\n" for s in shas).encode(), check=False)
    out: dict[str, bytes] = {}
    data = res.stdout
    pos = 0
    for sha in shas:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            raise InputError(f"{repo}: cannot read blob {sha}")
        size = int(header[2])
        out[sha] = data[pos:pos + size]
        pos += size + 1
    return out


_SKIP_MODES = ("120000", "160000")  # symlinks and submodules are not followed


@dataclass
class Change:
    """Two sides to compare and what differs between them."""

    base: TreeSource
    head: TreeSource
    base_label: str  # what was compared: a commit id, "index", "working tree", "PATCH applied to ..."
    head_label: str
    changed: list[str] = field(default_factory=list)  # paths that differ (a renamed file under its new name)
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        for side in (self.base, self.head):
            while isinstance(side, OverlaySource):
                side = side.base
            if isinstance(side, GitSource):
                side.close()


def _strip_prefix(entries: list[RawEntry], prefix: str) -> list[RawEntry]:
    if not prefix:
        return entries
    p = prefix + "/"
    out = []
    for e in entries:
        old = e.old[len(p):] if e.old.startswith(p) else None
        new = e.new[len(p):] if e.new.startswith(p) else None
        if old is None and new is None:
            continue
        if old is None:  # renamed in from outside the tree: a new file here
            out.append(replace(e, status="A", old=new or "", new=new or ""))
        elif new is None:
            out.append(replace(e, status="D", old=old, new=old))
        else:
            out.append(replace(e, old=old, new=new))
    return out


def _treeish(commit: str, prefix: str) -> str:
    return f"{commit}:{prefix}" if prefix else commit


def _pathspec(prefix: str) -> list[str]:
    return ["--", prefix] if prefix else []


def git_range(repo: Path, prefix: str, spec: str) -> Change:
    """BASE..HEAD (BASE...HEAD: from their merge base; BASE alone: BASE..HEAD)."""
    if "..." in spec:
        a, b = spec.split("...", 1)
        b = b or "HEAD"
        a = _git(repo, "merge-base", "--", resolve_commit(repo, a or "HEAD"), resolve_commit(repo, b)).decode().strip()
    elif ".." in spec:
        a, b = spec.split("..", 1)
        a, b = a or "HEAD", b or "HEAD"
    else:
        a, b = spec, "HEAD"
    base_c, head_c = resolve_commit(repo, a), resolve_commit(repo, b)
    raw = _git(repo, "diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", base_c, head_c, *_pathspec(prefix))
    entries = _strip_prefix(_raw_entries(raw), prefix)
    base = GitSource(repo, _treeish(base_c, prefix), str(repo))
    head = GitSource(repo, _treeish(head_c, prefix), str(repo))
    change = Change(base, head, base_c, head_c)
    for e in entries:
        if e.status == "R":
            change.renames[e.old] = e.new
        if e.status != "D":
            change.changed.append(e.new)
        else:
            change.changed.append(e.old)
    change.changed.sort()
    return change


def _overlay_from_index_diff(repo: Path, prefix: str, cached: bool) -> tuple[GitSource, dict[str, bytes | None],
                                                                             dict[str, str], str]:
    """HEAD, and the changes the index (cached) or the working tree makes to it."""
    head_c = _head_or_empty(repo)
    base = GitSource(repo, _treeish(head_c, prefix) if head_c != EMPTY_TREE else EMPTY_TREE, str(repo))
    args = ["diff-index", "-r", "-z", "-M", "--raw"] + (["--cached"] if cached else []) + [head_c] + _pathspec(prefix)
    entries = _strip_prefix(_raw_entries(_git(repo, *args)), prefix)
    unmerged = sorted({e.new for e in entries if e.status == "U"})
    if unmerged:
        raise InputError(f"{repo}: the index has unmerged paths: {', '.join(unmerged[:5])}")
    changes: dict[str, bytes | None] = {}
    renames: dict[str, str] = {}
    wanted: dict[str, str] = {}  # path -> blob to read from git
    root = repo / prefix if prefix else repo
    for e in entries:
        if e.new_mode in _SKIP_MODES or e.old_mode in _SKIP_MODES:
            continue
        if e.status == "R":
            changes[e.old] = None
            renames[e.old] = e.new
        if e.status == "D":
            changes[e.old] = None
            continue
        if e.new_sha != NULL_SHA:
            wanted[e.new] = e.new_sha
            continue
        try:  # the working tree's bytes (dirty relative to the index)
            data = read_regular(root / e.new, MAX_FILE_BYTES, repo)[0]
        except FileNotFoundError:
            changes[e.new] = None
            continue
        except OSError as exc:
            raise InputError(f"{root / e.new}: cannot read: {exc.strerror}") from None
        if e.status != "A" and blob_id(data) == e.old_sha:
            continue  # only the stat information was stale
        changes[e.new] = data
    blobs = _read_blobs(repo, sorted(set(wanted.values())))
    for rel, sha in wanted.items():
        changes[rel] = blobs[sha]
    return base, changes, renames, head_c


def staged(repo: Path, prefix: str) -> Change:
    """The index against HEAD: what `git commit` would record."""
    base, changes, renames, head_c = _overlay_from_index_diff(repo, prefix, cached=True)
    return Change(base, OverlaySource(base, changes, str(repo)), head_c, "index", sorted(changes), renames)


def working_tree(repo: Path, prefix: str) -> Change:
    """The working tree (tracked changes and untracked, not ignored, source files) against HEAD."""
    base, changes, renames, head_c = _overlay_from_index_diff(repo, prefix, cached=False)
    root = repo / prefix if prefix else repo
    untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard", *_pathspec(prefix)).split(b"\0")
    p = prefix + "/" if prefix else ""
    for raw in untracked:
        rel = raw.decode("utf-8", "surrogateescape")
        if not rel or not (rel.endswith(SOURCE_SUFFIXES) or rel.endswith(SETTINGS_NAME)) or not rel.startswith(p):
            continue
        rel = rel[len(p):]
        try:  # an untracked link leading out of the repository, a FIFO, a device: not read
            changes[rel] = read_regular(root / rel, MAX_FILE_BYTES, repo)[0]
        except OSError:
            continue
    _pair_exact_renames(base, changes, renames)
    return Change(base, OverlaySource(base, changes, str(repo)), head_c, "working tree", sorted(changes), renames)


def _pair_exact_renames(base: TreeSource, changes: dict[str, bytes | None], renames: dict[str, str]) -> None:
    """A file deleted and a new file with the same bytes: a rename (git's exact rename detection)."""
    gone = {base.digest(rel) or "": rel for rel, data in changes.items() if data is None and rel not in renames}
    for rel, data in changes.items():
        if data is None or base.is_file(rel) or rel in renames.values():
            continue
        old = gone.pop(blob_id(data), None)
        if old is not None:
            renames[old] = rel


def patch_change(tree: Path, patch: Path, strip: int = 1) -> Change:
    """A patch file (or '-' for stdin) applied in memory over the tree: its working tree when it is a
    git repository (HEAD plus local changes), else the directory as it is."""

    try:
        data = read_input(patch, MAX_PATCH_BYTES)
    except OSError as exc:
        raise InputError(f"{patch}: cannot read the patch: {exc.strerror or exc}") from None
    patches = parse_patch(data, patch.name, strip)
    if not patches:
        raise InputError(f"{patch}: no diff found in the patch")
    top = repo_toplevel(tree)
    if top is not None:
        prefix = _prefix(top, tree)
        wt = working_tree(top, prefix)
        base: TreeSource = wt.head
        base_label = "working tree" if wt.changed else wt.base_label
    else:
        base = DirectorySource(tree, str(tree))
        base_label = str(tree)
    applied = apply_patches(base, patches)
    _pair_exact_renames(base, applied.changes, applied.renames)
    head = OverlaySource(base, applied.changes, base.label)
    changed = sorted(rel for rel, d in applied.changes.items() if d is None or base.digest(rel) != blob_id(d))
    return Change(base, head, base_label, f"{base_label} + {patch}", changed, applied.renames, applied.notes)


def _prefix(top: Path, tree: Path) -> str:
    try:
        rel = tree.resolve().relative_to(top.resolve())
    except ValueError:
        raise InputError(f"{tree}: not inside the repository at {top}") from None
    return rel.as_posix() if str(rel) != "." else ""


def change_for(tree: Path | None, git_range_spec: str | None = None, use_index: bool = False,
               patch: Path | None = None, strip: int = 1) -> tuple[Path, Change]:
    """The tree root and the change the command line names (nothing named: the working tree)."""
    given = tree if tree is not None else Path.cwd()
    if not given.is_dir():
        raise InputError(f"{given}: no such directory")
    top = repo_toplevel(given)
    if patch is not None:
        root = given if tree is not None else (top or given)
        return root, patch_change(root, patch, strip)
    if top is None:
        raise InputError(f"{given}: not in a git repository (give --patch FILE to check a patch against a plain tree)")
    root = given if tree is not None else top
    prefix = _prefix(top, root)
    if git_range_spec is not None:
        return root, git_range(top, prefix, git_range_spec)
    if use_index:
        return root, staged(top, prefix)
    return root, working_tree(top, prefix)


# -- the comparison -------------------------------------------------------------------------------
