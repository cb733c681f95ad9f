"""Alembic migrations: upgrade, downgrade and upgrade again, and agreement with the models."""

import uuid

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pandulce.db import Base, make_engine
from pandulce.migrate import downgrade, upgrade
from tests.stack import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    schema = f"m_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def table_names(url):
    engine = make_engine(url)
    names = set(sqlalchemy.inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_migrations_round_trip(empty_database):
    upgrade(empty_database)
    assert {"batch_jobs", "photos", "predictions", "prediction_scores", "model_versions", "training_runs",
            "users", "api_tokens"} <= table_names(empty_database)

    downgrade(empty_database, "0001")
    assert "users" not in table_names(empty_database)
    assert "batch_jobs" in table_names(empty_database)

    downgrade(empty_database)
    assert table_names(empty_database) <= {"alembic_version"}

    upgrade(empty_database)
    assert "users" in table_names(empty_database)


def test_migrations_match_the_models(empty_database):
    upgrade(empty_database)
    engine = make_engine(empty_database)

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()

    assert differences == []
