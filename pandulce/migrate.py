"""Apply the Alembic migrations in migrations/ to the configured database."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from pandulce.config import get_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = database_url or get_settings().sqlalchemy_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to `revision` (default: the newest)."""
    with quiet_alembic():
        command.upgrade(alembic_config(database_url), revision)
    log.info("Database migrated to revision %s", revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Migrate the database down to `revision` (default: empty)."""
    with quiet_alembic():
        command.downgrade(alembic_config(database_url), revision)
    log.info("Database migrated down to revision %s", revision)


@contextlib.contextmanager
def quiet_alembic():
    # Alembic logs every migration step at INFO, so one line of our own reports the result instead.
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)
