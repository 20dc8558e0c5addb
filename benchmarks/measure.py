"""Measuring whole processes: wall time and the peak memory of the whole process tree."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def timed(command: list[str], *, ok=(0, 3), timeout: float | None = None) -> tuple[float | None, int, str]:
    """Wall seconds, peak tree RSS in bytes (sampled every 50 ms), and stdout of a command.

    A command still running after ``timeout`` seconds is killed with its
    whole process tree; its seconds are then None.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        stop.set()
        sampler.join()
        return None, peak, ""
    stop.set()
    sampler.join()
    elapsed = time.perf_counter() - start
    if process.returncode not in ok:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}")
    return elapsed, peak, out


def emit(table: str, results_file: str | None) -> None:
    """Print a results table, and append it to ``results_file`` when one is named."""
    print(table)
    if results_file:
        with open(results_file, "a") as handle:
            handle.write(table)


def alternated(
    contenders: dict[str, list[str]], repeats: int, after_round=None
) -> dict[str, tuple[float, float]]:
    """Run the commands in turn, ``repeats`` rounds (this VM drifts: compare within one run).

    Returns each contender's median seconds and median peak RSS of its tree
    in GiB; ``after_round()`` is called after each round (a check of the outputs).
    """
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, argv in contenders.items():
            seconds, peak, _ = timed(argv)
            rows[name].append((seconds, peak / 2**30))
            print(f"{name}: {seconds:.1f} s, peak {peak / 2**30:.2f} GiB", flush=True)
        if after_round is not None:
            after_round()
    return {name: tuple(statistics.median(v) for v in zip(*values)) for name, values in rows.items()}


def ratio_table(medians: dict[str, tuple[float, float]], against: dict[str, str]) -> str:
    """A markdown table of :func:`alternated`'s medians, with each one's ratio to the contenders ``against`` names."""
    head = " | ".join(f"vs {label}" for label in against)
    lines = [
        f"| contender | seconds | {head} | peak RSS of the tree (GiB) |",
        "|---|---|" + "---|" * len(against) + "---|",
    ]
    for name, (seconds, peak) in medians.items():
        ratios = " | ".join(f"{seconds / medians[reference][0]:.2f}x" for reference in against.values())
        lines.append(f"| {name} | {seconds:.1f} | {ratios} | {peak:.2f} |")
    return "\n".join(lines)
