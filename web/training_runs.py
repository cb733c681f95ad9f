"""Training runs started from the web: a zip of class folders in, a queued run out, for the pages and the API.

The zip is unpacked here, in the web process, so that a folder name or photo
count training cannot use is reported at once rather than by a failed run.
The workers read the unpacked dataset from the shared data directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

from flask import abort, current_app, g
from flask_babel import gettext as _, ngettext
from werkzeug.datastructures import FileStorage, MultiDict

from pandulce.config import Settings
from pandulce.dataset_uploads import (MIN_CLASSES, MIN_PHOTOS_PER_CLASS, DatasetUploadError, UnpackedDataset,
                                      unpack_dataset_zip)
from pandulce.db import RunStatus, TrainingRun, utcnow
from pandulce.queue import enqueue_training
from pandulce.uploads import UploadError
from web.database import get_db
from web.jobs import iso
from web.messages import WebError
from web.model_versions import folder_name, run_summary
from web.submit import QUEUE_ERRORS, check_queue
from web.upload_sessions import ZIP_SIGNATURES
from worker.training_runs import submit_training

log = logging.getLogger(__name__)

# The backbones training.backbones builds, the default first. Listed here because that module imports torch.
BACKBONES = ("efficientnet-lite0", "resnet50")
DEFAULT_EPOCHS = 15
MAX_EPOCHS = 100
DEFAULT_SEED = 42
# scikit-learn's split takes seeds up to 2**32 - 1.
MAX_SEED = 2**32 - 1
COPY_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class TrainingRequest:
    """The settings of a training run as an administrator chose them."""

    backbone: str
    epochs: int
    seed: int
    activate: bool

    def options(self) -> dict:
        """Return the TrainOptions fields the run is queued with, the same ones `pandulce training submit` sets."""
        return {"backbone": self.backbone, "weights": None, "epochs": self.epochs, "seed": self.seed}


def require_admin() -> None:
    """Abort with 403 unless the signed-in user is an administrator."""
    if not g.user.is_admin:
        abort(403, _("Only an administrator can start a training run."))


def read_training_request(form: MultiDict) -> TrainingRequest:
    """Return the training settings of a submitted form, or raise WebError naming the invalid one."""
    backbone = form.get("backbone", "").strip() or BACKBONES[0]
    if backbone not in BACKBONES:
        raise WebError("bad_backbone", 400, _("The backbone %(value)s is not available; choose one of these: "
                                              "%(choices)s.", value=backbone[:40], choices=", ".join(BACKBONES)))
    epochs = _whole_number(form, "epochs", _("Epochs"), DEFAULT_EPOCHS, 1, MAX_EPOCHS)
    seed = _whole_number(form, "seed", _("Random seed"), DEFAULT_SEED, 0, MAX_SEED)
    activate = form.get("activate", "").strip().lower() in ("1", "on", "true", "yes")
    return TrainingRequest(backbone, epochs, seed, activate)


def _whole_number(form: MultiDict, key: str, label: str, default: int, low: int, high: int) -> int:
    raw = form.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise WebError("bad_request", 400, _("%(key)s must be a whole number from %(low)s to %(high)s, not "
                                             "%(value)s.", key=label, low=low, high=high, value=raw[:32]))
    return int(raw)


def start_training(dataset_zip: FileStorage | None, form: MultiDict) -> tuple[TrainingRun, UnpackedDataset]:
    """Unpack an uploaded zip of class folders, add a training run for it and queue the run.

    Raises WebError when the zip or the settings cannot be used or the queue
    cannot be reached. Nothing of the zip stays on disk after an error, and a
    run that was added but could not be queued is marked failed.
    """
    settings = current_app.config["SETTINGS"]
    require_admin()
    chosen = read_training_request(form)
    if dataset_zip is None or not (dataset_zip.filename or dataset_zip.content_length):
        raise WebError("no_file", 400, _("Choose a zip of class folders to train on."))
    check_queue(settings)

    zip_path = save_zip(dataset_zip, settings.uploads_dir / "incoming")
    try:
        dataset = _unpack(zip_path, settings.datasets_dir, chosen.seed, PurePath(dataset_zip.filename or "").name)
    finally:
        zip_path.unlink(missing_ok=True)

    try:
        run = submit_training(get_db(), str(dataset.path.resolve()), chosen.options(), f"web:{g.user.username}",
                              chosen.activate)
        get_db().commit()
    except BaseException:
        shutil.rmtree(dataset.path, ignore_errors=True)
        raise
    enqueue_or_fail(run, dataset, settings)
    log.info("User %s queued training run %d: %s, %d epochs, seed %d, %d photos of %d classes in %s "
             "(%d zip members skipped)", g.user.username, run.id, chosen.backbone, chosen.epochs, chosen.seed,
             dataset.photo_count, len(dataset.class_counts), dataset.path, dataset.skipped)
    return run, dataset


def save_zip(dataset_zip: FileStorage, incoming_dir: Path) -> Path:
    """Copy an uploaded zip to a temporary file, or raise WebError not_a_zip before writing anything."""
    header = dataset_zip.stream.read(4)
    if header not in ZIP_SIGNATURES:
        raise WebError("not_a_zip", 400, _("The file is not a zip archive. Zip the class folders and upload the "
                                           ".zip file."))

    incoming_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=incoming_dir, prefix="dataset-", suffix=".zip")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(header)
            shutil.copyfileobj(dataset_zip.stream, out, COPY_BLOCK_BYTES)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _unpack(zip_path: Path, datasets_dir: Path, seed: int, label: str) -> UnpackedDataset:
    limits = current_app.config["UPLOAD_LIMITS"]
    try:
        return unpack_dataset_zip(zip_path, datasets_dir, limits, seed=seed, label=label)
    except DatasetUploadError as exc:
        raise WebError(exc.code, 400, dataset_error_text(exc)) from exc
    except UploadError as exc:
        raise WebError.from_code(exc.code, str(exc)) from exc


def dataset_error_text(error: DatasetUploadError) -> str:
    """Return the sentence for a zip that cannot become a dataset, in the current language."""
    listed = ", ".join(f"{name} ({count})" for name, count in error.classes.items())
    if error.code == "bad_class_name":
        folders = ", ".join(f'"{folder[:64]}"' for folder in error.folders[:10])
        return ngettext("The folder name %(folders)s cannot be a class name. Folder names become class names in "
                        "lowercase, so they may contain only letters a to z, digits, hyphens and underscores, start "
                        "with a letter or digit, and have at most 64 characters.",
                        "The folder names %(folders)s cannot be class names. Folder names become class names in "
                        "lowercase, so they may contain only letters a to z, digits, hyphens and underscores, start "
                        "with a letter or digit, and have at most 64 characters.",
                        len(error.folders), folders=folders)
    if error.code == "too_few_classes":
        return _("The zip has photos of only one class, %(classes)s; training needs at least %(min)s classes, "
                 "each in its own folder.", classes=listed, min=MIN_CLASSES)
    if error.code == "too_few_photos":
        return ngettext("Every class needs at least %(min)s photos, and this class has fewer: %(classes)s.",
                        "Every class needs at least %(min)s photos, and these classes have fewer: %(classes)s.",
                        len(error.classes), min=MIN_PHOTOS_PER_CLASS, classes=listed)
    if error.code == "split_too_small":
        return _("%(photos)s photos of %(num)s classes are too few to split into training, validation and test "
                 "photos with every class in each part. Add photos: 7 or more of each class are always enough.",
                 photos=sum(error.classes.values()), num=len(error.classes))
    return _("The zip contains no photos inside class folders. Put the photos of each class in a folder named "
             "after the class, such as conchita/.")


def enqueue_or_fail(run: TrainingRun, dataset: UnpackedDataset, settings: Settings) -> None:
    """Send a committed run to the queue; if Redis fails, mark the run failed and raise queue_unavailable."""
    try:
        enqueue_training(run.id, settings)
    except QUEUE_ERRORS as exc:
        log.error("Could not queue training run %d; marking it failed", run.id, exc_info=True)
        run.status, run.finished_at = RunStatus.FAILED, utcnow()
        run.error = f"The queue could not be reached, so the run was never started: {exc}"
        get_db().commit()
        shutil.rmtree(dataset.path, ignore_errors=True)
        raise WebError.from_code("queue_unavailable") from exc


def load_run(run_id: int) -> TrainingRun:
    """Return a training run, or abort with 404."""
    run = get_db().get(TrainingRun, run_id)
    if run is None:
        abort(404, _("Training run %(run_id)s doesn't exist.", run_id=run_id))
    return run


def run_json(run: TrainingRun, with_history: bool = False) -> dict:
    """Return a training run as the API reports it; `with_history` adds every epoch's record."""
    summary = run_summary(run)
    body = {
        "id": run.id,
        "status": summary["status"],
        "status_label": summary["status_label"],
        "dataset": folder_name(run.dataset),
        "settings": dict(run.settings or {}),
        "activate": run.activate,
        "phase": run.phase,
        "phase_label": summary["phase_label"] or None,
        "progress_done": run.progress_done,
        "progress_total": run.progress_total,
        "percent": summary["percent"],
        "epochs": summary["epochs"],
        "epochs_done": len(run.history or []),
        "last_epoch": summary["last_epoch"],
        "model_version_id": run.model_version_id,
        "error": run.error,
        "created_at": summary["created_at"],
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }
    if with_history:
        body["history"] = list(run.history or [])
    return body
