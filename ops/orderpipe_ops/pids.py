"""Is a process still running: one answer for the operator tools and the local environment."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None when the process is gone or unreadable."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name, in parentheses) may itself hold spaces and parentheses.
    return status.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] != ["Z"]


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (/proc/<pid>/stat field 22); None if gone.

    With the pid it names one process: a pid the kernel gives to a new process later has another.
    """
    fields = _stat_fields(pid)
    try:
        return int(fields[22 - 3]) if fields is not None else None  # fields start at field 3
    except (IndexError, ValueError):
        return None


def same_process(pid: int, started: int | None) -> bool:
    """True while the process `pid` that started at `started` runs (None: the pid alone decides)."""
    if not pid_alive(pid):
        return False
    return started is None or start_time(pid) == started
