"""Shared set-up of the web benchmarks: a private database, queue names, users, `pandulce serve` and workers.

Everything runs on loopback against the local Redis (database 12, a private
queue-name prefix purged at the end) and a fresh SQLite file in a temporary
data directory.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATASET = REPO.parent / "shared" / "datasets" / "pan-dulce"
REDIS_URL = os.environ.get("PANDULCE_BENCH_REDIS", "redis://127.0.0.1:6379/12")


@dataclass
class BenchStack:
    data_dir: Path
    env: dict
    base_url: str = ""
    token: str = ""
    processes: list = field(default_factory=list)

    def start(self, command: list[str], log_name: str) -> subprocess.Popen:
        log_file = (self.data_dir / log_name).open("w")
        process = subprocess.Popen([sys.executable, "-m", "pandulce.cli", *command], cwd=REPO,
                                   env={**os.environ, **self.env}, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def wait_for_log(self, log_name: str, text: str, process: subprocess.Popen, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.data_dir / log_name).read_text(errors="replace"):
                return
            if process.poll() is not None:
                raise RuntimeError(f"{log_name}: the process exited:\n{(self.data_dir / log_name).read_text()}")
            time.sleep(0.2)
        raise RuntimeError(f"{log_name}: {text!r} did not appear within {timeout} s")

    def serve(self, threads: int) -> subprocess.Popen:
        """Start `pandulce serve` on a free port and wait until it responds."""
        import requests

        port = free_port()
        process = self.start(["serve", "--port", str(port), "--threads", str(threads)], "serve.log")
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{self.base_url}/login", timeout=2)
                return process
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.data_dir / "serve.log").read_text()) from None
                time.sleep(0.2)

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def bench_stack(model_dir: Path | None = None):
    """Yield a BenchStack with a migrated database, a model version, a user and an API token."""
    data_dir = Path(tempfile.mkdtemp(prefix="pandulce-web-bench-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    env = {"PANDULCE_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / 'pandulce.db'}",
           "REDIS_URL": REDIS_URL, "PANDULCE_QUEUE_PREFIX": prefix, "PANDULCE_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    stack = BenchStack(data_dir, env)
    try:
        from pandulce.db import ModelVersion, session_scope
        from pandulce.migrate import upgrade
        from pandulce.registry import register_model_dir
        from training.classes import REFERENCE_CLASSES
        from web.accounts import create_user, issue_token

        upgrade()
        if model_dir is not None:
            register_model_dir(model_dir, activate=True)
        with session_scope() as session:
            if model_dir is None:
                session.add(ModelVersion(name="bench", backbone="efficientnet-lite0", classes=list(REFERENCE_CLASSES),
                                         artifact_path="models/none", manifest_sha256="0" * 64, is_active=True))
            user = create_user(session, "bench", "bench password")
            stack.token = issue_token(session, user, "bench")
        yield stack
    finally:
        for process in reversed(stack.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in stack.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        purge_queues(prefix)
        report_problems(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def report_problems(data_dir: Path) -> None:
    """Copy the warnings and errors that the started processes logged to stderr."""
    for log_path in sorted(data_dir.glob("*.log")):
        lines = [line for line in log_path.read_text(errors="replace").splitlines()
                 if " WARNING " in line or " ERROR " in line or "Traceback" in line]
        for line in lines[:20]:
            print(f"{log_path.name}: {line}", file=sys.stderr)


def purge_queues(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


class RssSampler:
    """Sample a process's resident memory every 50 ms in a thread; report before, peak and after in MB."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.before = self.rss()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        return {"before_mb": round(self.before / 1e6, 1), "peak_mb": round(self.peak / 1e6, 1),
                "after_mb": round(self.rss() / 1e6, 1)}


def describe_machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
