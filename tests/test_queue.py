"""Batch jobs through real Redis queues and real Celery worker processes, on SQLite and on PostgreSQL."""

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pandulce.db import (
    BatchChunk,
    BatchJob,
    ChunkStatus,
    JobStatus,
    ModelVersion,
    Photo,
    PhotoStatus,
    Prediction,
    PredictionScore,
    session_scope,
)
from pandulce.jobs import JobError, cancel_job, create_job, queued_chunk_indices, retry_failed, retryable_count
from pandulce.queue import enqueue_chunks
from pandulce.registry import activate_version, register_model_dir
from pandulce.uploads import folder_entries, zip_entries
from tests import photo_factory as make
from tests.conftest import copy_subset
from tests.stack import stack_environment, wait_for_job


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory, lite0_model):
    with stack_environment(request.param, tmp_path_factory.mktemp(f"stack-{request.param}")) as stack:
        stack.model_version_id = register_model_dir(lite0_model, activate=True).id
        stack.start_worker(concurrency=2)
        yield stack


@pytest.fixture(scope="module")
def photo_folder(dataset_root, tmp_path_factory):
    """Twelve real photos of every class: 120 photos, 8 chunks of 16."""
    return copy_subset(dataset_root, tmp_path_factory.mktemp("job-photos"), per_class=12, offset=20)


def submit_folder(folder, name="test job"):
    with session_scope() as session:
        job = create_job(session, folder_entries(folder), name=name, submitted_by="test")
        job_id, chunks = job.id, queued_chunk_indices(session, job.id)
    enqueue_chunks(job_id, chunks)
    return job_id


def prediction_rows(job_id):
    with session_scope() as session:
        return session.execute(
            select(Prediction.photo_id, Prediction.model_version_id, Prediction.top_class, Prediction.top_probability)
            .join(Photo, Photo.id == Prediction.photo_id).where(Photo.job_id == job_id)
            .order_by(Prediction.photo_id)).all()


def test_job_predicts_each_photo_once(stack, photo_folder):
    job_id = submit_folder(photo_folder)
    wait_for_job(job_id)

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        assert job.status == JobStatus.DONE
        assert (job.total, job.done_count, job.failed_count, job.skipped_count) == (120, 120, 0, 0)
        assert job.started_at is not None and job.finished_at is not None
        sums = session.execute(
            select(Prediction.photo_id, func.count(PredictionScore.class_name), func.sum(PredictionScore.probability))
            .join(PredictionScore).join(Photo).where(Photo.job_id == job_id).group_by(Prediction.photo_id)).all()
        widths = session.scalars(select(Photo.width).where(Photo.job_id == job_id)).all()
    assert len(sums) == 120
    for photo_id, classes, total in sums:
        assert classes == 10
        assert total == pytest.approx(1.0, abs=1e-4), photo_id
    assert all(width and width > 0 for width in widths)


def test_sql_filters_class_and_probability_range(stack, photo_folder):
    job_id = submit_folder(photo_folder)
    wait_for_job(job_id)

    with session_scope() as session:
        matching = session.scalars(
            select(Photo.id).join(Prediction).join(PredictionScore)
            .where(Photo.job_id == job_id, PredictionScore.class_name == "conchita",
                   PredictionScore.probability.between(0.5, 1.0))).all()
        expected = [row.photo_id for row in prediction_rows(job_id)
                    if row.top_class == "conchita" and row.top_probability >= 0.5]
    assert sorted(matching) == sorted(expected)


def test_killed_worker_child_loses_no_photo(stack, photo_folder):
    job_id = submit_folder(photo_folder, name="kill test")

    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        with session_scope() as session:
            victim = session.execute(select(BatchChunk.index, BatchChunk.worker_pid).where(
                BatchChunk.job_id == job_id, BatchChunk.status == ChunkStatus.RUNNING)).first()
        time.sleep(0.05)
    assert victim is not None, "no chunk started"
    os.kill(victim.worker_pid, signal.SIGKILL)
    wait_for_job(job_id)

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        killed = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id,
                                                         BatchChunk.index == victim.index))
        statuses = session.scalars(select(Photo.status).where(Photo.job_id == job_id)).all()
        assert killed.deliveries >= 2
        assert killed.status == ChunkStatus.DONE
    assert job.status == JobStatus.DONE
    assert statuses.count(PhotoStatus.DONE) == 120
    rows = prediction_rows(job_id)
    assert len(rows) == 120
    assert len({row.photo_id for row in rows}) == 120


