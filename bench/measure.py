"""Measure a process honestly: CPU of it and its children, peak RSS sampled over the run.

Figures come from /proc (Linux), so the parse workers a phase starts (and their forkserver)
are counted with it and
the feed farm (a different process tree) is not.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from pathlib import Path
from types import TracebackType

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_RELIST = 10


def children(pid: int | None = None) -> list[int]:
    """Return the pids of the live children of `pid` (default: this process)."""
    pid = pid or os.getpid()
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return found
    # Each thread lists the children it started (CONFIG_PROC_CHILDREN); cheap, unlike a scan.
    for task in tasks:
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int | None = None) -> list[int]:
    """Return the pids of the live children of `pid`, their children, and so on (parse
    workers fork from a forkserver, a child of this process)."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        found.extend(todo)
        todo = [grandchild for child in todo for grandchild in children(child)]
    return found


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of `pid` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    """Return the resident set size of `pid` in bytes (0 if it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * _PAGE


class ProcessTreeMeter:
    """CPU of this process and its children, and the peak of their summed RSS.

    Children's CPU is read while they live (a pool's workers live across rounds), so
    `cpu()` is only exact between calls while the set of children is stable; dead children's
    last reading is kept. The sampler thread's own CPU (reading /proc) is not counted in this
    process's (`cpu_main`): it is the meter's, not the product's.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_own_rss = 0  # this process alone (the product; the rest is parse workers)
        self.last_rss = 0
        self.window_peak = 0  # since the last reset_window(): the peak of one round
        self.peak_children = 0
        self._child_cpu: dict[int, float] = {}
        self._meter_cpu = 0.0  # the sampler thread's own CPU seconds
        # The process tree, listed again every `_RELIST` samples (and by `cpu()`): listing it
        # reads a file per thread, which the sampler would otherwise do 10 times a second,
        # holding the GIL the measured process's event loop needs.
        self._kids: list[int] = []
        self._samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProcessTreeMeter:
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample_once()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.thread_time()
            self.sample_once(relist=False)
            self._meter_cpu += time.thread_time() - started

    def sample_once(self, relist: bool = True) -> None:
        """Take one RSS and CPU reading now (`relist`: of the process tree listed anew)."""
        self._samples += 1
        if relist or self._samples % _RELIST == 0:
            self._kids = descendants()
        kids = self._kids
        total = own = rss_bytes(os.getpid())
        self.peak_own_rss = max(self.peak_own_rss, own)
        for pid in kids:
            total += rss_bytes(pid)
            cpu = cpu_seconds(pid)
            if cpu:
                self._child_cpu[pid] = max(cpu, self._child_cpu.get(pid, 0.0))
        self.peak_rss = max(self.peak_rss, total)
        self.window_peak = max(self.window_peak, total)
        self.last_rss = total
        self.peak_children = max(self.peak_children, len(kids))

    def reset_window(self) -> None:
        """Start a new window for `window_peak` (e.g. at the start of a round)."""
        self.window_peak = 0

    def cpu(self) -> float:
        """Return CPU seconds used so far by this process and its children."""
        self.sample_once()
        return self.cpu_main() + sum(self._child_cpu.values())

    def cpu_main(self) -> float:
        """Return CPU seconds used so far by this process (all its threads but the meter's)."""
        return time.process_time() - self._meter_cpu


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    """Return the median, 0 for no values."""
    return statistics.median(values) if values else 0.0


class GcClock:
    """Seconds this process spends in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._began = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._tick)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.full += info["generation"] == 2
