"""CPU time of processes and threads from Linux /proc, for the benchmarks' CPU-per-message figures (they run on
this machine beside the broker and PostgreSQL, and name each one's share)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# A JVM's JIT compiler threads under this share of a core over a warm-up round: it has compiled its hot paths
# (a fresh broker's take a quarter of a core for a minute or more, which a broker in service has long done with).
JIT_SETTLED = 0.05


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


class CompilerLoad:
    """The share of a core a JVM's JIT compiler threads used between `start` and `share`."""

    def __init__(self, jvm: int) -> None:
        self.jvm = jvm
        self.present = compiler_cpu_seconds(jvm) is not None  # False: the pid is not a JVM's
        self._began = (0.0, time.monotonic())

    def start(self) -> None:
        self._began = (compiler_cpu_seconds(self.jvm) or 0.0, time.monotonic())

    def share(self) -> float:
        seconds, at = self._began
        return ((compiler_cpu_seconds(self.jvm) or 0.0) - seconds) / (time.monotonic() - at)


class CpuMeter:
    """CPU time spent over one phase of a benchmark, per message: by each named group of processes, by each named
    process tree (a root with its descendants: PostgreSQL's postmaster and backends) and by this process."""

    def __init__(self, processes: Mapping[str, Sequence[int]], trees: Mapping[str, int], this: str) -> None:
        self._processes, self._trees, self._this = processes, trees, this
        self._began = self._read()

    def _read(self) -> dict[str, float]:
        return ({name: sum(map(cpu_seconds, pids)) for name, pids in self._processes.items()}
                | {name: tree_cpu_seconds(pid) for name, pid in self._trees.items()}
                | {self._this: time.process_time()})

    def per_message(self, messages: int) -> str:
        spent = {name: seconds - self._began[name] for name, seconds in self._read().items()}
        total = sum(spent.values()) / messages * 1000
        return ", ".join(f"{name} {seconds / messages * 1000:.2f} ms" for name, seconds in spent.items()) + (
            f"; in all {total:.2f} ms")
