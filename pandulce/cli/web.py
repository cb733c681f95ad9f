"""Commands for the web app: serve, stack (the whole stack on one machine) and users."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from pandulce.config import get_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "pan-dulce"
# Seconds that stopped children get to finish their current work before they are killed.
STOP_GRACE_S = 30


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 15), default=8, show_default=True,
              help="Requests served at once. At most 15: the database pool holds 15 connections, and a thread "
                   "that waits for a connection can starve while the others keep it busy.")
def serve(host, port, threads):
    """Run the web app with the waitress server."""
    from waitress import serve as waitress_serve

    from pandulce.cli.queue import ensure_schema
    from pandulce.uploads import UploadLimits
    from web import REQUEST_OVERHEAD_BYTES, create_app

    ensure_schema()
    app = create_app()
    limits = UploadLimits()
    click.echo(f"Serving pan-dulce on http://{display_host(host)}:{port}/ with {threads} threads")
    # Waitress spools request bodies over 512 kB to temporary files, so a large
    # upload does not sit in memory. Its own body limit is raised to the app's.
    # Every open page keeps a connection for its status polling, and waitress
    # stops accepting connections at connection_limit (100 by default), so the
    # limit is raised well above the number of people polling at once.
    waitress_serve(app, host=host, port=port, threads=threads, ident="pandulce",
                   max_request_body_size=limits.max_zip_expanded_bytes + REQUEST_OVERHEAD_BYTES,
                   connection_limit=1000, channel_timeout=300, clear_untrusted_proxy_headers=True)


def display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


@click.group()
def users():
    """Create users and issue their API tokens."""


@users.command("create")
@click.argument("username")
@click.option("--password", default=None,
              help="Password, at least 8 characters (default: ask for it on the terminal).")
@click.option("--admin", is_flag=True, help="Make the user an administrator: sees every user's jobs, trains and "
                                             "activates model versions.")
def users_create(username, password, admin):
    """Create the user USERNAME."""
    from pandulce.cli.queue import ensure_schema
    from pandulce.db import session_scope
    from web.accounts import AccountError, create_user

    ensure_schema()
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as session:
            create_user(session, username, password, is_admin=admin)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {'administrator' if admin else 'user'} {username}.")


@users.command("token")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="Label of the token, to tell tokens apart.")
def users_token(username, name):
    """Issue a new API token for USERNAME and print it (it is shown only this once)."""
    from pandulce.cli.queue import ensure_schema
    from pandulce.db import session_scope
    from web.accounts import find_user, issue_token

    ensure_schema()
    with session_scope() as session:
        user = find_user(session, username)
        if user is None:
            raise click.ClickException(f"User {username!r} does not exist; `pandulce users create` adds one.")
        token = issue_token(session, user, name)
    click.echo(token)


@users.command("list")
def users_list():
    """List the users."""
    from sqlalchemy import select

    from pandulce.cli.queue import ensure_schema
    from pandulce.db import User, session_scope

    ensure_schema()
    with session_scope() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            click.echo(f"{user.id:4d}  {user.username:30}  {'admin' if user.is_admin else 'user '}  "
                       f"{user.created_at:%Y-%m-%d %H:%M}")


@click.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="`pandulce worker` processes to start.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Pool processes per worker (default: the worker's own default).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the web app listens on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATASET,
              show_default=True, help="Photo set to train the first model on when none is registered.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=15, show_default=True,
              help="Epochs for that first model.")
def stack(workers, concurrency, host, port, dataset, epochs):
    """Run the whole stack on this machine: Redis, the database, a model, workers and the web app."""
    from pandulce.cli.queue import ensure_schema

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    children: list[tuple[str, subprocess.Popen]] = []
    # The children run in their own sessions, so a terminal closing or a plain `kill`
    # would not reach them: both are turned into the same clean stop as Ctrl-C.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    try:
        redis_process = ensure_redis(settings.redis_url, settings.data_dir)
        if redis_process is not None:
            children.append(("redis-server", redis_process))
        check_port_free(host, port)
        click.echo(f"Database: {settings.sqlalchemy_url.split('@')[-1]}")
        ensure_schema()
        ensure_model(dataset, epochs)
        ensure_first_user()

        for index in range(workers):
            children.append((f"worker {index + 1}", start_child(worker_command(index, concurrency),
                                                                  settings.data_dir / "logs" / f"worker-{index + 1}.log")))
        children.append(("web", start_child(
            [sys.executable, "-m", "pandulce.cli", "serve", "--host", host, "--port", str(port)], None)))
        wait_for_web(host, port, children)
        click.echo(f"\npan-dulce is running: open http://{display_host(host)}:{port}/ in a browser.")
        click.echo(f"Worker logs are in {settings.data_dir / 'logs'}. Press Ctrl-C to stop everything.\n")
        watch(children)
    except (KeyboardInterrupt, StopRequested):
        click.echo("\nStopping…")
    finally:
        stop_children(children)
    click.echo("Stopped.")


class StopRequested(BaseException):
    """SIGTERM or SIGHUP reached `pandulce stack`: stop the children as Ctrl-C does."""


def _stop_on_signal(signum, _frame) -> None:
    raise StopRequested(signal.Signals(signum).name)


def check_port_free(host: str, port: int) -> None:
    """Fail before starting anything when another program already listens on the web port."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"Port {port} on {host} is already in use ({exc.strerror}); another pan-dulce may be running. "
                f"Stop it, or choose another port with --port (with make: make run PORT={port + 1})."
            ) from exc


