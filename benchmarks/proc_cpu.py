"""CPU seconds of this process and its descendants, by role, from /proc (Linux)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS  # ppid, utime + stime


def _role(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if pid == os.getpid():
        return "gateway_event_source_and_loadgen"
    if "CassandraDaemon" in cmdline:
        return "cassandra"
    if "org.elasticmq.server.Main" in cmdline:
        return "elasticmq"
    if "moto.server" in cmdline:
        return "moto"
    if "multiprocessing" in cmdline:
        return "function_workers"
    return "other"


def descendants_cpu() -> dict[int, tuple[str, float]]:
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    root = os.getpid()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        children[ppid].append(pid)
    result, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            result[pid] = (_role(pid), stats[pid][1])
        stack.extend(children.get(pid, []))
    return result


def cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for pid, (role, seconds) in after.items():
        totals[role] += seconds - (before[pid][1] if pid in before else 0.0)
    return {role: round(seconds, 1) for role, seconds in sorted(totals.items())}


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds these processes used so far (0 for a pid that is gone)."""
    total = 0.0
    for pid in pids:
        stat = _stat(pid)
        total += stat[1] if stat is not None else 0.0
    return total
