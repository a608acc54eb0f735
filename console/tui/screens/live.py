"""The base of screens that show the live fleet: the app hands them each new snapshot."""

from __future__ import annotations

from textual.screen import Screen

from console.state import DeviceView


class LiveScreen(Screen[None]):
    """A screen the app refreshes once per tick, only while it is the visible screen.

    `ready` turns True at the end of the subclass's on_mount: a tick can fire between
    push_screen and compose, and must not draw into widgets that do not exist yet.
    """

    ready = False

    def show_views(self, views: list[DeviceView]) -> None:
        """Draw the latest snapshot (called on the UI thread, inside one batch update)."""
