# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the backend runs and how to start it."""

from urllib.parse import urlparse

import bpy

from .health import BackendUnreachable

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
ADDON_ID = __package__  # "keydiff3d_addon" from source, "bl_ext.<repo>.keydiff3d" as an extension
DEFAULT_BACKEND_URL = "http://127.0.0.1:8765"
DEFAULT_START_COMMAND = "keydiff3d serve --port 8765"


class KEYDIFF3D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_url: bpy.props.StringProperty(
        name="Backend URL",
        description="Address of the KeyDiff3D backend (started with `keydiff3d serve`)",
        default=DEFAULT_BACKEND_URL,
    )
    token: bpy.props.StringProperty(
        name="Token",
        description="Access token the backend expects (empty for a loopback backend without one)",
        default="",
        subtype="PASSWORD",
    )
    start_command: bpy.props.StringProperty(
        name="Start command",
        description="Command that starts a local backend, shown when none is reachable",
        default=DEFAULT_START_COMMAND,
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_url")
        layout.prop(self, "token")
        layout.prop(self, "start_command")


def get_preferences(context: bpy.types.Context | None = None) -> KEYDIFF3D_AP_preferences:
    """This add-on's preferences; a clear error when it was registered without being enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None or addon.preferences is None:
        raise RuntimeError(f"the KeyDiff3D add-on ({ADDON_ID}) is not enabled in the preferences")
    return addon.preferences


CLASSES = (KEYDIFF3D_AP_preferences,)


def allowed_backend_url(context: bpy.types.Context) -> str:
    """The preferences' backend URL; a remote one is refused while Blender's online access is off."""
    url = get_preferences(context).backend_url.strip()
    if (urlparse(url).hostname or "") not in LOOPBACK_HOSTS and not bpy.app.online_access:
        raise BackendUnreachable(
            f"The backend {url} is not on this computer and Blender's online access is off; "
            "allow online access in Preferences > System or run a local backend with `keydiff3d serve`."
        )
    return url
