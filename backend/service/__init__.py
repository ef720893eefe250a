"""The local HTTP backend the Blender add-on talks to: a FastAPI app, a job store on disk, one worker.

`create_app(ServiceConfig(...))` builds the app; `keydiff3d serve` runs it with uvicorn.
"""

from .config import API_VERSION, ServiceConfig

__all__ = ["API_VERSION", "ServiceConfig"]
