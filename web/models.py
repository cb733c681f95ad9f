"""The Models pages: model versions with the latest training runs, one version's metrics and plots, activation."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from web.model_versions import (PLOT_TITLES, RUNS_SHOWN, activate_as_admin, confusion_rows, latest_runs,
                                list_versions, load_version, per_class_rows, run_summary, send_plot, setting_rows,
                                version_detail, version_summary, weights_text)

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
                           weights_kind=weights_text(detail["weights"]), plot_titles=PLOT_TITLES)


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
