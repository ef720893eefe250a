# SPDX-License-Identifier: GPL-3.0-or-later
"""The window timer, progress cursor and status text of a modal operator that watches a worker
(a backend job, a download, a weight solve on a thread): one place for starting, showing and
ending them, so no operator can leave a timer or the progress cursor behind."""

from __future__ import annotations

import bpy

TIMER_STEP_S = 0.1  # how often a modal operator looks at its worker


def start_watching(operator: bpy.types.Operator, context: bpy.types.Context):
    """Begin the progress cursor, add the window timer and the modal handler; returns the timer."""
    wm = context.window_manager
    wm.progress_begin(0, 100)
    timer = wm.event_timer_add(TIMER_STEP_S, window=context.window)
    wm.modal_handler_add(operator)
    return timer


def show_progress(context: bpy.types.Context, fraction: float, text: str) -> None:
    """`fraction` (0-1) on the progress cursor, `text` in the status bar."""
    context.window_manager.progress_update(int(100 * fraction))
    if context.workspace is not None:
        context.workspace.status_text_set(text)


def stop_watching(context: bpy.types.Context, timer) -> None:
    """Remove the timer (None: already removed), end the progress cursor, clear the status text."""
    if timer is not None:
        context.window_manager.event_timer_remove(timer)
        context.window_manager.progress_end()
    if context.workspace is not None:
        context.workspace.status_text_set(None)
