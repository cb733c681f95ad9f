"""One SQLAlchemy session per request, closed when the request ends."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from pandulce.db import get_sessionmaker


def get_db() -> Session:
    """Return this request's database session, opening it on first use."""
    if "db_session" not in g:
        g.db_session = get_sessionmaker(current_app.config["DATABASE_URL"])()
    return g.db_session


def close_db(_exception: BaseException | None = None) -> None:
    """Close the request's session; anything not committed is rolled back."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def rollback_db() -> None:
    """Roll back the request's session, if it has one."""
    session = g.get("db_session")
    if session is not None:
        session.rollback()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
