"""End-to-end throughput through Redis and a Celery worker against direct `pandulce classify`.

Run from the repository root with a model directory written by `pandulce train`:

    python bench/queue_throughput.py --model models/demo

It starts its own worker against the Redis on REDIS_URL (default
127.0.0.1:6379, database 12), with a fresh SQLite database in a temporary
data directory. The worker first classifies a few photos, as a long-running
worker would already have its model loaded. Then, on the same photos:

- queue: from the start of `pandulce submit --no-wait` to the moment the last
  prediction row is written (the job's finished_at);
- direct: `pandulce classify` wall time, with its defaults and with --compile on.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "pan-dulce"


def run(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def wait_ready(log_path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if " ready." in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace"))
        time.sleep(0.2)
    raise TimeoutError("worker did not start")


def job_finished_at(job_id: str) -> float | None:
    from pandulce.db import BatchJob, session_scope

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        if job is None or not job.finished:
            return None
        return job.finished_at.timestamp(), job.done_count, job.failed_count


def submit_and_wait(photos: Path, env: dict) -> tuple[float, int]:
    from sqlalchemy import select

    from pandulce.db import BatchJob, session_scope

    started_wall = time.time()
    subprocess.run([sys.executable, "-m", "pandulce.cli", "submit", str(photos), "--no-wait", "--name", "bench"],
                   check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    with session_scope() as session:
        job_id = session.scalars(select(BatchJob.id).order_by(BatchJob.created_at.desc()).limit(1)).first()
    while True:
        finished = job_finished_at(job_id)
        if finished:
            finished_at, done, failed = finished
            return finished_at - started_wall, done + failed
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    env = {
        **os.environ,
        "PANDULCE_DATA_DIR": str(scratch / "data"),
        "DATABASE_URL": f"sqlite:///{scratch / 'data' / 'pandulce.db'}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12"),
        "PANDULCE_QUEUE_PREFIX": f"bench-{uuid.uuid4().hex[:6]}-",
    }
    os.environ.update({key: env[key] for key in ("PANDULCE_DATA_DIR", "DATABASE_URL", "REDIS_URL",
                                                  "PANDULCE_QUEUE_PREFIX")})
    subprocess.run([sys.executable, "-m", "pandulce.cli", "models", "register", str(args.model), "--activate"],
                   check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)

    log_path = scratch / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "pandulce.cli", "worker", "--concurrency", str(args.concurrency)],
                              cwd=REPO, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_ready(log_path, worker)
        warm = scratch / "warm"
        warm.mkdir()
        photos = sorted(p for p in args.photos.rglob("*.jpg"))
        for photo in photos[: 8 * args.concurrency]:
            shutil.copy(photo, warm / photo.name)
        warm_seconds, _ = submit_and_wait(warm, env)
        print(f"Worker warm-up (model load and compile): {warm_seconds:.1f} s", file=sys.stderr)

        queue_seconds, processed = submit_and_wait(args.photos, env)
        direct_default = run([sys.executable, "-m", "pandulce.cli", "classify", str(args.photos), "--model",
                              str(args.model), "--out", str(scratch / "direct.csv")], env)
        direct_compiled = run([sys.executable, "-m", "pandulce.cli", "classify", str(args.photos), "--model",
                               str(args.model), "--out", str(scratch / "direct.csv"), "--compile", "on"], env)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

    queue_rate = processed / queue_seconds
    print(json.dumps({
        "bench": "queue_throughput",
        "photos": processed,
        "worker_concurrency": args.concurrency,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "queue_photos_per_s": round(queue_rate, 1),
        "queue_seconds": round(queue_seconds, 1),
        "direct_default_photos_per_s": round(processed / direct_default, 1),
        "direct_compiled_photos_per_s": round(processed / direct_compiled, 1),
        "queue_vs_direct_default": round(queue_rate / (processed / direct_default), 2),
        "queue_vs_direct_compiled": round(queue_rate / (processed / direct_compiled), 2),
    }))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
