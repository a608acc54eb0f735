"""wattlab console: the operator side (CLI, TUI, fleet, transport, impact model, store, reports).

Only console.tui imports Textual or Rich; everything else is the headless core the CLI and the
TUI share.
"""

from agents import AGENT_VERSION as __version__

__all__ = ["__version__"]
