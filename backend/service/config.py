"""Settings of one `keydiff3d serve` process."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..mesh_io import MAX_MESH_FACES
from ..pipeline.inputs import MAX_IMAGE_PIXELS

API_VERSION = 1  # bumped on incompatible API changes; the add-on refuses a different one
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class ServiceConfig:
    """host/port: where to listen. token: required as `Authorization: Bearer <token>` when set
    (mandatory off loopback). Limits bound every upload before it reaches the pipeline."""

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
    warm_up: bool = True  # load the default checkpoint at start, so the first job is not slower

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"binding to {self.host} exposes the backend to the network; pass --token SECRET "
                "(or set KEYDIFF3D_TOKEN) so only clients with the token can use it"
            )
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("the token must be at least 8 characters long")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False
