"""Run a queued training run: record progress and every epoch in SQL, then register the model version."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from pandulce.config import Settings, get_settings
from pandulce.db import RunStatus, TrainingRun, session_scope, utcnow
from pandulce.registry import register_model

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 2.0


def submit_training(session, dataset: str, settings_dict: dict, submitted_by: str, activate: bool) -> TrainingRun:
    """Add a queued training run; the caller commits and then enqueues it."""
    run = TrainingRun(dataset=dataset, settings=settings_dict, submitted_by=submitted_by[:200], activate=activate)
    session.add(run)
    session.flush()
    return run


def run_training(run_id: int, settings: Settings | None = None) -> str:
    """Train as `pandulce train` would, storing each epoch as it ends; return the run's final status."""
    from training.backbones import WeightsMismatchError, WeightsNotFoundError
    from training.datasets import DatasetError
    from training.train import TrainOptions, train_classifier

    settings = settings or get_settings()
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            log.warning("Training run %d does not exist; dropping the message", run_id)
            return "missing"
        if run.status != RunStatus.QUEUED:
            log.info("Training run %d is %s; not starting it again", run_id, run.status.value)
            return run.status.value
        run.status, run.started_at, run.history = RunStatus.RUNNING, utcnow(), []
        dataset, options_dict = run.dataset, dict(run.settings)

    out_dir = settings.models_dir / f"run-{run_id}-{datetime.now():%Y%m%d-%H%M%S}"
    last_progress = [0.0]

    def on_progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last_progress[0] < PROGRESS_INTERVAL_S:
            return
        last_progress[0] = now
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            run.phase, run.progress_done, run.progress_total = f"features:{phase}", done, total

    def on_epoch(record) -> None:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            run.phase = "fit"
            run.history = [*run.history, record.to_dict()]

    try:
        options = TrainOptions(**options_dict)
        result = train_classifier(dataset, out_dir, options, on_epoch=on_epoch, on_progress=on_progress)
    except (DatasetError, WeightsNotFoundError, WeightsMismatchError, ValueError, OSError) as exc:
        log.error("Training run %d failed: %s", run_id, exc, exc_info=True)
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            run.status, run.error, run.finished_at = RunStatus.FAILED, str(exc), utcnow()
        return RunStatus.FAILED.value

    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        version = register_model(session, Path(out_dir), settings, activate=run.activate,
                                 name=f"{options.backbone} run {run_id}")
        run.model_version_id = version.id
        run.metrics = {key: value for key, value in result.metrics.items() if key != "history"}
        run.status, run.phase, run.finished_at = RunStatus.DONE, None, utcnow()
    log.info("Training run %d done: test accuracy %.4f", run_id, result.metrics["test_accuracy"])
    return RunStatus.DONE.value
