# SPDX-License-Identifier: GPL-3.0-or-later
"""Is a KeyDiff3D backend reachable? (`GET {url}/v1/health`, stdlib only, short timeout.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from .urls import BadBackendUrl, normalise_backend_url

HEALTH_TIMEOUT_S = 2.0


class BackendUnreachable(RuntimeError):
    """No backend answers at the configured URL (the message says how to start one)."""


@dataclass
class Health:
    url: str
    status: str
    device: str
    details: dict


def _auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_backend(
    url: str, *, token: str = "", start_command: str = "keydiff3d serve", timeout: float = HEALTH_TIMEOUT_S
) -> Health:
    """The backend's health answer, or `BackendUnreachable` with one actionable sentence.
    `url` is normalised first ("127.0.0.1:8765" means http://127.0.0.1:8765)."""
    try:
        base = normalise_backend_url(url)
    except BadBackendUrl as error:
        raise BackendUnreachable(f"No KeyDiff3D backend can be reached: {error}.") from None
    try:
        request = urllib.request.Request(f"{base}/v1/health", headers=_auth_headers(token))
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        hint = "check the token in the add-on preferences" if error.code in (401, 403) else "check the backend URL"
        raise BackendUnreachable(f"The backend at {base} answered HTTP {error.code} to /v1/health; {hint}.") from error
    except (urllib.error.URLError, OSError, ValueError) as error:  # refused, timed out, malformed URL
        reason = getattr(error, "reason", error)
        raise BackendUnreachable(
            f"No KeyDiff3D backend is reachable at {base} ({reason}); start one with `{start_command}` "
            "and check the backend URL in the add-on preferences."
        ) from error
    try:
        payload = json.loads(raw.decode("utf-8") or "{}")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise BackendUnreachable(
            f"The server at {base} did not answer like a KeyDiff3D backend; check the backend URL."
        )
    return Health(
        url=base,
        status=str(payload.get("status", "unknown")),
        device=str(payload.get("device", "unknown")),
        details=payload,
    )
