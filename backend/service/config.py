"""Settings of one `keydiff3d serve` process."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..image_io import MAX_IMAGE_PIXELS
from ..mesh_io import MAX_MESH_FACES

API_VERSION = 1  # bumped on incompatible API changes; the add-on refuses a different one
DEFAULT_PORT = 8765
MIN_TOKEN_LENGTH = 16
TOKEN = re.compile(rf"[A-Za-z0-9._~+/=-]{{{MIN_TOKEN_LENGTH},}}")  # what a Bearer header carries (RFC 6750)
TOKEN_HOWTO = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class ServiceConfig:
    """host/port: where to listen. token: required as `Authorization: Bearer <token>` when set
    (mandatory off loopback; without one only loopback Host names are answered). Limits bound every
    upload before it reaches the pipeline; max_queued_jobs (queued or running at once) and
    min_free_bytes (left on the data folder's disk after an upload) bound what waits on disk."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    device: str = "auto"
    checkpoint: str | None = None  # keypoint checkpoint; None = the shipped default
    max_upload_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_mesh_faces: int = MAX_MESH_FACES
    max_options_bytes: int = 16 * 1024
    keep_jobs: int = 100
    max_queued_jobs: int = 32
    min_free_bytes: int = 1024 * 1024 * 1024
    warm_up: bool = True  # load the default checkpoint at start, so the first job is not slower

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"binding to {self.host} exposes the backend to the network; pass --token SECRET "
                f"(or set KEYDIFF3D_TOKEN) so only clients with the token can use it; {TOKEN_HOWTO}"
            )
        if self.token is not None and not TOKEN.fullmatch(self.token):
            raise ConfigError(
                f"the token must be at least {MIN_TOKEN_LENGTH} characters of A-Z a-z 0-9 . _ ~ + / = - "
                f"(no spaces: clients could not send it); {TOKEN_HOWTO}"
            )
        if self.max_queued_jobs < 1 or self.min_free_bytes < 0:
            raise ConfigError("--max-queued-jobs must be at least 1 and --min-free-mb at least 0")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False
