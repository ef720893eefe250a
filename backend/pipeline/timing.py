"""Per-stage wall-clock timings and progress spans of one pipeline run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..progress import Progress


class StageClock:
    """Hands each stage its slice of the progress bar and records its seconds in `timings`.

    `weights` maps stage name -> relative share of the bar (roughly its share of the run time).
    """

    def __init__(self, progress: Progress, weights: dict[str, float]) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        total = sum(weights.values())
        self._spans: dict[str, tuple[float, float]] = {}
        start = 0.0
        for name, weight in weights.items():
            self._spans[name] = (start, start + weight / total)
            start += weight / total

    @contextmanager
    def stage(self, name: str, message: str = "") -> Iterator[Progress]:
        start, end = self._spans[name]
        span = self.progress.span(start, end, name)
        span.update(0.0, message)  # cancellation point between stages
        began = time.perf_counter()
        yield span
        self.timings[name] = round(time.perf_counter() - began, 3)
        span.update(1.0, message)
