"""What walk() reports for symlinks inside the tree, broken links, ignored directories and non-source files,
in its own order (depth first, by name), before DirectorySource sorts the files."""

import os
from pathlib import Path

from armalias.source.files import Discovery, walk
from armalias.source.tree import SOURCE_SUFFIXES, DirectorySource


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for rel in ["a/x.c", "a/b/y.h", "a/b/z.S", "a/b/notes.txt", "m/q.c", "top.c", ".git/hooks.c",
                "a/__pycache__/p.c"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    (root / "a" / ".git").write_text("gitdir: elsewhere\n")  # a .git file (worktree) is ignored too
    (root / "dirlink").symlink_to("m", target_is_directory=True)  # in the tree, reached before m itself
    (root / "zz").symlink_to("a/b", target_is_directory=True)  # in the tree, after a/b was listed
    (root / "flink.c").symlink_to("a/x.c")  # a file link in the tree is a file of its own
    (root / "a" / "broken.c").symlink_to("nowhere.c")
    (root / "a" / "self").symlink_to("self")
    os.mkfifo(root / "pipe.c")  # not a directory, so it counts as a file by its name
    return root


def test_walk_follows_links_inside_the_tree_once_in_name_order(tmp_path: Path):
    root = make_tree(tmp_path)
    d = Discovery(root)
    walk(root, root, SOURCE_SUFFIXES, d)
    assert d.files == ["a/b/y.h", "a/b/z.S", "a/x.c", "dirlink/q.c", "flink.c", "pipe.c", "top.c"]
    assert [(s.file, s.reason) for s in d.skipped] == [
        ("a/broken.c", "broken or looping symlink"),
        ("a/self", "broken or looping symlink"),
        ("m", "symlink loop (directory already visited)"),
        ("zz", "symlink loop (directory already visited)"),
    ]


def test_walk_below_a_directory_link(tmp_path: Path):
    root = make_tree(tmp_path)
    d = Discovery(root)
    walk(root, root / "dirlink", SOURCE_SUFFIXES, d)
    assert d.files == ["dirlink/q.c"] and d.skipped == []
    assert DirectorySource(root).discover("a").files == ["a/b/y.h", "a/b/z.S", "a/x.c"]
