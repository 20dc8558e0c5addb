"""Benchmark: photos over http from a server that fails now and then, against the same server failing never.

``--photos`` crops of scikit-image's photos (half PNG, half JPEG) served over
http by ``tests/servers.py``'s :class:`FaultHandler` on 127.0.0.1, which
answers every 4th request with 503 (``Retry-After: 0``) and cuts every 9th
body in half (the issue's rates), and counts what it injected and what it
was asked. Runs with faults and without alternate, ``--repeats`` each,
through the API on a LocalCluster of 2 worker processes (warmed up by a first,
unmeasured run); each faulty run's store is checked equal to the clean one's.
Retried: the requests a faulty run made beyond a clean run's (each fault is
one more try).

    .venv/bin/python benchmarks/faults.py [--photos 150] [--repeats 3] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import every_array, photo_crops, write_png  # noqa: E402
from servers import fault_handler, http_server  # noqa: E402

RATES = {"503": 4, "cut": 9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", default=None, help="append the table to this file")
    args = parser.parse_args()

    import zarr
    from PIL import Image

    from palette_dask import connect, extract_palette

    root = Path(tempfile.mkdtemp(prefix="palette-faults-"))
    names = []
    for i, crop in enumerate(photo_crops(args.photos, seed=7, corners=150, sides=(150, 360))):
        name = f"p{i:04d}.{'jpg' if i % 2 else 'png'}"
        if i % 2:
            Image.fromarray(crop).save(root / name, quality=90)
        else:
            write_png(root / name, crop)
        names.append(name)

    def run(client, every: dict, store: Path) -> dict:
        handler = fault_handler(every)
        with http_server(root, handler) as (url, served):
            start = time.perf_counter()
            result = extract_palette([f"{url}/{n}" for n in names], 6, store=store, client=client, seed=1)
            seconds = time.perf_counter() - start
        arrays = every_array(zarr.open_group(store, mode="r"))
        arrays.pop("image_names")
        return {
            "seconds": seconds,
            "requests": sum(served.requests.values()),
            "injected": dict(served.injected),
            "failed": len(result.failures),
            "arrays": arrays,
        }

    runs: dict[str, list] = {"without faults": [], "with faults": []}
    with connect(processes=True, n_workers=2, threads_per_worker=1) as client:
        run(client, {}, root / "warm.zarr")
        for repeat in range(args.repeats):
            order = ["without faults", "with faults"] if repeat % 2 == 0 else ["with faults", "without faults"]
            for kind in order:
                store = root / f"{kind.replace(' ', '-')}-{repeat}.zarr"
                runs[kind].append(run(client, RATES if kind == "with faults" else {}, store))
    clean = runs["without faults"][0]["arrays"]
    for outcome in runs["with faults"] + runs["without faults"]:
        assert outcome["arrays"].keys() == clean.keys()
        for name, array in clean.items():
            np.testing.assert_array_equal(outcome["arrays"][name], array, err_msg=name)
    rows = []
    for kind, outcomes in runs.items():
        injected = [sum(o["injected"].values()) for o in outcomes]
        by_kind = {f: statistics.median(o["injected"].get(f, 0) for o in outcomes) for f in RATES}
        retried = [o["requests"] - outcomes_clean["requests"] for o, outcomes_clean in
                   zip(outcomes, runs["without faults"])]  # fmt: skip
        rows.append(
            f"| {kind} | {statistics.median(o['requests'] for o in outcomes):.0f} "
            f"| {statistics.median(injected):.0f} ({by_kind['503']:.0f} 503, {by_kind['cut']:.0f} cut) "
            f"| {statistics.median(retried):.0f} | {max(o['failed'] for o in outcomes)} "
            f"| {statistics.median(o['seconds'] for o in outcomes):.1f} |"
        )
    table = (
        f"{args.photos} photos over http, k=6, LocalCluster of 2 worker processes, medians of "
        f"{args.repeats} alternated runs; every store equal to the first clean run's\n\n"
        "| server | requests | faults injected | retried | images failed (most) | seconds |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    emit(table, args.write)


if __name__ == "__main__":
    main()
