"""Signing in and out, the language switcher, and the rule that every page needs a signed-in user."""

from __future__ import annotations

import logging
import math
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, current_app, flash, g, jsonify, redirect, render_template, request, session,
                   url_for)
from flask_babel import gettext as _, lazy_gettext as _l, ngettext
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from pandulce.db import User
from web.accounts import SignedInUser, authenticate
from web.database import get_db
from web.extensions import login_manager
from web.i18n import LANGUAGES
from web.throttle import SignInThrottle

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

# Endpoints a person who is not signed in may reach.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.set_language", "static"})


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Show the sign-in form and sign the user in."""
    form = LoginForm()
    target = safe_next(request.args.get("next"))
    status = 401 if request.method == "POST" else 200
    headers = {}

    if form.validate_on_submit():
        user, status, headers = check_sign_in(form.username.data.strip(), form.password.data,
                                              request.remote_addr or "unknown")
        if user is not None:
            login_user(SignedInUser.from_row(user))
            if user.language in LANGUAGES and "language" not in session:
                session["language"] = user.language
            return redirect(target or url_for("jobs.index"))

    return render_template("auth/login.html", form=form, next=target), status, headers


def check_sign_in(username: str, password: str, address: str) -> tuple[User | None, int, dict]:
    """Return (user, HTTP status, headers) of a sign-in attempt, throttled per username and address.

    A rejected attempt gets its message flashed: 401 for a wrong username or
    password, 429 with Retry-After once too many attempts have failed.
    """
    throttle: SignInThrottle = current_app.extensions["sign_in_throttle"]
    wait_s = throttle.wait_seconds(username, address)
    if wait_s:
        minutes = math.ceil(wait_s / 60)
        flash(ngettext("Too many failed sign-ins for this user. Try again in %(num)s minute.",
                       "Too many failed sign-ins for this user. Try again in %(num)s minutes.", minutes), "error")
        return None, 429, {"Retry-After": str(math.ceil(wait_s))}

    user = authenticate(get_db(), username, password)
    if user is not None:
        throttle.clear(username, address)
        return user, 302, {}

    failures = throttle.record_failure(username, address)
    window_min = throttle.window_s // 60
    log.warning("Failed sign-in for user %r from %s (%d of %d allowed in %d minutes)", username, address, failures,
                throttle.max_failures, window_min)
    if failures == throttle.max_failures:
        log.warning("Sign-ins for user %r from %s are rejected with 429 for the next %d minutes", username, address,
                    window_min)
    flash(_("The username or password is incorrect."), "error")
    return None, 401, {}


@bp.route("/logout", methods=("POST",))
def logout():
    """Sign the user out."""
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=("POST",))
def set_language():
    """Switch the interface language and remember it for the signed-in user."""
    language = request.form.get("language", "")
    target = safe_next(request.form.get("next")) or url_for("jobs.index")

    if language not in LANGUAGES:
        flash(_("Unknown language %(language)s.", language=language[:20]), "error")
        return redirect(target)

    session["language"] = language
    if current_user.is_authenticated:
        user = get_db().get(User, current_user.id)
        if user is not None:
            user.language = language
            get_db().commit()
    return redirect(target)


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, so a sign-in link cannot send people elsewhere."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def load_user(user_id: str) -> SignedInUser | None:
    try:
        user = get_db().get(User, int(user_id))
    except ValueError:
        return None
    return SignedInUser.from_row(user) if user is not None else None


def require_sign_in():
    """Send people who are not signed in to the sign-in page (or return 401 to a script)."""
    if request.blueprint == "api" or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if request.endpoint is None:
        # No route matched: let the 404 or 405 handler respond.
        return None
    if not current_user.is_authenticated:
        if wants_json():
            return jsonify(error="unauthorized", message=_("Sign in first.")), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    g.user = current_user._get_current_object()
    return None


def wants_json() -> bool:
    """Tell whether the request comes from the pages' JavaScript and expects JSON back."""
    return (request.headers.get("X-Requested-With") == "fetch"
            or request.accept_mimetypes.best == "application/json")


def init_app(app: Flask) -> None:
    app.extensions["sign_in_throttle"] = SignInThrottle(app.config["SIGN_IN_MAX_FAILURES"],
                                                        app.config["SIGN_IN_WINDOW_S"])
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    app.before_request(require_sign_in)
