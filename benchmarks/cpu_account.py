"""Benchmark: where a whole run's CPU goes, per photo: each thread, each part of the work.

``palette-dask run DIR -k 8 -o STORE`` on the default cluster over
``--photos`` 640 x 480 JPEGs of benchmarks/scaling.py, as the user runs it
(start, imports, cluster, both passes, the store, exit), measured three ways
at once:

- **CPU by thread**: every thread of the process tree (on at most 4 cores the
  default cluster is one process: the driver's main thread, the event loop
  that the scheduler, the worker and the client share, the worker's task
  threads, dask's profiler and offload threads), sampled every 0.1 s from
  ``/proc`` (psutil): user + system seconds, and the seconds each waited
  for a core (``schedstat``: the others' load, and our own threads);
- **what each thread did**: py-spy (``--threads --nonblocking``, no
  ``--idle``) over one more run; each thread's CPU is split by its samples'
  share in each part (:data:`PARTS`: decode, sample kernel, count kernel,
  pickling, store writes, scheduler, worker, imports, ...), leaving out the
  samples py-spy took of a thread waiting (its innermost frame a
  condition's wait or epoll: :data:`WAITS`). A thread waiting for the GIL
  is not told apart from one running: its samples count where it waits;
- **phases**: the run's progress lines on stderr, timed as they come, split
  the run into start-up, headers, sample, fit, counting and end; for each,
  its wall seconds and how many cores the run kept busy.

With ``--repeats`` N, runs without py-spy come first (alternated with
the plain decode): their CPU and wall seconds (medians) are the figures; the profiled run gives
the shares, scaled to their CPU. The plain decode (a pool of one process per core decoding every
file with Pillow, benchmarks/photos.py's floor) is measured the same way.

``--source DIR`` runs the palette_dask package in DIR (a clean ``git archive`` of a
commit: others' uncommitted work left out) instead of the installed one;
named twice or more (``DIR:NAME=VALUE`` adds environment variables), their
runs alternate, and their stores are compared array by array (a change
that must not change results: before and after in one run).

    .venv/bin/python benchmarks/cpu_account.py [--photos 8000] [--repeats 1] [--rate 100] [--dir /tmp/palette-dask-scaling] [--source DIR ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

#: Parts of the work, each recognised in a py-spy stack (frames as ``function (file:line)``), tried in
#: this order: the first part one of whose patterns is in some frame of the stack takes the sample.
PARTS = [
    ("imports", ("importlib._bootstrap", "<frozen importlib", "_find_and_load")),
    ("numba: loading compiled kernels", ("numba/core/", "numba/np/", "numba/typed")),
    (
        "decode (Pillow)",
        (
            "decode_bytes (",
            "_decode_8bit (",
            "read_pillow (",
            "_pillow_pixels (",
            "load (PIL/",
            "PIL/ImageFile.py",
            "PIL/JpegImagePlugin.py",
        ),
    ),
    ("pickling, (de)serialising", ("pickle", "distributed/protocol/", "msgpack")),
    ("store writes (zarr)", ("zarr/", "numcodecs/", "outputs/store/", "palette_dask/outputs/")),
    ("count kernel", ("palette_dask/kernels/count.py", "palette_dask/kernels/histogram.py")),
    ("sample kernel", ("palette_dask/kernels/sample.py",)),
    ("fit (dask-ml, the polish)", ("dask_ml/", "sklearn/", "palette_dask/kernels/fit.py")),
    ("pixels, colour (other kernels)", ("palette_dask/kernels/",)),
    ("headers, file reads", ("palette_dask/inputs/",)),
    ("driver's Python (palette_dask/run, cli)", ("palette_dask/run/", "palette_dask/cli", "palette_dask/")),
    (
        "dask graphs (dask.array, delayed)",
        (
            "dask/array",
            "dask/delayed",
            "dask/base",
            "dask/highlevelgraph",
            "dask/_task_spec",
            "dask/core",
            "dask/utils",
        ),
    ),
    ("scheduler", ("distributed/scheduler.py", "distributed/stealing.py", "distributed/active_memory")),
    ("worker (task bookkeeping)", ("distributed/worker", "distributed/nanny.py")),
    ("client", ("distributed/client.py", "distributed/queues.py")),
    ("dask's profiler (10 ms samples)", ("distributed/profile.py",)),
    (
        "event loop, comms (tornado, asyncio)",
        (
            "tornado/",
            "asyncio/",
            "distributed/comm",
            "distributed/core.py",
            "distributed/batched.py",
            "distributed/utils.py",
        ),
    ),
    ("cluster start and close", ("distributed/deploy", "distributed/node.py", "distributed/http")),
]
#: Innermost Python frames of a thread that waits (a lock, a condition, epoll): not CPU.
WAITS = {
    "Condition.wait", "Event.wait", "EpollSelector.select", "BaseSelector.select", "Thread.join",
    "Thread._wait_for_tstate_lock", "Queue.get", "SimpleQueue.get", "Future.result", "wait",
}  # fmt: skip
IDLE = "idle (waiting)"
#: Thread roles, by the Python name py-spy reads.
ROLES = [
    ("driver (main thread)", re.compile(r"^MainThread$")),
    ("tasks (worker threads)", re.compile(r"Dask-Default-Threads")),
    (
        "event loop (scheduler, worker, client)",
        re.compile(r"^(IO loop|AsyncProcess|Thread-\d+ \(run_loop\))"),
    ),
    ("worker processes' event loops", re.compile(r"^MainThread of a worker process$")),
    ("dask's profiler thread", re.compile(r"^Profile")),
    ("offload thread ((de)serialising)", re.compile(r"^Dask-Offload")),
]
#: The progress lines (their first words) that open each phase of a run.
PHASES = [
    ("start-up: imports, plan, cluster", None),
    ("first pass: headers (decode and sample too where every image is sampled)", "reading "),
    ("sample: the images chosen decoded", "sampling "),
    ("fit", "fitting "),
    ("counting pass", "counting the pixels"),
    ("end: store finished, report, cluster closed", "done"),
]


def schedstat(pid: int, tid: int) -> tuple[float, float]:
    """Seconds a thread ran and waited on a run queue (``/proc/PID/task/TID/schedstat``)."""
    try:
        ran, waited, _ = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


class TreeSampler:
    """Every ``interval`` seconds, each process and thread of ``pid``'s tree: CPU, run-queue waits, names.

    A thread's last sample stands for it (a thread that ends loses at most
    one interval); a process's own totals include its ended threads.
    """

    def __init__(self, pid: int, *, skip: int | None = None, interval: float = 0.1):
        self.pid, self.skip, self.interval = pid, skip, interval
        self.threads: dict[tuple[int, int], tuple[float, float, float]] = {}  # (pid, tid): cpu, ran, waited
        self.processes: dict[int, tuple[str, float]] = {}  # pid: name, user + system (its threads, ended too)
        self.timeline: list[tuple[float, float]] = []  # (perf_counter, CPU of the tree)
        self.history: dict[tuple[int, int], list] = collections.defaultdict(list)  # (t, cpu, ran, waited)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for process in tree:
            try:
                times = process.cpu_times()
                threads = process.threads()
                name = " ".join(process.cmdline()[:3])
            except psutil.Error:
                continue
            if process.pid == self.skip:  # the profiler
                continue
            self.processes[process.pid] = (name, times.user + times.system)
            for thread in threads:
                ran, waited = schedstat(process.pid, thread.id)
                self.threads[process.pid, thread.id] = (thread.user_time + thread.system_time, ran, waited)
                self.history[process.pid, thread.id].append((time.perf_counter(), ran, waited))
        self.timeline.append((time.perf_counter(), sum(cpu for _, cpu in self.processes.values())))


def run_measured(argv: list[str], *, profile: str | None = None, rate: int = 100, source: str = "") -> dict:
    """Run ``argv`` (under py-spy into ``profile`` when named): wall, CPU, threads, phases.

    With ``source``, a folder holding a ``palette_dask`` package, that package
    is imported instead of the installed one (``PYTHONPATH``).
    """
    folder, *settings = source.split(":") if source else [""]
    env = {**os.environ, **dict(setting.split("=", 1) for setting in settings)}
    if folder:
        env["PYTHONPATH"] = folder
    if profile:
        spy = str(Path(sys.executable).parent / "py-spy")
        if not os.path.exists(spy):
            raise SystemExit(f"{spy}: not found: pip install py-spy (pyproject's bench extra)")
        argv = [spy, "record", "--subprocesses", "--threads", "--nonblocking", "--format", "raw", "-r", str(rate),
                "-o", profile, "--", *argv]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[tuple[float, str]] = []

    def read_stderr():
        for line in process.stderr:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    target = process.pid
    if profile:  # the run is py-spy's child
        for _ in range(200):
            children = psutil.Process(process.pid).children()
            if children:
                target = children[0].pid
                break
            time.sleep(0.01)
    sampler = TreeSampler(process.pid, skip=process.pid if profile else None).start()
    process.wait()
    wall = time.perf_counter() - start
    sampler.stop()
    reader.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode not in (0, 3):
        raise RuntimeError(f"{argv[:4]} exited {process.returncode}: {lines[-3:]}")
    # py-spy does not pass its child's rusage on: a profiled run's CPU is its processes' last sample
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if profile:
        cpu = sum(seconds for _, seconds in sampler.processes.values())
    return {
        "wall": wall, "cpu": cpu, "start": start, "threads": sampler.threads, "processes": sampler.processes,
        "timeline": [(t - start, c) for t, c in sampler.timeline], "lines": lines, "pid": target,
        "history": {key: [(t - start, r, w) for t, r, w in v] for key, v in sampler.history.items()},
    }  # fmt: skip


def read_profile(path: str, root: int | None = None) -> dict[int, tuple[str, collections.Counter]]:
    """py-spy's raw output: per thread id, its Python name and its samples counted by part.

    With ``--subprocesses`` each line starts with its processes (``process PID:"command";``, the
    innermost last); a main thread of a process other than ``root`` (a worker process's, which
    runs its event loop) is named ``MainThread of a worker process``.
    """
    threads: dict[int, list] = {}
    pattern = re.compile(r'^((?:process \d+:"[^"]*";)*)thread \((\d+)\)(?:: ([^;]*))?;?(.*) (\d+)$')
    for line in Path(path).read_text().splitlines():
        match = pattern.match(line)
        if not match:
            continue
        pids = re.findall(r"process (\d+):", match[1])
        tid, name, stack, count = int(match[2]), match[3] or "", match[4], int(match[5])
        if name == "MainThread" and root is not None and pids and int(pids[-1]) != root:
            name = "MainThread of a worker process"
        entry = threads.setdefault(tid, ["", collections.Counter()])
        entry[0] = name or entry[0]  # a thread's first samples may come before it has its name
        entry[1][part_of(stack.split(";"))] += count
    return {tid: (name, parts) for tid, (name, parts) in threads.items()}


def part_of(frames: list[str]) -> str:
    """The part of the work a sample's stack is in (:data:`PARTS`, first match), else ``other``.

    A sample whose innermost Python frame waits (:data:`WAITS`) is ``IDLE``:
    py-spy counts some of those as running, the CPU is not theirs.
    """
    if frames and frames[-1].split(" (")[0] in WAITS:
        return IDLE
    for part, patterns in PARTS:
        if any(pattern in frame for frame in frames for pattern in patterns):
            return part
    return "other (threading, queues)"


def role_of(name: str) -> str:
    """A thread's role from its Python name (:data:`ROLES`)."""
    for role, pattern in ROLES:
        if pattern.search(name):
            return role
    stem = re.sub(r"[-_ ]?\d+.*$", "", name) or "unnamed"
    return f"other threads ({stem})"