def ensure_redis(redis_url: str, data_dir: Path) -> subprocess.Popen | None:
    """Return None when Redis responds at `redis_url`, or else start a local redis-server on its port."""
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        click.echo(f"Redis answers at {redis_url}")
        return None
    except redis.RedisError:
        pass

    parts = urlsplit(redis_url)
    binary = shutil.which("redis-server")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or binary is None:
        raise click.ClickException(f"Redis does not respond at {redis_url} and no local redis-server can be started "
                                   f"there; install Redis or set REDIS_URL.")
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = parts.port or 6379
    click.echo(f"Starting redis-server on port {port} (data in {redis_dir})")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
                                "--appendonly", "yes", "--save", ""],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
            return process
        except redis.RedisError:
            if process.poll() is not None:
                raise click.ClickException(f"redis-server exited with status {process.returncode}.") from None
            time.sleep(0.2)
    process.kill()
    raise click.ClickException(f"redis-server did not respond on port {port} within 20 s.")


def ensure_model(dataset: Path, epochs: int) -> None:
    """Train, register and activate a first model version when the database has none."""
    from pandulce.db import session_scope
    from pandulce.registry import active_version

    with session_scope() as session:
        version = active_version(session)
        if version is not None:
            click.echo(f"Model version {version.id} ({version.name}) is active.")
            return
    if not dataset.is_dir():
        raise click.ClickException(f"No model version is registered and the photo set {dataset} to train one does "
                                   f"not exist; pass --dataset or register a model with `pandulce models register`.")

    out_dir = get_settings().models_dir / "first-model"
    click.echo(f"No model version yet: training efficientnet-lite0 on {dataset} for {epochs} epochs "
               f"(one to three minutes on two CPU cores)…")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    # A separate process, so that the stack does not keep torch and the training data in memory afterwards.
    trained = subprocess.run([sys.executable, "-m", "pandulce.cli", "train", str(dataset), "--out", str(out_dir),
                              "--backbone", "efficientnet-lite0", "--epochs", str(epochs), "--register", "--activate"])
    if trained.returncode != 0:
        raise click.ClickException(f"Training the first model failed (exit status {trained.returncode}); "
                                   f"see the messages above.")
    with session_scope() as session:
        version = active_version(session)
        click.echo(f"Model version {version.id} ({version.name}) is active: test accuracy "
                   f"{version.metrics.get('test_accuracy', float('nan')):.4f}.")


def ensure_first_user() -> None:
    """Create an administrator with a random password, printed once, when there is no user."""
    from sqlalchemy import select

    from pandulce.db import User, session_scope
    from web.accounts import create_user

    with session_scope() as session:
        if session.scalar(select(User.id).limit(1)) is not None:
            return
        password = secrets.token_urlsafe(12)
        create_user(session, "admin", password, is_admin=True)
    click.echo(f"Created the first user: admin, password {password}\n"
               f"(shown only now; add people with `pandulce users create NAME`).")


def worker_command(index: int, concurrency: int | None) -> list[str]:
    command = [sys.executable, "-m", "pandulce.cli", "worker", "--name", f"pandulce-stack-{index + 1}@%h"]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return command


def start_child(command: list[str], log_path: Path | None) -> subprocess.Popen:
    """Start a child in its own process group, so Ctrl-C reaches it only through stop_children."""
    output = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        output = log_path.open("a")
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT if output else None,
                            start_new_session=True, cwd=os.getcwd())


def wait_for_web(host: str, port: int, children: list[tuple[str, subprocess.Popen]]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        check_children(children)
        try:
            with socket.create_connection((display_host(host), port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise click.ClickException(f"The web app did not start listening on port {port} within 60 s.")


def check_children(children: list[tuple[str, subprocess.Popen]]) -> None:
    for name, process in children:
        if process.poll() is not None:
            raise click.ClickException(f"{name} exited with status {process.returncode}; stopping the stack.")


def watch(children: list[tuple[str, subprocess.Popen]]) -> None:
    """Wait until Ctrl-C, or until a child exits on its own."""
    while True:
        check_children(children)
        time.sleep(1)


def stop_children(children: list[tuple[str, subprocess.Popen]]) -> None:
    """Stop the web app first, then the workers (they finish their chunk), then Redis."""
    for name, process in reversed(children):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                click.echo(f"{name} did not stop within {STOP_GRACE_S} s; killing it.")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def register(group: click.Group) -> None:
    for command in (serve, users, stack):
        group.add_command(command)
