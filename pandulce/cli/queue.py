"""Commands for the queue and the database: db, worker, submit, jobs, results, models, training."""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path

import click
from sqlalchemy import select

from pandulce.cli.text import count
from pandulce.config import get_settings


def ensure_schema() -> None:
    """Create or update the embedded SQLite database; ask for `pandulce db upgrade` on a server database."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from pandulce.db import get_engine
    from pandulce.migrate import alembic_config, quiet_alembic, upgrade

    settings = get_settings()
    config = alembic_config()
    with get_engine().connect() as connection, quiet_alembic():
        head = ScriptDirectory.from_config(config).get_current_head()
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return
    if settings.database_url and not settings.sqlalchemy_url.startswith("sqlite"):
        raise click.ClickException(f"The database is at revision {current or 'empty'}, not {head}; "
                                   f"run `pandulce db upgrade` first.")
    upgrade()


def submitter() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def check_broker() -> None:
    """Fail with a clear message when Redis cannot be reached."""
    import redis

    settings = get_settings()
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise click.ClickException(f"Cannot reach the queue at {settings.redis_url}: {exc}. "
                                   f"Start Redis or set REDIS_URL.") from exc


def find_job(session, job_ref: str):
    """Return the job whose id is, or starts with, `job_ref`."""
    from pandulce.db import BatchJob

    job = session.get(BatchJob, job_ref)
    if job is not None:
        return job
    matches = session.scalars(select(BatchJob).where(BatchJob.id.like(f"{job_ref}%")).limit(2)).all()
    if len(matches) == 1:
        return matches[0]
    reason = "matches several jobs" if matches else "matches no job"
    raise click.ClickException(f"Job {job_ref!r} {reason}; `pandulce jobs` lists them.")


@click.group()
def db():
    """Manage the database schema."""


@db.command("upgrade")
def db_upgrade():
    """Apply every migration to the configured database."""
    from pandulce.migrate import upgrade

    upgrade()
    click.echo(f"Database at {get_settings().sqlalchemy_url.split('@')[-1]} is up to date.")


@db.command("downgrade")
@click.argument("revision", default="base")
def db_downgrade(revision):
    """Undo migrations down to REVISION (default: all of them)."""
    from pandulce.migrate import downgrade

    downgrade(revision=revision)
    click.echo(f"Database downgraded to {revision}.")


@click.command()
@click.option("--queues", default=None, help="Comma-separated queues (default: inference,training; "
                                              "with --gpu: gpu,inference,training).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default: half the CPUs, at least 1; 1 with --gpu).")
@click.option("--gpu", is_flag=True, help="Serve the gpu queue; chunks go there while a GPU worker is up.")
@click.option("--loglevel", default="info", show_default=True)
@click.option("--name", default=None, help="Worker node name (default: pandulce-cpu@HOST or pandulce-gpu@HOST).")
def worker(queues, concurrency, gpu, loglevel, name):
    """Start a Celery worker that classifies chunks and runs training."""
    settings = get_settings()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    concurrency = concurrency or (1 if gpu else max(1, cpus // 2))
    queue_names = (queues or ("gpu,inference,training" if gpu else "inference,training")).split(",")
    os.environ["PANDULCE_WORKER_CONCURRENCY"] = str(concurrency)
    os.environ["PANDULCE_GPU_WORKER"] = "1" if gpu else "0"
    check_broker()
    ensure_schema()

    from worker.celery_app import app

    app.worker_main(argv=[
        "worker", "--loglevel", loglevel, "--concurrency", str(concurrency), "--pool", "prefork",
        "--queues", ",".join(settings.queue(queue.strip()) for queue in queue_names if queue.strip()),
        "--hostname", name or f"pandulce-{'gpu' if gpu else 'cpu'}@%h", "--without-gossip", "--without-mingle",
    ])


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_version", type=int, default=None, help="Model version id (default: the active one).")
@click.option("--name", default=None, help="Job name shown in lists (default: the folder or zip name).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Show progress until the job finishes.")
def submit(source, model_version, name, wait):
    """Store the photos of a FOLDER or ZIP and queue them as a batch job."""
    from pandulce.db import session_scope
    from pandulce.jobs import JobError, create_job, queued_chunk_indices
    from pandulce.queue import enqueue_chunks
    from pandulce.uploads import UploadError, folder_entries, is_zip, zip_entries

    ensure_schema()
    check_broker()
    if source.is_dir():
        entries = folder_entries(source)
    elif is_zip(source):
        entries = zip_entries(source)
    else:
        raise click.ClickException(f"{source} is neither a folder nor a zip archive.")

    try:
        with session_scope() as session:
            job = create_job(session, entries, name=name or source.name, submitted_by=submitter(),
                             model_version_id=model_version)
            job_id, chunks = job.id, queued_chunk_indices(session, job.id)
    except (UploadError, JobError) as exc:
        raise click.ClickException(str(exc)) from exc
    if chunks:
        enqueue_chunks(job_id, chunks)
    click.echo(f"Job {job_id} queued in {count(len(chunks), 'chunk')}.")
    if wait:
        watch_job(job_id)


def watch_job(job_id: str, interval: float = 0.5) -> None:
    """Show a progress bar until the job finishes."""
    from tqdm import tqdm

    from pandulce.db import BatchJob, session_scope

    bar = None
    while True:
        with session_scope() as session:
            job = session.get(BatchJob, job_id)
            processable = job.total - job.skipped_count
            finished = job.done_count + job.failed_count
            status, finished_job = job.status.value, job.finished
        if bar is None:
            bar = tqdm(total=processable, unit="photo", desc=f"job {job_id[:8]}")
        bar.update(finished - bar.n)
        if finished_job:
            break
        time.sleep(interval)
    bar.close()
    with session_scope() as session:
        job = session.get(BatchJob, job_id)
        click.echo(f"Job {job_id} {status}: {job.done_count} classified, {job.failed_count} failed, "
                   f"{job.skipped_count} skipped.")


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
def jobs(limit):
    """List the most recent batch jobs."""
    from pandulce.db import BatchJob, session_scope

    ensure_schema()
    with session_scope() as session:
        rows = session.scalars(select(BatchJob).order_by(BatchJob.created_at.desc()).limit(limit)).all()
        if not rows:
            click.echo(f"No batch jobs yet in {get_settings().data_dir}; `pandulce submit FOLDER` adds one.")
            return
        click.echo(f"{'job':36}  {'status':9}  {'done':>6} {'failed':>6} {'skipped':>7} {'total':>6}  created           name")
        for job in rows:
            click.echo(f"{job.id:36}  {job.status.value:9}  {job.done_count:6d} {job.failed_count:6d} "
                       f"{job.skipped_count:7d} {job.total:6d}  {job.created_at:%Y-%m-%d %H:%M}  {job.name}")


@click.command()
@click.argument("job_ref")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Results file, .csv or .jsonl.")
def results(job_ref, out_file):
    """Export a job's photos with every class's probability (and failed photos with their reasons)."""
    from pandulce.db import session_scope
    from pandulce.exports import format_for, write_results
    from pandulce.jobs import job_rows

    try:
        format_for(out_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    ensure_schema()
    with session_scope() as session:
        job = find_job(session, job_ref)
        count = write_results(out_file, job_rows(session, job), list(job.model_version.classes),
                              extra=("error_code", "sha256", "width", "height"))
    click.echo(f"Wrote {count} rows of job {job.id} to {out_file}")


@click.group()
def models():
    """List, register and activate model versions."""


def model_folder(version) -> str:
    """Return the version's model folder as a path `pandulce classify --model` accepts."""
    path = Path(version.artifact_path)
    return str(path if path.is_absolute() else get_settings().data_dir / path)