def account(run: dict, profile: dict[int, tuple[str, collections.Counter]], photos: int, scale: float = 1.0):
    """ms of CPU per photo, by part and by thread role (``scale``: the clean runs' CPU over this one's)."""
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    waits: collections.Counter = collections.Counter()
    seen = 0.0
    for (_, tid), (cpu, _, waited) in run["threads"].items():
        name, parts = profile.get(tid, ("", collections.Counter()))
        role = role_of(name) if name else "threads py-spy did not see (C threads)"
        seen += cpu
        waits[role] += waited
        parts = collections.Counter({part: n for part, n in parts.items() if part != IDLE})
        total = sum(parts.values())
        if not total:
            table[role]["not sampled"] += cpu
            continue
        for part, count in parts.items():
            table[role][part] += cpu * count / total
    ended = sum(cpu for _, cpu in run["processes"].values()) - seen
    table["threads that ended between samples"]["not sampled"] += max(ended, 0.0)
    per_photo = 1000 * scale / photos
    return (
        {role: {part: v * per_photo for part, v in parts.items()} for role, parts in table.items()},
        {role: v * 1000 / photos for role, v in waits.items()},
    )


def phases(run: dict, roles: dict[int, str]) -> list[tuple[str, float, float, float, dict]]:
    """Each phase's (name, start, wall seconds, cores busy, per role: running, waiting for a core, asleep).

    The phases open at the run's progress lines; cores busy is the tree's
    CPU over the wall (the CPU timeline); a role's seconds sum its threads'
    (``schedstat``) over the part of the phase each was alive: asleep is
    alive less running and waiting for a core (no work, or a lock: the GIL).
    """
    marks = [(PHASES[0][0], 0.0)]
    for name, prefix in PHASES[1:]:
        found = [t for t, line in run["lines"] if line.startswith(f"palette-dask: {prefix}")]
        if found:
            marks.append((name, found[0]))
    marks.append(("", run["wall"]))
    timeline = [(0.0, 0.0), *run["timeline"], (run["wall"], run["cpu"])]

    def at(series, t):  # a cumulative series' value at t, interpolated (0 before it starts)
        if t <= series[0][0]:
            return tuple(0.0 for _ in series[0][1:])
        for before, after in zip(series, series[1:]):
            if before[0] <= t <= after[0]:
                share = (t - before[0]) / max(after[0] - before[0], 1e-9)
                return tuple(b + (a - b) * share for b, a in zip(before[1:], after[1:]))
        return series[-1][1:]

    rows = []
    for (name, t0), (_, t1) in zip(marks, marks[1:]):
        wall = t1 - t0
        busy = (at(timeline, t1)[0] - at(timeline, t0)[0]) / wall if wall > 0 else 0.0
        by_role: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
        for (_, tid), series in run["history"].items():
            alive = min(t1, series[-1][0]) - max(t0, series[0][0])
            if alive <= 0:
                continue
            (r0, w0), (r1, w1) = at(series, t0), at(series, t1)
            seconds = by_role[roles.get(tid, "threads py-spy did not see (C threads)")]
            seconds[0] += r1 - r0
            seconds[1] += w1 - w0
            seconds[2] += max(alive - (r1 - r0) - (w1 - w0), 0.0)
        rows.append((name, t0, wall, busy, dict(by_role)))
    return rows