def test_bad_files_fail_alone_with_their_reasons(stack, real_photo, tmp_path):
    built = make.build_bad_folder(tmp_path / "bad", real_photo)
    expected = {name: "done" if status == "ok" else status for name, status in built.items()}
    (tmp_path / "bad" / "notes.txt").write_text("bake at 180 C")
    expected["notes.txt"] = "skipped"

    job_id = submit_folder(tmp_path / "bad")
    wait_for_job(job_id)

    with session_scope() as session:
        photos = {photo.original_name: photo for photo in
                  session.scalars(select(Photo).where(Photo.job_id == job_id))}
        job = session.get(BatchJob, job_id)
        assert {name: photo.status.value for name, photo in photos.items()} == expected
        assert photos["truncated.jpg"].error_code == "truncated"
        assert photos["truncated.jpg"].error.startswith("truncated.jpg is a damaged JPEG file")
        assert str(stack.data_dir) not in photos["notes.jpg"].error
        assert "not an image" in photos["notes.jpg"].error
        assert photos["bomb.png"].error_code == "too_large"
        assert photos[".DS_Store"].error_code == "system_file"
        assert photos["notes.txt"].error_code == "not_a_photo"
        assert photos["notes.txt"].stored_path is None
        assert photos["rotated.jpg"].width == 20
        assert photos["rotated.jpg"].height == 40
        assert (job.status, job.done_count, job.failed_count, job.skipped_count) == (JobStatus.DONE, 6, 3, 3)
        with pytest.raises(JobError, match="no failed photos that a retry could classify"):
            retry_failed(session, job)


def test_two_jobs_interleave_across_worker_processes(stack, photo_folder):
    stack.wait_for_ready_children(2)
    first = submit_folder(photo_folder, name="first")
    second = submit_folder(photo_folder, name="second")
    wait_for_job(first)
    wait_for_job(second)

    with session_scope() as session:
        chunks = session.execute(select(BatchChunk.job_id, BatchChunk.worker_pid, BatchChunk.started_at)
                                 .where(BatchChunk.job_id.in_([first, second]))
                                 .order_by(BatchChunk.started_at)).all()
    order = [row.job_id for row in chunks]
    assert len(order) == 16
    # The second job starts before the first one is finished...
    assert order.index(second) < max(index for index, job in enumerate(order) if job == first)
    # ...and the two worker processes share the work.
    assert len({row.worker_pid for row in chunks}) == 2


def test_running_a_chunk_twice_leaves_the_same_rows(stack, photo_folder):
    from worker.chunks import process_chunk

    job_id = submit_folder(photo_folder)
    wait_for_job(job_id)
    before = prediction_rows(job_id)
    with session_scope() as session:
        chunk = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id, BatchChunk.index == 0))
        chunk.status = ChunkStatus.QUEUED
        for photo in session.scalars(select(Photo).where(Photo.job_id == job_id, Photo.chunk_index == 0)):
            photo.status = PhotoStatus.PENDING

    assert process_chunk(job_id, 0, worker_name="test") == "done"

    assert prediction_rows(job_id) == before
    with session_scope() as session:
        assert session.get(BatchJob, job_id).done_count == 120


def test_redeliveries_are_bounded(stack, photo_folder):
    from worker.chunks import process_chunk

    with session_scope() as session:
        job = create_job(session, folder_entries(photo_folder), name="poison", submitted_by="test")
        job_id = job.id
        chunk = session.scalar(select(BatchChunk).where(BatchChunk.job_id == job_id, BatchChunk.index == 0))
        chunk.deliveries = 3

    assert process_chunk(job_id, 0, worker_name="test") == "failed"

    with session_scope() as session:
        failed = session.scalars(select(Photo).where(Photo.job_id == job_id, Photo.chunk_index == 0)).all()
        assert {photo.status for photo in failed} == {PhotoStatus.FAILED}
        assert all(photo.error_code == "worker_lost" for photo in failed)
        assert "stopped 3 times" in failed[0].error
        assert retryable_count(session, job_id) == 16


def test_retry_classifies_photos_a_lost_worker_failed(stack, photo_folder):
    from worker.chunks import process_chunk

    with session_scope() as session:
        job_id = create_job(session, folder_entries(photo_folder), name="retry", submitted_by="test").id
        for chunk in session.scalars(select(BatchChunk).where(BatchChunk.job_id == job_id)):
            chunk.deliveries = 3
    for index in range(8):
        process_chunk(job_id, index, worker_name="test")
    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        assert (job.status, job.failed_count) == (JobStatus.FAILED, 120)
        chunks = retry_failed(session, job)
    enqueue_chunks(job_id, chunks)
    wait_for_job(job_id)

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        assert (job.status, job.done_count, job.failed_count) == (JobStatus.DONE, 120, 0)
    assert len(prediction_rows(job_id)) == 120


def test_cancelled_job_is_not_classified(stack, photo_folder):
    with session_scope() as session:
        job = create_job(session, folder_entries(photo_folder), name="cancel me", submitted_by="test")
        job_id, chunks = job.id, queued_chunk_indices(session, job.id)
        cancel_job(session, job)
    enqueue_chunks(job_id, chunks)
    time.sleep(3)

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        assert job.status == JobStatus.CANCELLED
        assert session.scalar(select(func.count()).select_from(Photo).where(
            Photo.job_id == job_id, Photo.status == PhotoStatus.CANCELLED)) == 120
    assert prediction_rows(job_id) == []


def test_zip_upload_becomes_a_job(stack, photo_folder, tmp_path):
    import zipfile

    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for photo in sorted(photo_folder.rglob("*.jpg"))[:20]:
            out.write(photo, f"fotos/{photo.name}")
        out.writestr("__MACOSX/fotos/._x.jpg", b"AppleDouble")
        out.writestr("../../outside.jpg", make.jpeg_bytes())

    with session_scope() as session:
        job = create_job(session, zip_entries(archive), name="zip", submitted_by="test")
        job_id, chunks = job.id, queued_chunk_indices(session, job.id)
    enqueue_chunks(job_id, chunks)
    wait_for_job(job_id)

    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        assert (job.done_count, job.skipped_count) == (21, 1)
    assert not (tmp_path.parent / "outside.jpg").exists()
    assert not list(stack.data_dir.parent.glob("outside.jpg"))


def test_same_photo_is_stored_once(stack, photo_folder):
    first = submit_folder(photo_folder)
    second = submit_folder(photo_folder)
    wait_for_job(first)
    wait_for_job(second)

    with session_scope() as session:
        paths = session.scalars(select(Photo.stored_path).where(Photo.job_id.in_([first, second]))).all()
    assert len(paths) == 240
    assert len(set(paths)) == 120
    assert len(list((stack.data_dir / "photos").rglob("*.jpg"))) >= 120


def test_next_job_uses_new_active_version(stack, lite0_model, photo_folder):
    with session_scope() as session:
        old = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
    new = register_model_dir(lite0_model, activate=True)
    try:
        job_id = submit_folder(photo_folder)
        wait_for_job(job_id)
        versions = {row.model_version_id for row in prediction_rows(job_id)}
        assert versions == {new.id}
        assert new.id != old.id
    finally:
        with session_scope() as session:
            activate_version(session, old.id)


def test_training_task_matches_a_cli_run(stack, small_dataset, tmp_path):
    import json
    import subprocess
    import sys

    from pandulce.db import RunStatus, TrainingRun
    from pandulce.queue import enqueue_training
    from tests.conftest import REPO_ROOT
    from worker.training_runs import submit_training

    options = {"backbone": "efficientnet-lite0", "epochs": 4, "seed": 7, "views": 2}
    with session_scope() as session:
        run_id = submit_training(session, str(small_dataset), options, "test", activate=False).id
    enqueue_training(run_id)

    env = {**os.environ, "PANDULCE_TORCH_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "pandulce.cli", "train", str(small_dataset), "--out", str(tmp_path / "cli"),
                    "--backbone", "efficientnet-lite0", "--epochs", "4", "--seed", "7", "--views", "2"],
                   check=True, env=env, cwd=REPO_ROOT, capture_output=True)
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run.status in (RunStatus.DONE, RunStatus.FAILED):
                break
        time.sleep(0.5)
    assert run.status == RunStatus.DONE, run.error
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4]
    assert run.metrics["test_accuracy"] == cli["test_accuracy"]
    assert run.metrics["confusion_matrix"] == cli["confusion_matrix"]
    assert run.metrics["best_epoch"] == cli["best_epoch"]
    for queued, direct in zip(run.history, cli["history"]):
        assert queued["val_loss"] == pytest.approx(direct["val_loss"], rel=1e-5)
    with session_scope() as session:
        version = session.get(ModelVersion, run.model_version_id)
        assert version.metrics["test_accuracy"] == cli["test_accuracy"]
        assert not version.is_active


