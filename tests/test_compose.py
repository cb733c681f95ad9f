"""The Compose file is valid and describes a scalable stack (checked with `docker-compose config`)."""

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO_ROOT


def compose_config(*profiles):
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed; scripts/test-services.sh installs it"
    args = [binary]
    for profile in profiles:
        args += ["--profile", profile]
    completed = subprocess.run([*args, "config"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return yaml.safe_load(completed.stdout)


def test_compose_file_defines_the_stack():
    services = compose_config()["services"]

    assert {"redis", "postgres", "migrate", "web", "worker"} <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["pandulce", "db", "upgrade"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", ["web", "worker", "migrate"])
def test_app_services_share_the_data_volume_and_postgres(service):
    config = compose_config()["services"][service]

    assert any(volume.startswith("pandulce-data:/data") for volume in config["volumes"])
    assert config["environment"]["DATABASE_URL"].startswith("postgresql")
    assert config["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_worker_can_be_scaled():
    worker = compose_config()["services"]["worker"]

    assert "container_name" not in worker
    assert "ports" not in worker


def test_gpu_worker_reserves_an_nvidia_device():
    gpu = compose_config("gpu")["services"]["worker-gpu"]

    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert "--gpu" in gpu["command"]


def test_named_volumes_keep_data_and_database():
    assert {"pandulce-data", "postgres-data", "redis-data"} <= set(compose_config()["volumes"])
