"""Settings shared by the CLI, the workers and the web app, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}.") from None


def default_data_dir() -> Path:
    """Return PANDULCE_DATA_DIR, else `var/` of the source checkout this code runs from, else `./var`.

    Tying the default to the checkout, not the working directory, means every
    command finds the same database wherever it is started from.
    """
    configured = os.environ.get("PANDULCE_DATA_DIR")
    if configured:
        return Path(configured).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "var"
    return Path("var").resolve()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL", ""))
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    # Photos per queued chunk: a lost worker costs at most this many photos of work.
    chunk_size: int = field(default_factory=lambda: _int("PANDULCE_CHUNK_SIZE", 64))
    # Deliveries of one chunk before its photos are marked failed (a worker died each time).
    max_deliveries: int = field(default_factory=lambda: _int("PANDULCE_MAX_DELIVERIES", 3))
    # Longer than the longest task (a CPU training run), so Redis never redelivers a task still running.
    visibility_timeout_s: int = field(default_factory=lambda: _int("PANDULCE_VISIBILITY_TIMEOUT", 6 * 3600))
    queue_prefix: str = field(default_factory=lambda: os.environ.get("PANDULCE_QUEUE_PREFIX", ""))

    @property
    def sqlalchemy_url(self) -> str:
        """Return DATABASE_URL, or an SQLite file in the data directory when it is unset."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'pandulce.db'}"

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def datasets_dir(self) -> Path:
        """Return the folder of the training datasets uploaded through the web app."""
        return self.data_dir / "datasets"

    def queue(self, name: str) -> str:
        """Return the broker queue name for `inference`, `training` or `gpu`."""
        return f"{self.queue_prefix}{name}"


def get_settings() -> Settings:
    return Settings()
