"""A rich progress display: one bar over epochs with the latest losses and metric, one over batches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text


class _BarsAndScores(Progress):
    """The bars, then the latest epoch's scores on a line of their own (never wrapped: cut with "…").

    Kept two columns narrower than the terminal: a line that fills the width lets the "^C" a terminal echoes
    wrap onto a new line, and the final redraw then prints the display twice."""

    scores = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        width = max(20, self.console.width - 2) if hasattr(self, "live") else None  # None: while constructing
        yield Constrain(self.make_tasks_table(self.tasks), width)
        if self.scores:
            scores = Text.from_markup(self.scores, overflow="ellipsis")
            scores.no_wrap = True
            yield Constrain(scores, width)


class EpochProgress:
    """No-op when disabled (quiet mode), so the trainer never branches on it."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, metric: str, enabled: bool,
                 console: Console | None = None) -> None:
        self.enabled = enabled
        self.metric = metric
        self.every = max(1, steps_per_epoch // 40)
        self.steps_per_epoch = steps_per_epoch
        self.pending = 0
        if enabled:
            self.progress = _BarsAndScores(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=console, transient=False, refresh_per_second=5)
            self.epochs = self.progress.add_task("epochs", total=total_epochs)
            self.batches = self.progress.add_task("batches", total=steps_per_epoch)

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.remove_task(self.batches)
            self.progress.stop()

    def start(self, completed_epochs: int) -> None:
        if self.enabled:
            self.progress.update(self.epochs, completed=completed_epochs)

    def finish(self, epochs_done: int) -> None:
        """Training ended (possibly early): the epoch bar is complete, so no time remains to estimate."""
        if self.enabled:
            self.progress.update(self.epochs, total=max(epochs_done, 1), completed=epochs_done)

    def step(self) -> None:
        if not self.enabled:
            return
        self.pending += 1
        if self.pending >= self.every:
            self.progress.advance(self.batches, self.pending)
            self.pending = 0

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        if not self.enabled:
            return
        self.pending = 0
        value = row.get(f"val_{self.metric}")
        self.progress.scores = (f"train loss {row['train_loss']:.4f} · val loss {row['val_loss']:.4f}"
                                + (f" · val {self.metric} {value:.4f}" if value is not None else "")
                                + (" [green]★ best so far[/]" if improved else ""))
        self.progress.update(self.epochs, advance=1)
        self.progress.reset(self.batches, total=self.steps_per_epoch)


class RowProgress:
    """One bar over a pass through a streamed table's rows (or a running count where the total is unknown).
    No-op when disabled."""

    def __init__(self, description: str, total: int | None, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        if enabled:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("rows"), TimeRemainingColumn(), console=console, transient=True,
                                     refresh_per_second=2)
            self.task = self.progress.add_task(description, total=total)

    def __enter__(self) -> RowProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def advance(self, rows: int) -> None:
        if self.enabled:
            self.progress.advance(self.task, rows)
