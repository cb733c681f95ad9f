"""The SQL schema and sessions, shared by the web app, the workers and the CLI.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so that
several worker processes and the web app can write to one file. PostgreSQL is
used when DATABASE_URL names it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from pandulce.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PhotoStatus(str, enum.Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ChunkStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _status(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_class, name=name, native_enum=False, length=16, create_constraint=True,
                values_callable=lambda members: [member.value for member in members])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[Optional[str]] = mapped_column(String(8))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user", cascade="all, delete-orphan")
    jobs: Mapped[list["BatchJob"]] = relationship(back_populates="user")

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    # sha256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[datetime]]

    user: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} of user {self.user_id}>"


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        # At most one active version.
        Index("uq_model_versions_active", "is_active", unique=True,
              sqlite_where=text("is_active = 1"), postgresql_where=text("is_active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    backbone: Mapped[str] = mapped_column(String(40))
    classes: Mapped[list[Any]]
    artifact_path: Mapped[str] = mapped_column(String(1000))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    training_run: Mapped[Optional["TrainingRun"]] = relationship(back_populates="model_version")

    def __repr__(self) -> str:
        return f"<ModelVersion {self.id} {self.backbone}{' active' if self.is_active else ''}>"


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[RunStatus] = mapped_column(_status(RunStatus, "run_status"), default=RunStatus.QUEUED)
    dataset: Mapped[str] = mapped_column(String(1000))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    phase: Mapped[Optional[str]] = mapped_column(String(40))
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    history: Mapped[list[Any]] = mapped_column(default=list)
    metrics: Mapped[Optional[dict[str, Any]]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    activate: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    submitted_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]

    model_version: Mapped[Optional[ModelVersion]] = relationship(back_populates="training_run")

    def __repr__(self) -> str:
        return f"<TrainingRun {self.id} {self.status.value}>"


class BatchJob(Base):
    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[JobStatus] = mapped_column(_status(JobStatus, "job_status"), default=JobStatus.QUEUED, index=True)
    total: Mapped[int] = mapped_column(default=0)
    done_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    submitted_by: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]

    model_version: Mapped[ModelVersion] = relationship()
    user: Mapped[Optional[User]] = relationship(back_populates="jobs")
    photos: Mapped[list["Photo"]] = relationship(back_populates="job", cascade="all, delete-orphan",
                                                 order_by="Photo.position")
    chunks: Mapped[list["BatchChunk"]] = relationship(back_populates="job", cascade="all, delete-orphan",
                                                      order_by="BatchChunk.index")

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)

    def __repr__(self) -> str:
        return f"<BatchJob {self.id} {self.status.value} {self.done_count}/{self.total}>"


class BatchChunk(Base):
    __tablename__ = "batch_chunks"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    index: Mapped[int]
    status: Mapped[ChunkStatus] = mapped_column(_status(ChunkStatus, "chunk_status"), default=ChunkStatus.QUEUED)
    photo_count: Mapped[int] = mapped_column(default=0)
    deliveries: Mapped[int] = mapped_column(default=0)
    worker: Mapped[Optional[str]] = mapped_column(String(200))
    worker_pid: Mapped[Optional[int]]
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]

    job: Mapped[BatchJob] = relationship(back_populates="chunks")

    def __repr__(self) -> str:
        return f"<BatchChunk {self.job_id}#{self.index} {self.status.value}>"


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (
        Index("ix_photos_job_id_position", "job_id", "position"),
        Index("ix_photos_job_id_status", "job_id", "status"),
        Index("ix_photos_job_id_chunk_index", "job_id", "chunk_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    position: Mapped[int]
    chunk_index: Mapped[Optional[int]]
    # Shown as uploaded; never used to build a path.
    original_name: Mapped[str] = mapped_column(String(1024))
    # Relative to the data directory, named by content hash.
    stored_path: Mapped[Optional[str]] = mapped_column(String(300))
    sha256: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    byte_size: Mapped[Optional[int]]
    width: Mapped[Optional[int]]
    height: Mapped[Optional[int]]
    status: Mapped[PhotoStatus] = mapped_column(_status(PhotoStatus, "photo_status"), default=PhotoStatus.PENDING)
    error_code: Mapped[Optional[str]] = mapped_column(String(32))
    error: Mapped[Optional[str]] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    job: Mapped[BatchJob] = relationship(back_populates="photos")
    predictions: Mapped[list["Prediction"]] = relationship(back_populates="photo", cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Photo {self.id} {self.status.value}>"


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("photo_id", "model_version_id"),
        Index("ix_predictions_top_class_top_probability", "top_class", "top_probability"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    top_class: Mapped[str] = mapped_column(String(64))
    top_probability: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="predictions")
    scores: Mapped[list["PredictionScore"]] = relationship(back_populates="prediction", cascade="all, delete-orphan",
                                                           order_by="PredictionScore.class_index")

    def probabilities(self) -> dict[str, float]:
        return {score.class_name: score.probability for score in self.scores}

    def __repr__(self) -> str:
        return f"<Prediction photo={self.photo_id} {self.top_class} {self.top_probability:.3f}>"


class PredictionScore(Base):
    """One class's probability for one prediction: a row each, so SQL can filter on it."""

    __tablename__ = "prediction_scores"
    __table_args__ = (Index("ix_prediction_scores_class_name_probability", "class_name", "probability"),)

    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    class_index: Mapped[int]
    probability: Mapped[float] = mapped_column(Float)

    prediction: Mapped[Prediction] = relationship(back_populates="scores")

    def __repr__(self) -> str:
        return f"<PredictionScore {self.prediction_id} {self.class_name} {self.probability:.3f}>"


_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[tuple[int, str], sessionmaker] = {}


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a 30 s busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(url: str | None = None) -> Engine:
    """Return this process's engine for `url` (default: the configured database).

    Engines are kept per process id, so a forked worker child never reuses its
    parent's connections.
    """
    url = url or get_settings().sqlalchemy_url
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def get_sessionmaker(url: str | None = None) -> sessionmaker:
    url = url or get_settings().sqlalchemy_url
    key = (os.getpid(), url)
    if key not in _factories:
        _factories[key] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return _factories[key]


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on any error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Drop every engine of this process (call after a fork)."""
    for key in list(_engines):
        _engines.pop(key).dispose(close=False)
        _factories.pop(key, None)