def same_store(first: str, second: str) -> bool:
    """Whether two stores hold the same arrays, element for element, and the same attributes but ``created``."""
    import numpy as np
    import zarr

    a, b = zarr.open_group(first, mode="r"), zarr.open_group(second, mode="r")
    attrs = [{k: v for k, v in group.attrs.items() if k != "created"} for group in (a, b)]
    if attrs[0] != attrs[1] or sorted(a.array_keys()) != sorted(b.array_keys()):
        return False
    return all(np.array_equal(a[name][...], b[name][...]) for name in a.array_keys())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8000)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs without py-spy (their medians are the figures)"
    )
    parser.add_argument("--rate", type=int, default=100, help="py-spy's samples a second")
    parser.add_argument("--dir", default="/tmp/palette-dask-scaling")
    parser.add_argument("--extra", default="", help="more options for palette-dask run, space-separated")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        help="DIR[:NAME=VALUE...]: a folder holding a palette_dask package to run instead of the installed "
        "one (a clean "
        "`git archive` of a commit); named twice or more, their runs alternate, the first is profiled, "
        "and their stores are compared array by array",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from photos import FLOOR
    from scaling import build_collection

    folder = build_collection(Path(args.dir), args.photos)
    command = str(Path(sys.executable).parent / "palette-dask")
    sources = args.source or [""]
    stores = [f"{args.dir}/cpu-account-{i}.zarr" for i in range(len(sources))]
    runs = [
        [command, "run", str(folder), "-k", "8", "-o", store, "--overwrite", *args.extra.split()]
        for store in stores
    ]
    ours = runs[0]
    floor = [sys.executable, "-c", FLOOR, str(folder)]
    cores, load_start = os.cpu_count(), os.getloadavg()
    run_measured(floor)  # the files into the page cache
    for argv, source in zip(runs, sources):  # numba's caches of each source's folder filled
        if source.split(":")[0] and source.split(":")[0] not in [
            s.split(":")[0] for s in sources[: sources.index(source)]
        ]:
            run_measured(argv, source=source)
    floors, measured = [], [[] for _ in sources]
    for _ in range(args.repeats):
        floors.append(run_measured(floor))
        line = f"floor {floors[-1]['wall']:.1f} s, {floors[-1]['cpu']:.1f} s CPU"
        for argv, source, rows in zip(runs, sources, measured):
            rows.append(run_measured(argv, source=source))
            line += f"; {source or 'installed'}: {rows[-1]['wall']:.1f} s, {rows[-1]['cpu']:.1f} s CPU"
        print(line, flush=True)
    if len(sources) > 1:
        n = args.photos
        print(
            "\n| source | wall (s), median | CPU ms a photo, median | runs (wall s / CPU s) |\n|---|---|---|---|"
        )
        for source, rows in zip(sources, measured):
            walls, cpus = [r["wall"] for r in rows], [r["cpu"] for r in rows]
            each = ", ".join(f"{w:.1f} / {c:.1f}" for w, c in zip(walls, cpus))
            print(
                f"| {source} | {statistics.median(walls):.1f} | {1000 * statistics.median(cpus) / n:.2f} | {each} |"
            )
        print(
            f"\nstores equal to {stores[0]}: "
            + ", ".join(str(same_store(stores[0], other)) for other in stores[1:])
        )
    clean = measured[0]
    raw = f"{args.dir}/cpu-account.pyspy.txt"
    profiled = run_measured(ours, profile=raw, rate=args.rate, source=sources[0])
    print(f"profiled run {profiled['wall']:.1f} s, {profiled['cpu']:.1f} s CPU (py-spy's own not counted)")
    wall = statistics.median(r["wall"] for r in clean) if clean else profiled["wall"]
    cpu = statistics.median(r["cpu"] for r in clean) if clean else profiled["cpu"]
    profile = read_profile(raw, root=profiled["pid"])
    parts, waits = account(profiled, profile, args.photos, scale=cpu / profiled["cpu"])
    n, load = args.photos, os.getloadavg()
    print(f"\n`palette-dask run DIR -k 8 -o STORE{' ' + args.extra if args.extra else ''}`, {n:,} photos "
          f"640 x 480, {cores} cores, load average (1, 5, 15 min) at the start {load_start[0]:.1f} {load_start[1]:.1f} {load_start[2]:.1f}, "
          f"at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")  # fmt: skip
    if floors:
        f_wall, f_cpu = (
            statistics.median(r["wall"] for r in floors),
            statistics.median(r["cpu"] for r in floors),
        )
        print(f"plain decode (floor): {f_wall:.1f} s, {1000 * f_cpu / n:.2f} ms CPU a photo, "
              f"{1000 * f_wall * cores / n:.2f} ms of cores a photo (wall x {cores} / photos)")  # fmt: skip
    print(f"palette-dask run: {wall:.1f} s, {1000 * cpu / n:.2f} ms CPU a photo, "
          f"{1000 * wall * cores / n:.2f} ms of cores a photo (wall x {cores} / photos); "
          f"medians of {len(clean) or 1}\n")  # fmt: skip
    roles = sorted(parts, key=lambda r: -sum(parts[r].values()))
    totals = collections.Counter()
    for role in roles:
        totals.update(parts[role])
    print("| part | " + " | ".join(roles) + " | all threads |")
    print("|---|" + "---|" * (len(roles) + 1))
    for part, _ in sorted(totals.items(), key=lambda item: -item[1]):
        cells = [f"{parts[role].get(part, 0.0):.2f}" if parts[role].get(part) else "" for role in roles]
        print(f"| {part} | " + " | ".join(cells) + f" | **{totals[part]:.2f}** |")
    sums = [f"{sum(parts[role].values()):.2f}" for role in roles]
    print("| **CPU, ms a photo** | " + " | ".join(sums) + f" | **{sum(totals.values()):.2f}** |")
    print(
        "| waiting for a core (run queue, the profiled run) | "
        + " | ".join(f"{waits.get(r, 0.0):.2f}" for r in roles)
        + " | |"
    )
    profile_roles = {tid: role_of(name) for tid, (name, _) in profile.items()}
    shown = [role for role, _ in ROLES[:3]]
    print(
        "\n| phase (profiled run) | starts at (s) | wall (s) | cores busy | ms of cores a photo | CPU ms a photo | "
        + " | ".join(f"{role}: running / waiting for a core / asleep (s)" for role in shown)
        + " |"
    )
    print("|---|---|---|---|---|---|" + "---|" * len(shown))
    for name, t0, seconds, busy, by_role in phases(profiled, profile_roles):
        cells = [" / ".join(f"{v:.1f}" for v in by_role.get(role, (0.0, 0.0, 0.0))) for role in shown]
        print(
            f"| {name} | {t0:.1f} | {seconds:.1f} | {busy:.2f} | {1000 * seconds * cores / n:.2f} "
            f"| {1000 * seconds * busy / n:.2f} | " + " | ".join(cells) + " |"
        )


if __name__ == "__main__":
    main()
