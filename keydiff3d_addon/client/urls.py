# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend URLs as users type them ("127.0.0.1:8765", "localhost:8765/", " http://gpu:9000 ") -> one form."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


class BadBackendUrl(ValueError):
    """A backend URL that cannot be used (one sentence naming what to type instead)."""


def normalise_backend_url(raw: str) -> str:
    """`scheme://host[:port][/path]` without a trailing slash; http:// is assumed when no scheme is given.

    "127.0.0.1:8765" -> "http://127.0.0.1:8765"; "[::1]:8765/" -> "http://[::1]:8765".
    """
    text = (raw or "").strip()
    if not text:
        raise BadBackendUrl("the backend URL is empty; set it in the add-on preferences, e.g. http://127.0.0.1:8765")
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise BadBackendUrl(f"the backend URL {raw.strip()!r} must start with http:// or https://")
    try:
        host, port = parts.hostname, parts.port  # .port raises ValueError for "host:abc" or a port > 65535
    except ValueError:
        raise BadBackendUrl(
            f"the backend URL {raw.strip()!r} has an invalid port; use e.g. http://127.0.0.1:8765"
        ) from None
    if not host:
        raise BadBackendUrl(f"the backend URL {raw.strip()!r} names no host; use e.g. http://127.0.0.1:8765")
    if parts.query or parts.fragment:
        raise BadBackendUrl(f"the backend URL {raw.strip()!r} must not have a query or fragment")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def is_loopback(url: str) -> bool:
    """True when the (normalised) URL points at this computer."""
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS
