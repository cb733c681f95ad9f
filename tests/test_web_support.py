"""Fixtures and helpers shared by the web app's tests (this module contains no tests itself).

The app runs against a real database and a real Redis (private queue names)
from tests/stack.py. No worker runs here: `classify` writes predictions the
way a worker does, so result pages can be checked against known numbers.
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from pandulce.db import ModelVersion, Photo, PhotoStatus, Prediction, PredictionScore, session_scope
from pandulce.jobs import refresh_counts
from pandulce.uploads import UploadLimits
from tests.stack import stack_environment
from training.classes import REFERENCE_CLASSES

CLASSES = list(REFERENCE_CLASSES)
PASSWORD = "correct horse battery"
# Small limits, so that the bad cases need only small files.
TEST_LIMITS = UploadLimits(max_photo_bytes=500_000, max_photos=60, max_zip_expanded_bytes=20_000_000)
CSRF_PATTERN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def start_web_stack(backend: str, data_dir: Path):
    """Enter stack_environment and add an active model version row and three users; return the context manager."""
    context = stack_environment(backend, data_dir)
    stack = context.__enter__()
    from web.accounts import create_user

    with session_scope() as session:
        version = ModelVersion(name="test model", backbone="efficientnet-lite0", classes=CLASSES,
                               artifact_path="models/none", manifest_sha256="0" * 64, is_active=True)
        session.add(version)
        for username, admin in (("ana", False), ("beto", False), ("root", True)):
            create_user(session, username, PASSWORD, is_admin=admin)
        session.flush()
        stack.model_version_id = version.id
    return context, stack


@pytest.fixture(scope="module")
def web_stack(tmp_path_factory):
    """A SQLite database with a model version row and the users ana, beto and root (admin), and Redis queues."""
    context, stack = start_web_stack("sqlite", tmp_path_factory.mktemp("web-stack"))
    try:
        yield stack
    finally:
        context.__exit__(None, None, None)


def make_app(stack, **config):
    from web import create_app

    return create_app({"TESTING": True, "UPLOAD_LIMITS": TEST_LIMITS, **config})


@pytest.fixture
def app(web_stack):
    return make_app(web_stack)


@pytest.fixture
def client(app):
    """A test client signed in as ana."""
    client = app.test_client()
    sign_in(client, "ana")
    return client


def csrf_token(client, path: str = "/login") -> str:
    """Return the CSRF token a page of this client's session carries."""
    page = client.get(path)
    match = CSRF_PATTERN.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client, username: str, password: str = PASSWORD):
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.text
    return response


def photo_bytes(dataset_root: Path, class_name: str = "conchita", index: int = 0) -> bytes:
    return (dataset_root / class_name / f"{class_name}_{index}.jpg").read_bytes()


def multipart_files(files: list[tuple[str, bytes]]) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(content), name) for name, content in files]


def zip_bytes(members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> bytes:
    """Build a zip in memory; `symlinks` maps member names to link targets."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            archive.writestr(info, target)
    return buffer.getvalue()


def upload_form(client, files: list[tuple[str, bytes]], name: str = "test upload", token: str | None = None):
    """Post files through the plain upload form."""
    token = csrf_token(client, "/upload") if token is None else token
    return client.post("/upload", data={"csrf_token": token, "name": name, "photos": multipart_files(files)},
                       content_type="multipart/form-data")


def job_id_from(response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["Location"].rsplit("/", 1)[-1]


def fake_probabilities(position: int) -> tuple[str, list[float]]:
    """Return (top class, probabilities) for a photo: class position % 10, top probability 0.30 to 0.93."""
    top_index = position % len(CLASSES)
    top = 0.30 + 0.07 * (position % 10)
    probabilities = [(1.0 - top) / (len(CLASSES) - 1)] * len(CLASSES)
    probabilities[top_index] = top
    return CLASSES[top_index], probabilities


# Failure reasons as the workers store them: a damaged file (permanent, a retry would fail again) and a
# worker that stopped (passing, a retry may succeed).
FAILURE_MESSAGES = {
    "truncated": "{name} is a damaged JPEG file: image file is truncated.",
    "worker_lost": "A worker process stopped 3 times while classifying this photo's chunk; it was not tried again.",
}


def classify(job_id: str, failed_positions: frozenset[int] = frozenset(), error_code: str = "truncated") -> None:
    """Write predictions for a job's pending photos as a worker would, failing the given positions with error_code."""
    with session_scope() as session:
        photos = session.scalars(select(Photo).where(Photo.job_id == job_id, Photo.status == PhotoStatus.PENDING)
                                 .order_by(Photo.position)).all()
        version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.is_active.is_(True)))
        for photo in photos:
            if photo.position in failed_positions:
                photo.status, photo.error_code = PhotoStatus.FAILED, error_code
                photo.error = FAILURE_MESSAGES[error_code].format(name=photo.original_name)
                continue
            top_class, probabilities = fake_probabilities(photo.position)
            photo.status, photo.width, photo.height = PhotoStatus.DONE, 640, 480
            prediction = Prediction(photo_id=photo.id, model_version_id=version_id, top_class=top_class,
                                    top_probability=max(probabilities))
            prediction.scores = [PredictionScore(class_name=name, class_index=index, probability=probability)
                                 for index, (name, probability) in enumerate(zip(CLASSES, probabilities))]
            session.add(prediction)
        session.flush()
        refresh_counts(session, job_id)


REFRESH_TAG = '<meta http-equiv="refresh" content="10">'


@contextlib.contextmanager
def statuses_replaced(model, active_statuses: list, replacement):
    """Give every `model` row in one of `active_statuses` the `replacement` status, then restore them."""
    with session_scope() as session:
        rows = session.scalars(select(model).where(model.status.in_(active_statuses))).all()
        previous = {row.id: row.status for row in rows}
        for row in rows:
            row.status = replacement
    try:
        yield
    finally:
        with session_scope() as session:
            for row_id, status in previous.items():
                session.get(model, row_id).status = status
