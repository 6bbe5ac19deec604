"""Where the local environment keeps what it downloads (jars, binaries) and hand-started state."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$ORDERPIPE_CACHE_DIR`, else `~/.cache/orderpipe` (outside the repository; survives clones)."""
    configured = os.environ.get("ORDERPIPE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "orderpipe"
