"""A progress bar on stderr when it is a terminal (rich, imported only then: a run whose output goes
to a pipe or a file never loads it)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator:
    """A rich progress bar on stderr when it is a terminal; yields a (done, total) callback or None."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(file=sys.stderr), transient=True)
    task = progress.add_task(label, total=None)
    with progress:
        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
        yield update
