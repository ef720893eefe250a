# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: where the backend runs, how to start it, and the model files it has."""

import bpy

from .client.health import BackendUnreachable
from .client.urls import BadBackendUrl, is_loopback, normalise_backend_url

ADDON_ID = __package__  # "keydiff3d_addon" from source, "bl_ext.<repo>.keydiff3d" as an extension
DEFAULT_BACKEND_URL = "http://127.0.0.1:8765"
DEFAULT_START_COMMAND = "keydiff3d serve --port 8765"


class KEYDIFF3D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_url: bpy.props.StringProperty(
        name="Backend URL",
        description="Address of the KeyDiff3D backend (started with `keydiff3d serve`); http:// may be left out",
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
        description="Command that Start Local Backend runs (and that the message names when no backend is reachable)",
        default=DEFAULT_START_COMMAND,
    )
    hub_token: bpy.props.StringProperty(
        name="Hugging Face token",
        description=(
            "Sent to the backend only to download gated models (SV3D-p: accept its licence on huggingface.co first)"
        ),
        default="",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        from .panels import draw_models

        layout = self.layout
        layout.prop(self, "backend_url")
        layout.prop(self, "token")
        layout.prop(self, "start_command")
        draw_models(layout.box(), self)


def get_preferences(context: bpy.types.Context | None = None) -> KEYDIFF3D_AP_preferences:
    """This add-on's preferences; a clear error when it was registered without being enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None or addon.preferences is None:
        raise RuntimeError(f"the KeyDiff3D add-on ({ADDON_ID}) is not enabled in the preferences")
    return addon.preferences


CLASSES = (KEYDIFF3D_AP_preferences,)


def allowed_backend_url(context: bpy.types.Context) -> str:
    """The preferences' backend URL, normalised ("127.0.0.1:8765" -> "http://127.0.0.1:8765"); a URL
    that is not on this computer is refused while Blender's online access is off."""
    raw = get_preferences(context).backend_url
    try:
        url = normalise_backend_url(raw)
    except BadBackendUrl as error:
        raise BackendUnreachable(f"{error}.") from None
    if not is_loopback(url) and not bpy.app.online_access:
        raise BackendUnreachable(
            f"The backend {url} is not on this computer and Blender's online access is off; "
            "allow online access in Preferences > System or run a local backend with `keydiff3d serve`."
        )
    return url
