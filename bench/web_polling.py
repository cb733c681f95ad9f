"""Poll a running job's status from 100 concurrent clients for 30 seconds; report the latency.

Run from the repository root with a model directory written by `pandulce train`
(`make demo` writes models/demo):

    python bench/web_polling.py --model models/demo

The bench starts `pandulce serve` and one `pandulce worker`. It submits the
photo set as one job, repeated until the job has at least --job-photos photos
so that it is still running when polling ends, and waits for the first chunk
to start. The pollers then run as threads of this process, a second process
on loopback. Each
poller sends GET /api/v1/jobs/<id> every --interval seconds, as the job page
does every second. Prints one JSON line with p50, p95, p99 and max latency in
milliseconds, the request rate, the errors, and the worker's classification
rate during the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.web_common import DATASET, REPO, bench_stack, describe_machine  # noqa: E402


def submit_job(stack, dataset: Path, minimum_photos: int) -> str:
    """Queue the photo set, repeated, as one job through the API; return its id."""
    import requests

    photos = sorted(dataset.rglob("*.jpg"))
    upload = requests.post(f"{stack.base_url}/api/v1/uploads", headers=stack.headers()).json()
    sent, batch_index = 0, 0
    while sent < minimum_photos:
        for start in range(0, len(photos), 50):
            batch = photos[start:start + 50]
            files = [("photos", ("photo", path.read_bytes(), "image/jpeg")) for path in batch]
            names = [f"round-{sent // len(photos)}/{path.parent.name}/{path.name}" for path in batch]
            requests.post(f"{stack.base_url}{upload['files_url']}", headers=stack.headers(), files=files,
                          data={"batch": str(batch_index), "names": json.dumps(names)}).raise_for_status()
            batch_index += 1
        sent += len(photos)
    finished = requests.post(f"{stack.base_url}{upload['finish_url']}", headers=stack.headers())
    finished.raise_for_status()
    return finished.json()["id"]


def job_status(stack, job_id: str) -> dict:
    import requests

    return requests.get(f"{stack.base_url}/api/v1/jobs/{job_id}", headers=stack.headers(), timeout=30).json()


def poll(stack, url: str, interval: float, deadline: float, latencies: list, errors: list, slow: list,
         origin: float) -> None:
    import requests

    session = requests.Session()
    session.headers.update(stack.headers())
    next_time = time.monotonic()
    while next_time < deadline:
        started = time.perf_counter()
        try:
            response = session.get(url, timeout=30)
            if response.status_code != 200:
                errors.append(response.status_code)
            else:
                latencies.append(time.perf_counter() - started)
                if latencies[-1] > 1.0:
                    slow.append((round(started - origin, 2), round(latencies[-1], 2)))
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
        next_time += interval
        time.sleep(max(0.0, next_time - time.monotonic()))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "demo", help="Model directory to register.")
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between one poller's requests.")
    parser.add_argument("--threads", type=int, default=8, help="Waitress threads (default 8, as pandulce serve).")
    parser.add_argument("--job-photos", type=int, default=6000,
                        help="Photos in the polled job, so that it outlasts the polling (default 6000).")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    args = parser.parse_args()
    if not (args.model / "manifest.json").is_file():
        parser.error(f"{args.model} is not a model directory; run `make demo` or pass --model DIR.")

    with bench_stack(args.model) as stack:
        stack.serve(args.threads)
        worker = stack.start(["worker", "--concurrency", "1", "--loglevel", "info"], "worker.log")
        stack.wait_for_log("worker.log", " ready.", worker)
        job_id = submit_job(stack, args.dataset, args.job_photos)
        while job_status(stack, job_id)["status"] != "running":
            time.sleep(0.2)

        url = f"{stack.base_url}/api/v1/jobs/{job_id}"
        latencies: list[float] = []
        errors: list = []
        slow: list = []
        before = job_status(stack, job_id)
        deadline = time.monotonic() + args.seconds
        pollers = [threading.Thread(target=poll, args=(stack, url, args.interval, deadline, latencies, errors, slow,
                                                        time.perf_counter()))
                   for _ in range(args.pollers)]
        started = time.monotonic()
        for thread in pollers:
            thread.start()
        for thread in pollers:
            thread.join()
        elapsed = time.monotonic() - started
        after = job_status(stack, job_id)

    classified = (after["done"] + after["failed"]) - (before["done"] + before["failed"])
    print(json.dumps({
        "bench": "web_polling",
        "machine": describe_machine(),
        "pollers": args.pollers,
        "interval_s": args.interval,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "errors": len(errors),
        "latency_ms": {"p50": round(percentile(latencies, 0.50) * 1000, 1),
                       "p95": round(percentile(latencies, 0.95) * 1000, 1),
                       "p99": round(percentile(latencies, 0.99) * 1000, 1),
                       "max": round(max(latencies) * 1000, 1),
                       "mean": round(statistics.fmean(latencies) * 1000, 1)},
        "over_1s": {"count": len(slow), "first_started_at_s_and_latency_s": sorted(slow)[:5]},
        "job": {"photos": after["total"], "status_after": after["status"],
                "classified_during_polling": classified,
                "photos_per_second_during_polling": round(classified / elapsed, 1)},
    }))


if __name__ == "__main__":
    main()
