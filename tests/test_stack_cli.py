"""`pandulce stack` stops its children on SIGTERM and refuses a busy port."""

import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest
from click.testing import CliRunner

from pandulce.cli import main
from pandulce.registry import register_model_dir
from tests.conftest import REPO_ROOT
from tests.stack import stack_environment
from tests.test_web_cli import free_port, wait_for_output


@pytest.fixture
def stack_env(tmp_path, lite0_model):
    with stack_environment("sqlite", tmp_path / "data") as stack:
        register_model_dir(lite0_model, activate=True)
        yield stack


def test_stack_refuses_a_port_in_use(stack_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = CliRunner().invoke(main, ["stack", "--port", str(port)])

    assert result.exit_code == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in result.output
    assert f"make run PORT={port + 1}" in result.output
    assert "Starting" not in result.output


def test_stack_stops_its_children_on_sigterm(stack_env, tmp_path):
    port = free_port()
    log_path = tmp_path / "stack.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "pandulce.cli", "stack", "--workers", "1",
                                    "--concurrency", "1", "--port", str(port)],
                                   cwd=REPO_ROOT, env={**os.environ, **stack_env.env}, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_output(log_path, "pan-dulce is running", process)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    _, alive = psutil.wait_procs(children, timeout=10)
    assert returncode == 0, log_path.read_text()
    assert alive == []
    assert log_path.read_text().rstrip().endswith("Stopped.")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
