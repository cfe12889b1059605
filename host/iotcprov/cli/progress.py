"""A progress bar for long board work (flash, deploy): on stderr when it is a terminal, nothing
otherwise, so piped or logged output stays plain lines without control characters."""

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

ProgressFn = Callable[[int, int], None]  # progress(done, total)


@contextlib.contextmanager
def progress_bar(description: str, console: Console | None = None) -> Iterator[ProgressFn | None]:
    """Yields progress(done, total) drawing a bar that is removed when the work ends, or None when
    the console is not a terminal (the caller then reports nothing until the work is done)."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), DownloadColumn(),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
