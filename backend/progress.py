"""Progress reporting and cancellation shared by the CLI (tqdm), the service (job state) and tests.

Long operations take a `Progress` and call `update(...)` between units of work; `update` is also
the cancellation point. `span(...)` hands a sub-range of the bar to a nested stage, so a pipeline can
give each stage its share without the stage knowing about the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .errors import Cancelled

T = TypeVar("T")
ProgressCallback = Callable[[str, float, str], None]  # (stage, fraction in [0, 1], message)


class Progress:
    def __init__(
        self,
        callback: ProgressCallback | None = None,
        cancel_event: threading.Event | None = None,
        *,
        start: float = 0.0,
        end: float = 1.0,
        stage: str = "",
    ) -> None:
        self._callback = callback
        self.cancel_event = cancel_event or threading.Event()
        self._start, self._end, self._stage = start, end, stage

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Cancellation point: raise `Cancelled` if cancellation was requested."""
        if self.cancel_event.is_set():
            raise Cancelled(self._stage or "cancelled")

    def update(self, fraction: float, message: str = "", stage: str | None = None) -> None:
        """Report `fraction` (0..1) of this span done; raises `Cancelled` when asked to stop."""
        self.check()
        if self._callback is not None:
            f = min(max(fraction, 0.0), 1.0)
            self._callback(stage or self._stage, self._start + f * (self._end - self._start), message)

    def span(self, start: float, end: float, stage: str | None = None) -> "Progress":
        """A child reporter whose 0..1 maps onto [start, end] of this one."""
        width = self._end - self._start
        return Progress(
            self._callback,
            self.cancel_event,
            start=self._start + start * width,
            end=self._start + end * width,
            stage=stage or self._stage,
        )

    def iterate(self, items: Iterable[T], total: int | None = None, message: str = "") -> Iterator[T]:
        """Yield `items`, reporting progress and checking for cancellation before each."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        for i, item in enumerate(items):
            self.update(i / total if total else 0.0, message)
            yield item
        self.update(1.0, message)


def tqdm_progress(desc: str = "keydiff3d") -> Progress:
    """A `Progress` drawing one tqdm bar (percent of the whole job) with the stage as postfix."""
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}] {postfix}")

    def callback(stage: str, fraction: float, message: str) -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_postfix_str(f"{stage} {message}".strip(), refresh=False)
        bar.refresh()
        if fraction >= 1.0 and stage == "done":
            bar.close()

    return Progress(callback)
