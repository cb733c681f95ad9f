"""Start the real parts for integration tests: a database, Redis queues of our own, and Celery workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT

POSTGRES_URL = os.environ.get("PANDULCE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PANDULCE_TEST_REDIS", "redis://127.0.0.1:6379/11")


@dataclass
class Stack:
    """The environment one test session's CLI, workers and web app share."""

    backend: str
    data_dir: Path
    database_url: str
    queue_prefix: str
    env: dict = field(default_factory=dict)
    workers: list = field(default_factory=list)

    def start_worker(self, concurrency: int = 2, extra_env: dict | None = None, log_name: str | None = None):
        """Start `pandulce worker` as its own process and wait until Celery logs that it is ready."""
        log_path = self.data_dir / (log_name or f"worker-{len(self.workers)}.log")
        log_file = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "pandulce.cli", "worker", "--concurrency", str(concurrency), "--loglevel", "info",
             "--name", f"test-{len(self.workers)}-{uuid.uuid4().hex[:6]}@%h"],
            cwd=REPO_ROOT, env={**os.environ, **self.env, **(extra_env or {})}, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            if " ready." in text:
                self.workers.append((process, log_path))
                return process, log_path
            if process.poll() is not None:
                raise RuntimeError(f"The worker exited with {process.returncode}:\n{text}")
            time.sleep(0.2)
        process.kill()
        raise RuntimeError(f"The worker did not become ready in 120 s:\n{log_path.read_text(errors='replace')}")

    def stop_workers(self) -> None:
        for process, _ in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers.clear()

    def wait_for_ready_children(self, count: int, timeout: float = 180) -> set[int]:
        """Wait until `count` pool children run and each has logged that it is ready; return their pids.

        A child that replaces a killed one imports torch before it takes work,
        which can outlast a whole small job on a busy machine.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logged = "".join(log_path.read_text(errors="replace") for _, log_path in self.workers)
            ready = {int(pid) for pid in re.findall(r"Worker process (\d+) ready", logged)}
            children = self.child_pids()
            if len(children) >= count and children <= ready:
                return children
            time.sleep(0.2)
        raise RuntimeError(f"{count} ready worker children did not appear in {timeout:.0f} s")

    def child_pids(self) -> set[int]:
        pids = set()
        for process, _ in self.workers:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            if children.exists():
                pids.update(int(pid) for pid in children.read_text().split())
        return pids


@contextmanager
def stack_environment(backend: str, data_dir: Path):
    """Point pandulce (in this process and in the processes it starts) at a fresh database and queues."""
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    if backend == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:10]}"
        _postgres_execute(f"CREATE SCHEMA {schema}")
        database_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    else:
        schema = None
        database_url = f"sqlite:///{data_dir / 'pandulce.db'}"

    env = {
        "PANDULCE_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "PANDULCE_QUEUE_PREFIX": prefix,
        "PANDULCE_CHUNK_SIZE": "16",
        "PANDULCE_COMPILE": "0",
        "PANDULCE_OFFLINE": "1",
    }
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    stack = Stack(backend, data_dir, database_url, prefix, env)
    try:
        from pandulce.migrate import upgrade

        upgrade(database_url)
        yield stack
    finally:
        stack.stop_workers()
        _purge_queues(prefix)
        from pandulce.db import get_engine

        get_engine(database_url).dispose()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if schema:
            _postgres_execute(f"DROP SCHEMA {schema} CASCADE")


def _postgres_execute(statement: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(statement))
    engine.dispose()


def _purge_queues(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def wait_for_job(job_id: str, timeout: float = 300) -> None:
    """Poll SQL until the job is finished; raise with its counts on timeout."""
    from pandulce.db import BatchJob, session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            job = session.get(BatchJob, job_id)
            if job.finished:
                return
            state = repr(job)
        time.sleep(0.3)
    raise TimeoutError(f"Job {job_id} did not finish in {timeout} s: {state}")
