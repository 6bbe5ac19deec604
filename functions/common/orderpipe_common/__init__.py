"""Shared by every function (bundled into each)."""

import os

# No pydantic plugins are used: without this, the first model class scans the entry points of every
# distribution in the bundle for them (~10 % of the writer's cold init, docs/benchmarks.md).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
