"""Users and their API tokens, shared by the web app and the `pandulce users` commands.

Passwords are stored as Werkzeug scrypt hashes. An API token is shown once
when it is issued; only its sha256 is stored, so a leaked database does not
leak usable tokens.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta, timezone

from flask_login import UserMixin
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from pandulce.db import ApiToken, User, utcnow

log = logging.getLogger(__name__)

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")
MIN_PASSWORD_LENGTH = 8
TOKEN_PREFIX = "pdt_"
# last_used_at is written at most this often per token and web process, so
# that a hundred clients polling with one token do not turn their requests into
# a hundred database writes queueing behind the workers' writes.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
_touch_lock = threading.Lock()
_touched_at: dict[int, float] = {}
# Checked against when a username does not exist, so that a failed sign-in
# takes as long for an unknown user as for a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


class AccountError(ValueError):
    """A user or token request that cannot be carried out; `code` names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SignedInUser(UserMixin):
    """The signed-in person of one request, detached from any database session."""

    id: int
    username: str
    is_admin: bool
    language: str | None

    @classmethod
    def from_row(cls, user: User) -> "SignedInUser":
        return cls(id=user.id, username=user.username, is_admin=user.is_admin, language=user.language)


def create_user(session: Session, username: str, password: str, is_admin: bool = False) -> User:
    """Add a user after checking the username's form and uniqueness and the password's length."""
    if not USERNAME_PATTERN.match(username):
        raise AccountError("invalid_username", f"Username {username!r} is invalid: use 1 to 80 letters, digits "
                           f"or . _ - @, starting with a letter or digit.")
    if len(password) < MIN_PASSWORD_LENGTH:
        characters = "character" if len(password) == 1 else "characters"
        raise AccountError("short_password", f"The password has {len(password)} {characters}; it needs at least "
                           f"{MIN_PASSWORD_LENGTH}.")
    if find_user(session, username) is not None:
        raise AccountError("username_taken", f"User {username!r} already exists.")

    user = User(username=username, password_hash=generate_password_hash(password), is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User | None:
    """Return the user with this username, compared without regard to case."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the user whose username and password match, or None."""
    user = find_user(session, username)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, name: str = "api") -> str:
    """Add a new API token for the user and return it; it cannot be shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name[:80], token_hash=hash_token(token)))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """Return the owner of an API token, or None for an unknown token."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if api_token is None:
        return None
    user = api_token.user
    last_used = api_token.last_used_at
    if last_used is not None and last_used.tzinfo is None:
        last_used = last_used.replace(tzinfo=timezone.utc)
    if (last_used is None or utcnow() - last_used > TOKEN_TOUCH_INTERVAL) and _claim_touch(api_token.id):
        _touch(session, api_token.id)
    return user


def _claim_touch(token_id: int) -> bool:
    """Let one request per token and interval in this process write last_used_at."""
    now = time.monotonic()
    with _touch_lock:
        if now - _touched_at.get(token_id, float("-inf")) < TOKEN_TOUCH_INTERVAL.total_seconds():
            return False
        _touched_at[token_id] = now
        return True


def _touch(session: Session, token_id: int) -> None:
    try:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
        session.commit()
    except OperationalError as exc:
        # last_used_at is informational: a locked database must not fail the request.
        session.rollback()
        log.warning("Could not record the use of API token %d: %s", token_id, exc)
