# SPDX-License-Identifier: GPL-3.0-or-later
"""A model download on the backend, watched from the add-on (bpy-free, stdlib only).

`ModelsWatch(client, name, hub_token).start()` asks the backend to download weight entry `name`
(POST /v1/models/{name}/download) and polls GET /v1/models from a thread until that download is
done, failed or cancelled; `listing` keeps the latest answer for the preferences to draw. The
download itself runs in the backend (it owns the weights folder), so Blender may close meanwhile.
"""

from __future__ import annotations

import threading
import time

from .health import BackendUnreachable
from .http import BackendClient, BackendError

POLL_S = 0.5
FINISHED = ("done", "failed", "cancelled")


def find_entry(listing: dict, name: str) -> dict | None:
    return next((row for row in listing.get("models", []) if row.get("name") == name), None)


class ModelsWatch:
    def __init__(self, client: BackendClient, name: str, hub_token: str = "") -> None:
        self.client, self.name, self.hub_token = client, name, hub_token
        self.listing: dict = {}
        self.download: dict = {"status": "starting", "progress": 0.0}
        self.error: str | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="keydiff3d-model-download", daemon=True)

    def start(self) -> "ModelsWatch":
        """Ask the backend to start (errors such as an unknown name are raised here, on the caller's thread)."""
        self.download = self.client.start_model_download(self.name, self.hub_token)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float = 600.0) -> str:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the download of {self.name} did not finish within {timeout:.0f} s")
        return self.status

    @property
    def status(self) -> str:
        return "failed" if self.error else str(self.download.get("status", ""))

    @property
    def finished(self) -> bool:
        return self.error is not None or self.status in FINISHED

    @property
    def fraction(self) -> float:
        return float(self.download.get("progress") or 0.0)

    def describe(self) -> str:
        if self.error:
            return self.error
        status, state = self.status, self.download
        if status == "done":
            return f"{self.name} downloaded and checked ({state.get('message', '')})".replace(" ()", "")
        if status in ("failed", "cancelled"):
            reason = (state.get("error") or {}).get("message") or state.get("message") or status
            return f"the download of {self.name} {'was cancelled' if status == 'cancelled' else 'failed'}: {reason}"
        done, total = state.get("bytes_done") or 0, state.get("bytes_total") or 0
        size = f", {done / 2**20:.0f} of {total / 2**20:.0f} MiB" if total else ""
        return f"downloading {self.name}: {state.get('file') or '...'} ({100 * self.fraction:.0f}%{size})"

    def _work(self) -> None:
        cancel_sent = False
        try:
            while True:
                if self._cancel.is_set() and not cancel_sent:
                    self.download = self.client.cancel_model_download(self.name)
                    cancel_sent = True
                self.listing = self.client.models()
                entry = find_entry(self.listing, self.name) or {}
                self.download = entry.get("download") or self.download
                if self.status in FINISHED:
                    return
                if cancel_sent:
                    time.sleep(POLL_S)
                else:
                    self._cancel.wait(POLL_S)
        except (BackendError, BackendUnreachable, OSError) as error:
            self.error = str(error)
        except Exception as error:  # a bug must reach the user as a sentence, not a dead thread
            self.error = f"unexpected error while watching the download ({type(error).__name__}: {error})"
