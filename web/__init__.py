"""The web app: bulk uploads, live job status, results browsing, a quick test, model versions and the JSON API.

The web process never imports torch: classification happens in the workers,
which it reaches only through the queue in `pandulce.queue`.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from pandulce.config import Settings, get_settings
from pandulce.uploads import UploadLimits

log = logging.getLogger(__name__)

# Room for the multipart framing around the largest file one request may carry.
REQUEST_OVERHEAD_BYTES = 16 * 1024 * 1024


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the web app."""
    from web import auth, database, errors, i18n, quick, results, uploads
    from web.api import bp as api_bp
    from web.extensions import csrf, login_manager
    from web.jobs import bp as jobs_bp
    from web.models import bp as models_bp
    from web.requests import UploadRequest

    test_config = test_config or {}
    settings: Settings = test_config.get("SETTINGS") or get_settings()
    limits: UploadLimits = test_config.get("UPLOAD_LIMITS") or UploadLimits()

    app = Flask(__name__)
    app.request_class = UploadRequest
    app.config.from_mapping(
        SETTINGS=settings,
        UPLOAD_LIMITS=limits,
        DATABASE_URL=settings.sqlalchemy_url,
        # A zip is one file of one request, so requests may be as large as a zip may expand to.
        MAX_CONTENT_LENGTH=limits.max_zip_expanded_bytes + REQUEST_OVERHEAD_BYTES,
        # Files per request the upload page sends; Werkzeug rejects more than 1,000 form parts.
        UPLOAD_BATCH_FILES=50,
        # Upload sessions not finished within this many hours are deleted.
        UPLOAD_SESSION_MAX_AGE_H=24,
        RESULTS_PER_PAGE=48,
        RESULTS_MAX_PER_PAGE=500,
        BABEL_DEFAULT_LOCALE=i18n.DEFAULT_LOCALE,
        # Tokens stay valid for the whole sign-in session: a 2,000-photo upload can outlast an hour.
        WTF_CSRF_TIME_LIMIT=None,
        # After this many failed sign-ins of one username from one address within the window, sign-ins get 429.
        SIGN_IN_MAX_FAILURES=5,
        SIGN_IN_WINDOW_S=15 * 60,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(settings.data_dir)
    if "BABEL_TRANSLATION_DIRECTORIES" not in test_config:
        compiled = i18n.compile_translations(Path(app.root_path) / "translations",
                                             settings.data_dir / "cache" / "translations")
        app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)

    database.init_app(app)
    i18n.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    auth.init_app(app)
    errors.init_app(app)

    app.register_blueprint(auth.bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(uploads.bp)
    app.register_blueprint(results.bp)
    app.register_blueprint(quick.bp)
    app.register_blueprint(models_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)
    app.add_url_rule("/", endpoint="index", view_func=jobs_index)
    return app


def jobs_index():
    """Send the start page to the list of jobs."""
    from flask import redirect, url_for

    return redirect(url_for("jobs.index"))


def load_secret_key(data_dir: Path) -> str:
    """Return PANDULCE_SECRET_KEY, or a random key kept in the data directory across restarts."""
    configured = os.environ.get("PANDULCE_SECRET_KEY")
    if configured:
        return configured
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".secret_key.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32))
        # A concurrent first start may have written its own key: keep whichever landed first.
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        temporary.unlink()
        log.info("Created a secret key for signed sessions in %s", path)
    return path.read_text().strip()