def pandulce(*args, env_extra=None, check=True):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    completed = subprocess.run([sys.executable, "-m", "pandulce.cli", *map(str, args)], capture_output=True,
                               text=True, cwd=REPO_ROOT, env={**os.environ, **(env_extra or {})}, timeout=600)
    if check:
        assert completed.returncode == 0, completed.stderr
    return completed


def test_cli_submit_jobs_and_results(stack, photo_folder, tmp_path):
    import csv
    import json

    submitted = pandulce("submit", photo_folder, "--name", "from the cli")
    job_id = submitted.stdout.split()[1]

    assert f"Job {job_id} done: 120 classified, 0 failed, 0 skipped." in submitted.stdout
    assert job_id in pandulce("jobs").stdout
    pandulce("results", job_id[:8], "--out", tmp_path / "job.csv")
    with (tmp_path / "job.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120
    assert {row["status"] for row in rows} == {"done"}
    assert all(abs(sum(float(row[f"p_{name}"]) for name in ("barquillo", "besos", "conchita", "cuernitos",
               "donas", "orejas", "pan-de-muerto", "puerquito", "quequito", "rosca-de-reyes")) - 1) < 1e-4
               for row in rows)
    pandulce("results", job_id, "--out", tmp_path / "job.jsonl")
    first = json.loads((tmp_path / "job.jsonl").read_text().splitlines()[0])
    assert first["path"] == rows[0]["path"]
    assert len(first["probabilities"]) == 10


def test_cli_submit_without_redis_creates_no_job(stack, photo_folder):
    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(BatchJob))

    failed = pandulce("submit", photo_folder, env_extra={"REDIS_URL": "redis://127.0.0.1:1/0"}, check=False)

    assert failed.returncode == 1
    assert "Cannot reach the queue at redis://127.0.0.1:1/0" in failed.stderr
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(BatchJob)) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (("results", "no-such-job", "--out", "x.csv"), "matches no job"),
        (("results", "no-such-job", "--out", "x.xlsx"), "must end in .csv or .jsonl"),
        (("models", "activate", "9999"), "Model version 9999 does not exist"),
    ],
    ids=["unknown-job", "bad-format", "unknown-version"],
)
def test_cli_rejects_bad_requests(stack, tmp_path, args, message):
    failed = pandulce(*args, check=False)

    assert failed.returncode == 1
    assert message in failed.stderr


def test_cli_models_list_marks_the_active_version(stack):
    listing = pandulce("models", "list").stdout

    assert f"* {stack.model_version_id:4d}" in listing
    active_line = next(line for line in listing.splitlines() if line.startswith("*"))
    assert (Path(active_line.split()[-1]) / "manifest.json").is_file()


def test_chunks_routed_to_gpu_queue(stack):
    import redis

    from pandulce.config import get_settings
    from pandulce.queue import GPU_HEARTBEAT_PREFIX, celery_app, gpu_workers_present

    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    key = f"{settings.queue_prefix}{GPU_HEARTBEAT_PREFIX}test-host:1"
    assert not gpu_workers_present(celery_app(settings), settings)

    client.set(key, "1", ex=30)
    try:
        assert gpu_workers_present(celery_app(settings), settings)
        assert enqueue_chunks("no-such-job", [], settings) == settings.queue("gpu")
    finally:
        client.delete(key)
    assert enqueue_chunks("no-such-job", [], settings) == settings.queue("inference")


def test_cli_train_register_adds_an_inactive_version(stack, small_dataset, tmp_path):
    trained = pandulce("train", small_dataset, "--out", tmp_path / "model", "--backbone", "efficientnet-lite0",
                       "--epochs", 1, "--views", 1, "--register")

    assert "Registered model version" in trained.stdout
    version_id = int(trained.stdout.split("Registered model version ")[1].split(".")[0].split()[0])
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        assert not version.is_active
        assert version.backbone == "efficientnet-lite0"
        assert (stack.data_dir / version.artifact_path / "manifest.json").is_file()
