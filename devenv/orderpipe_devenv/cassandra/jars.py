"""Cassandra's jars: resolved once from Maven Central into a cache outside the repository."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from orderpipe_devenv import maven_jars
from orderpipe_devenv.cache import cache_root
from orderpipe_devenv.cassandra.errors import JarFetchError
from orderpipe_devenv.maven_jars import FetchResult

log = logging.getLogger(__name__)

CASSANDRA_VERSION = "5.0.8"
CASSANDRA_ARTIFACT = "cassandra-all"


def jar_dir(version: str = CASSANDRA_VERSION) -> Path:
    return cache_root() / "cassandra" / version / "lib"


def _artifact(version: str) -> maven_jars.Artifact:
    return maven_jars.Artifact("org.apache.cassandra", CASSANDRA_ARTIFACT, version)


def jars_ready(version: str = CASSANDRA_VERSION) -> bool:
    """True when a previous fetch of `version` completed (its marker is written last, then renamed in)."""
    return maven_jars.jars_ready(_artifact(version), jar_dir(version))


def fetch_jars(
    version: str = CASSANDRA_VERSION, *, progress: Callable[[str], None] | None = None
) -> FetchResult:
    """Make sure the runtime jars of `version` are in the cache; download them if not (atomic, locked)."""
    try:
        result = maven_jars.fetch_runtime_jars(_artifact(version), jar_dir(version), progress=progress)
    except maven_jars.MavenFetchError as error:
        raise JarFetchError(str(error)) from error
    if result.downloaded:
        log.info(
            "fetched cassandra %s: %d jars, %.0f MB in %.1f s into %s",
            version,
            result.jar_count,
            result.total_bytes / 1e6,
            result.seconds,
            result.lib_dir,
        )
    return result