@models.command("list")
def models_list():
    """List model versions; the active one is marked with *."""
    from pandulce.db import ModelVersion, session_scope

    ensure_schema()
    with session_scope() as session:
        versions = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        if not versions:
            click.echo("No model versions yet; `pandulce train DATASET --out DIR --register` adds one.")
            return
        click.echo(f"  {'id':>4}  {'name':40}  {'backbone':20}  metrics, created, model folder "
                   f"(* marks the active version)")
        for version in versions:
            accuracy = version.metrics.get("test_accuracy")
            accuracy_text = f"test accuracy {accuracy:.4f}" if accuracy is not None else "no metrics"
            click.echo(f"{'*' if version.is_active else ' '} {version.id:4d}  {version.name:40}  {version.backbone:20}"
                       f"  {accuracy_text}  {version.created_at:%Y-%m-%d %H:%M}  {model_folder(version)}")


@models.command("activate")
@click.argument("version_id", type=int)
def models_activate(version_id):
    """Make VERSION_ID the model that new batch jobs use."""
    from pandulce.db import session_scope
    from pandulce.registry import RegistryError, activate_version

    ensure_schema()
    try:
        with session_scope() as session:
            version = activate_version(session, version_id)
            name = version.name
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Model version {version_id} ({name}) is now active.")


