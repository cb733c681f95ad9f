"""The web commands: `pandulce users`, `pandulce serve` and `pandulce stack`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from pandulce.cli import main
from pandulce.registry import register_model_dir
from tests.conftest import REPO_ROOT
from tests.stack import stack_environment


@pytest.fixture
def cli_stack(tmp_path):
    with stack_environment("sqlite", tmp_path / "data") as stack:
        yield stack


def run_cli(*args, input_text=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input_text, catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_output(log_path: Path, text: str, process: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log_path.read_text(errors="replace")
        if text in output:
            return output
        if process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode}:\n{output}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"{text!r} did not appear in {timeout} s:\n{log_path.read_text(errors='replace')}")


def sign_in(base_url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=10)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{base_url}/login", data={"username": username, "password": password,
                                                       "csrf_token": token}, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return session


def test_users_create_and_token_authenticate_the_api(cli_stack):
    created = run_cli("users", "create", "lucia", "--password", "a long password", "--admin")
    token = run_cli("users", "token", "lucia").output.strip()
    listed = run_cli("users", "list")

    assert created.exit_code == 0, created.output
    assert "Created administrator lucia." in created.output
    assert token.startswith("pdt_")
    assert re.search(r"lucia\s+admin", listed.output)

    from web import create_app

    client = create_app({"TESTING": True}).test_client()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json["username"] == "lucia"
    assert response.json["is_admin"] is True


def test_users_create_asks_for_the_password(cli_stack):
    result = run_cli("users", "create", "mario", input_text="secret password\nsecret password\n")

    assert result.exit_code == 0, result.output
    assert "Created user mario." in result.output


@pytest.mark.parametrize("args, message", [
    (["users", "create", "ana", "--password", "short"], "needs at least 8"),
    (["users", "create", "bad name!", "--password", "long enough"], "is invalid"),
    (["users", "token", "nobody"], "User 'nobody' does not exist"),
])
def test_users_commands_reject_bad_input(cli_stack, args, message):
    result = run_cli(*args)

    assert result.exit_code == 1
    assert message in result.output


def test_users_create_rejects_a_taken_name(cli_stack):
    run_cli("users", "create", "pepe", "--password", "long enough")

    result = run_cli("users", "create", "PEPE", "--password", "long enough")

    assert result.exit_code == 1
    assert "already exists" in result.output


def test_serve_answers_without_loading_torch(cli_stack, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "pandulce.cli", "serve", "--port", str(port)],
                                   cwd=REPO_ROOT, env={**os.environ, **cli_stack.env}, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_output(log_path, "Serving pan-dulce on", process)
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        libraries = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    assert response.status_code == 200
    assert "Iniciar sesión" in response.text
    assert "libtorch" not in libraries


def test_stack_without_model_or_dataset_fails(cli_stack, tmp_path):
    result = run_cli("stack", "--dataset", tmp_path / "missing", "--port", free_port())

    assert result.exit_code == 1
    assert "No model version is registered" in result.output


def test_stack_runs_redis_workers_and_web_until_interrupted(cli_stack, tmp_path, lite0_model):
    register_model_dir(lite0_model, activate=True)
    port, redis_port = free_port(), free_port()
    log_path = tmp_path / "stack.log"
    env = {**os.environ, **cli_stack.env, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    with log_path.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "pandulce.cli", "stack", "--workers", "1",
                                    "--concurrency", "1", "--port", str(port)],
                                   cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        output = wait_for_output(log_path, "pan-dulce is running", process)
        password = re.search(r"Created the first user: admin, password (\S+)", output).group(1)
        session = sign_in(f"http://127.0.0.1:{port}", "admin", password)
        jobs_page = session.get(f"http://127.0.0.1:{port}/jobs/", timeout=10)
    finally:
        os.kill(process.pid, signal.SIGINT)
        returncode = process.wait(timeout=120)
    output = log_path.read_text()

    assert f"Starting redis-server on port {redis_port}" in output
    assert f"open http://127.0.0.1:{port}/" in output
    assert jobs_page.status_code == 200
    assert returncode == 0, output
    assert output.rstrip().endswith("Stopped.")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
