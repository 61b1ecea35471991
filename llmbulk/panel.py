"""Progress on stderr: a live panel of the job on a terminal, one `progress:` line per round elsewhere.

`RichProgress` implements the library's `Progress` callbacks. On a terminal, `run` and
`collect --follow` get a rich Live panel redrawn a few times a second from the last round's
status (no queries between rounds); it is erased when the job ends, fails or is interrupted.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from llmbulk import interrupts, rounds
from llmbulk.rounds import Snapshot, clock, money, seconds

if TYPE_CHECKING:
    from llmbulk.views import JobStatus

REFRESH_PER_SECOND = 4


class RichProgress:
    """Progress on stderr: -q only errors and the final line, -v each stage and each batch's state
    changes, -vv each stage with the time the previous one took and its count."""

    def __init__(self, verbose: int = 0, console: Console | None = None) -> None:
        if console is None:
            from llmbulk.render import err  # render re-exports this class: import it late

            console = err
        self.console = console
        self.verbose = verbose
        self._stage: str | None = None
        self._done = 0
        self._total: int | None = None
        self._last = 0.0
        self._started = time.monotonic()
        self._opened = time.monotonic()
        self._last_note: str | None = None
        self._batch_states: dict[str, str] = {}
        self._snap: Snapshot | None = None
        self._poll_at: float | None = None
        self._live: Live | None = None

    # ---- Progress callbacks --------------------------------------------------------------------

    def stage(self, name: str, total: int | None = None) -> None:
        self._finish()
        now = time.monotonic()
        if self.verbose > 1 and self._stage:
            self.console.print(f"[dim]  {escape(self._stage)}: {self._done:,} in {now - self._started:.2f} s[/]")
        self._stage, self._done, self._total, self._started = name, 0, total, now
        if self.verbose > 0:
            self.console.print(f"[dim]{escape(name)}…[/]")

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self.verbose < 0 or self._live is not None:  # the panel shows the count
            return
        now = time.monotonic()
        if self.console.is_terminal and now - self._last > 0.2:
            self._last = now
            total = f"/{self._total:,}" if self._total else ""
            self.console.print(f"{self._stage}: {self._done:,}{total}", end="\r", markup=False)

    def note(self, message: str) -> None:
        if self.verbose < 0 or message == self._last_note:  # a note repeated each round says nothing new
            return
        self._last_note = message
        self.console.print(Text.assemble(("note:", "yellow"), " ", message), highlight=False)

    def round(self, status: JobStatus, next_poll_in: float | None) -> None:
        snap = rounds.snapshot(status)
        self._finish()  # the counter line of the step before, if any
        changes = rounds.transitions(self._batch_states, status)
        for line in changes if self.verbose > 0 else []:
            self.console.print(Text(line, style="dim"), highlight=False)
        if self._snap is not None and self._snap.job_id != snap.job_id:
            self._opened = time.monotonic()  # `worker` runs one job after another: time each on its own
        self._snap, self._stage = snap, None
        self._poll_at = None if next_poll_in is None else time.monotonic() + next_poll_in
        if next_poll_in is None:
            self.stop()
            self.console.print(rounds.final_line(snap, time.monotonic() - self._opened), markup=False, highlight=False)
        elif self.verbose >= 0:
            self._show(snap, next_poll_in)

    def _show(self, snap: Snapshot, next_poll_in: float) -> None:
        if self.console.is_terminal and not self.console.is_dumb_terminal:
            self._start()
        else:
            line = rounds.progress_line(snap, time.monotonic() - self._opened, time.time(), next_poll_in)
            self.console.print(line, markup=False, highlight=False)

    # ---- the live panel ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._live is not None:
            return
        self._live = Live(
            console=self.console, get_renderable=self._render, transient=True,
            refresh_per_second=REFRESH_PER_SECOND, redirect_stdout=False,
        )  # fmt: skip
        # An error or Ctrl-C unwinds past `run` without a last round: erase the panel on the way out
        # (registered first: a Ctrl-C can land the moment the first frame is drawn).
        atexit.register(self.stop)
        interrupts.add_cleanup(self.stop)
        with _whole():
            self._live.start(refresh=True)

    def stop(self) -> None:
        """Erase the panel (if shown) and give the cursor back."""
        live, self._live = self._live, None
        if live is not None:
            atexit.unregister(self.stop)
            interrupts.remove_cleanup(self.stop)
            with _whole():
                live.stop()

    def _render(self) -> Group:
        assert self._snap is not None
        return panel(self._snap, time.monotonic() - self._opened, self._poll_in(), self._activity())

    def _poll_in(self) -> float | None:
        return None if self._poll_at is None else self._poll_at - time.monotonic()

    def _activity(self) -> str | None:
        if self._stage is None:
            return None
        total = f"/{self._total:,}" if self._total else ""
        return f"{self._stage} {self._done:,}{total}" if self._done or self._total else self._stage

    def _finish(self) -> None:
        if self._stage and self.console.is_terminal and self._done and self._live is None:
            self.console.print(" " * 60, end="\r")


@contextmanager
def _whole() -> Iterator[None]:
    """A Ctrl-C waits until the panel is fully drawn or erased (half a frame is never erased)."""
    deferral = interrupts.Deferral()
    deferral.start()
    try:
        yield
    finally:
        deferral.end()


def panel(snap: Snapshot, elapsed: float, poll_in: float | None, activity: str | None) -> Group:
    """The panel's frame: job, batches, items with a bar, time and ETA, cost, next poll."""
    emulated = " (emulated)" if snap.emulated else ""
    head = Text.assemble(("job ", "dim"), (snap.job_id, "bold"), f"  {snap.provider}/{snap.model}{emulated}",
                         f"  {snap.n_items:,} items")  # fmt: skip
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("batches", Text(rounds.batches_text(snap)))
    share = f"{snap.settled / snap.n_items:.0%}" if snap.n_items else "–"
    counts = Text(
        f" {snap.settled:,}/{snap.n_items:,} settled ({share}) · {snap.succeeded:,} succeeded · "
        f"{snap.failed:,} failed · {snap.dead:,} dead" + (f" · {snap.retrying:,} to retry" if snap.retrying else "")
    )
    bar = ProgressBar(total=max(1, snap.n_items), completed=snap.settled, width=24)
    items = Table.grid()
    items.add_row(bar, counts)
    grid.add_row("items", items)
    grid.add_row("time", Text(f"elapsed {clock(elapsed)} · ETA {eta_text(snap)}"))
    estimate = f" of ~{money(snap.estimate)} estimated" if snap.estimate is not None else ""
    grid.add_row("cost", Text(f"{money(snap.cost)} so far{estimate}"))
    poll = "–" if poll_in is None else ("now" if poll_in < 0.05 else f"in {seconds(poll_in)}")
    grid.add_row("next poll", Text(poll + (f"  ({activity})" if activity else "")))
    return Group(head, grid)


def eta_text(snap: Snapshot) -> str:
    eta = snap.eta(time.time())
    if eta is None:
        return "estimating (no batch has ended yet)"
    basis = f"mean batch {snap.latency:.1f}s over {snap.ended_batches} ended" if snap.latency is not None else ""
    if eta <= 0:
        return f"any moment now ({basis})"
    return f"~{clock(eta)} ({basis})"
