"""Models loaded once per process and kept warm between runs (the service handles many jobs).

Loading a checkpoint or SV3D costs seconds to minutes; every stage asks this cache instead of loading
itself, keyed by what identifies the weights (file path, device).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class ModelCache:
    """Thread-safe memo of loaded models: `get(key, loader)` calls `loader()` once per key."""

    def __init__(self) -> None:
        self._models: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, loader: Callable[[], Any]) -> Any:
        # One lock for all loads: two jobs asking for the same model must not load it twice, and
        # the service runs one worker, so serialising loads costs nothing.
        with self._lock:
            if key not in self._models:
                self._models[key] = loader()
            return self._models[key]

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._models

    def loaded(self) -> list[str]:
        """Human-readable keys of the loaded models (for GET /v1/health)."""
        with self._lock:
            return [":".join(str(part) for part in key) for key in self._models]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


MODELS = ModelCache()
