"""The Models pages: versions and training runs, one version's metrics and plots, activation, and training."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext

from pandulce.dataset_uploads import MIN_CLASSES, MIN_PHOTOS_PER_CLASS
from web.database import rollback_db
from web.messages import WebError
from web.model_versions import (PLOT_TITLES, RUNS_SHOWN, activate_as_admin, class_change, confusion_rows,
                                latest_runs, list_versions, load_version, per_class_rows, run_summary, send_plot,
                                setting_rows, version_detail, version_summary, weights_text)
from web.training_runs import (BACKBONES, DEFAULT_EPOCHS, DEFAULT_SEED, MAX_EPOCHS, MAX_SEED, require_admin,
                               start_training)

bp = Blueprint("models", __name__, url_prefix="/models")


@bp.route("/")
def index():
    """List the model versions and the latest training runs, newest first."""
    versions = [version_summary(version) for version in list_versions()]
    runs, runs_total = latest_runs()
    return render_template("models/index.html", versions=versions, runs=[run_summary(run) for run in runs],
                           runs_total=runs_total, runs_shown=RUNS_SHOWN)


@bp.route("/<int:version_id>")
def version_page(version_id):
    """Show a model version's test metrics, per-class table, confusion matrix, training settings and plots."""
    version = load_version(version_id)

    detail = version_detail(version, "models.plot")
    metrics = detail["metrics"]
    return render_template("models/version.html", version=detail, metrics=metrics,
                           per_class=per_class_rows(version, metrics), matrix=confusion_rows(version, metrics),
                           settings=setting_rows(detail["training"]), weights=detail["weights"],
                           weights_kind=weights_text(detail["weights"]), plot_titles=PLOT_TITLES,
                           class_change=class_change(version))


@bp.route("/<int:version_id>/plots/<name>.png")
def plot(version_id, name):
    """Send one of the version's training plots: accuracy, loss or confusion_matrix."""
    return send_plot(load_version(version_id), name)


@bp.route("/<int:version_id>/activate", methods=("POST",))
def activate(version_id):
    """Make the version the one new jobs use. Only administrators may do this."""
    version = activate_as_admin(version_id)

    flash(_("Model version %(name)s is now active. New jobs use it, and jobs already created keep their version.",
            name=version.name), "info")
    return redirect(url_for("models.version_page", version_id=version.id), code=303)


@bp.route("/train", methods=("GET",))
def train_page():
    """Show the form that starts a training run on a zip of class folders. Only administrators may see it."""
    require_admin()
    return render_train_form()


@bp.route("/train", methods=("POST",))
def train():
    """Unpack the uploaded zip, queue a training run on it, and show the run on the Models page."""
    try:
        run, dataset = start_training(request.files.get("dataset"), request.form)
    except WebError as error:
        rollback_db()
        return render_train_form(error.message, request.form), error.status

    flash(_("Training run %(id)s queued with %(photos)s photos of %(classes)s classes.", id=run.id,
            photos=dataset.photo_count, classes=len(dataset.class_counts)), "info")
    if dataset.skipped:
        flash(ngettext("%(num)s file of the zip was skipped: system files, files that are not photos, files outside "
                       "a class folder and photos over the size limit are left out.",
                       "%(num)s files of the zip were skipped: system files, files that are not photos, files "
                       "outside a class folder and photos over the size limit are left out.",
                       dataset.skipped), "info")
    return redirect(url_for("models.index"), code=303)


def render_train_form(error: str | None = None, submitted=None):
    """Render the training form, keeping the submitted settings after an error."""
    limits = current_app.config["UPLOAD_LIMITS"]
    submitted = submitted or {}
    return render_template(
        "models/train.html", error=error, backbones=BACKBONES,
        chosen={"backbone": submitted.get("backbone", BACKBONES[0]),
                "epochs": submitted.get("epochs", DEFAULT_EPOCHS), "seed": submitted.get("seed", DEFAULT_SEED),
                "activate": bool(submitted.get("activate"))},
        max_epochs=MAX_EPOCHS, max_seed=MAX_SEED, min_classes=MIN_CLASSES, min_photos=MIN_PHOTOS_PER_CLASS,
        photo_mb=f"{limits.max_photo_bytes / 1e6:g}", zip_gb=f"{limits.max_zip_expanded_bytes / 1e9:g}")
