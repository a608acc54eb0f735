"""The base of screens that show the live fleet: the app hands them each new snapshot."""

from __future__ import annotations

from textual.screen import Screen

from console.state import DeviceView


class LiveScreen(Screen[None]):
    """A screen the app refreshes once per tick, only while it is the visible screen."""

    def show_views(self, views: list[DeviceView]) -> None:
        """Draw the latest snapshot (called on the UI thread, inside one batch update)."""
