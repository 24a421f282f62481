"""CPU time of processes and threads from Linux /proc, for the benchmarks' CPU-per-message figures (they run on
this machine beside the broker and PostgreSQL, and name each one's share)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def stat_cpu_seconds(stat: str) -> float:
    """User and system CPU time from a process's or thread's /proc stat line."""
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its living descendants (PostgreSQL: the postmaster and its backends)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    tree, grown = {root}, True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grown = bool(children)
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def compiler_cpu_seconds(jvm: int) -> float | None:
    """CPU time of a JVM's JIT compiler threads (named "C1 CompilerThread0" and so on); None if it has none (the
    pid is not a JVM's)."""
    times = []
    for stat in Path(f"/proc/{jvm}/task").glob("*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if "CompilerThre" in text[text.index("(") : text.rindex(")")]:
                times.append(stat_cpu_seconds(text))
    return sum(times) if times else None