@models.command("register")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--activate", is_flag=True, help="Make it the active version.")
def models_register(model_dir, activate):
    """Add a model directory written by `pandulce train` as a new version."""
    from pandulce.registry import RegistryError, register_model_dir

    ensure_schema()
    try:
        version = register_model_dir(model_dir, activate=activate)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Registered model version {version.id}{' (active)' if version.is_active else ''}.")


@click.group()
def training():
    """Queue training runs for the workers and follow them."""


@training.command("submit")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--backbone", type=click.Choice(["resnet50", "efficientnet-lite0"]), default="efficientnet-lite0",
              show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="Backbone state_dict file, as "
              "the workers see it.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=15, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--activate", is_flag=True, help="Activate the new model version when training succeeds.")
@click.option("--wait/--no-wait", default=True, show_default=True)
def training_submit(dataset, backbone, weights, epochs, seed, activate, wait):
    """Queue a training run on DATASET (a path the workers can read)."""
    from pandulce.db import TrainingRun, session_scope
    from pandulce.queue import enqueue_training
    from worker.training_runs import submit_training

    ensure_schema()
    check_broker()
    options = {"backbone": backbone, "weights": weights, "epochs": epochs, "seed": seed}
    with session_scope() as session:
        run = submit_training(session, str(dataset.resolve()), options, submitter(), activate)
        run_id = run.id
    enqueue_training(run_id)
    click.echo(f"Training run {run_id} queued.")
    if not wait:
        return
    seen = 0
    while True:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            for record in run.history[seen:]:
                click.echo(f"Epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f} "
                           f"acc {record['train_acc']:.4f}  val loss {record['val_loss']:.4f} "
                           f"acc {record['val_acc']:.4f}")
            seen = len(run.history)
            status, error, metrics, version_id = run.status.value, run.error, run.metrics, run.model_version_id
        if status in ("done", "failed"):
            break
        time.sleep(1)
    if status == "failed":
        raise click.ClickException(f"Training run {run_id} failed: {error}")
    click.echo(f"Training run {run_id} done: test accuracy {metrics['test_accuracy']:.4f}; "
               f"model version {version_id}.")


@training.command("list")
def training_list():
    """List training runs."""
    from pandulce.db import TrainingRun, session_scope

    ensure_schema()
    with session_scope() as session:
        runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(50)).all()
        if not runs:
            click.echo("No training runs yet; `pandulce training submit DATASET` queues one.")
            return
        click.echo(f"{'id':>4}  {'status':8}  {'epochs':>9}  {'test accuracy':>13}  dataset")
        for run in runs:
            accuracy = (run.metrics or {}).get("test_accuracy")
            accuracy_text = "" if accuracy is None else f"{accuracy:.4f}"
            click.echo(f"{run.id:4d}  {run.status.value:8}  {len(run.history):>9d}  {accuracy_text:>13}  {run.dataset}")


def register(group: click.Group) -> None:
    for command in (db, worker, submit, jobs, results, models, training):
        group.add_command(command)
