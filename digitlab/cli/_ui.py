"""Terminal output shared by the sub-commands: consoles and progress bars (rich)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(kind: str = "download") -> Iterator[Callable[[str, int, "int | None"], None]]:
    """Yield ``report(name, done, total)``; each new name gets its own bar (on stderr)."""
    columns = [TextColumn("{task.description:26s}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn()]
    tasks: dict[str, int] = {}
    with Progress(*columns, console=err_console, transient=False) as progress:

        def report(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        yield report
