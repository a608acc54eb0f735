"""Where wattlab's own files are: packaged profiles, the logs directory, per-user state."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "profiles"
AGENTS_DIR = REPO_ROOT / "agents"


def logs_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """--logs DIR, else $WATTLAB_LOGS, else ./logs of the current directory (like MLflow's mlruns/)."""
    if override:
        return Path(override)
    env = os.environ.get("WATTLAB_LOGS")
    return Path(env) if env else Path.cwd() / "logs"


def user_cache_dir() -> Path:
    """Per-user cache for the console (built agent zipapps, accepted host keys are NOT here)."""
    env = os.environ.get("WATTLAB_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("wattlab"))
