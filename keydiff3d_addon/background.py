# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress of long add-on steps, and numpy work off Blender's main thread, cancellable (bpy-free,
stdlib only).

`WindowProgress(context)` shows a blocking step's `update(fraction, message)` on Blender's progress
cursor (imports).

`BackgroundTask(work).start()` runs `work(progress)` on a daemon thread. `progress` is a
`CancellableProgress`: the duck type rigcore's skinning reports to (`update(fraction, message)`),
and each update is a cancellation point that raises `Cancelled` once `cancel()` was called, so the
work stops at its next report and returns nothing. The caller (a modal operator's timer on the main
thread) reads `fraction`, `message` and `finished`, then `result()`; every bpy read happens before
`start` and every bpy write after `result()`, on the main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Cancelled(Exception):
    """The user cancelled (Esc) a long step; nothing was changed."""


class CancellableProgress:
    """`update(fraction, message)` records the latest report and raises `Cancelled` when cancelled."""

    def __init__(self) -> None:
        self.fraction, self.message = 0.0, ""
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def update(self, fraction: float, message: str = "") -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled")
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), message or self.message


class WindowProgress:
    """`update(fraction, message)` shown on Blender's progress cursor (status bar) while a blocking
    step runs; the duck type the importer and rigcore's skinning accept."""

    def __init__(self, context) -> None:
        self.window_manager = context.window_manager

    def __enter__(self) -> "WindowProgress":
        self.window_manager.progress_begin(0, 100)
        return self

    def __exit__(self, *exc) -> None:
        self.window_manager.progress_end()

    def update(self, fraction: float, message: str = "") -> None:
        self.window_manager.progress_update(100.0 * min(max(fraction, 0.0), 1.0))


class BackgroundTask:
    """`work(progress)` on a daemon thread; `result()` returns its value or raises what it raised
    (`Cancelled` after `cancel()`)."""

    def __init__(self, work: Callable[[CancellableProgress], Any], name: str = "keydiff3d-background") -> None:
        self.progress = CancellableProgress()
        self._work = work
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "BackgroundTask":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.progress.cancel()

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work ends (scripts and tests); True when it did."""
        self._thread.join(timeout)
        return self.finished

    def result(self) -> Any:
        if not self.finished:
            raise RuntimeError("the background task is still running")
        if self._error is not None:
            raise self._error
        if self.progress.cancelled:  # cancelled after its last report: its result is not wanted
            raise Cancelled("cancelled")
        return self._value

    def _run(self) -> None:
        try:
            self._value = self._work(self.progress)
        except BaseException as error:  # handed to the main thread by result()
            self._error = error
