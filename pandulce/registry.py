"""Model versions: register trained model directories and choose the active one."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pandulce.config import Settings, get_settings
from pandulce.db import ModelVersion, session_scope


class RegistryError(ValueError):
    """A model directory or version that cannot be registered or activated."""


def read_model_manifest(model_dir: Path) -> tuple[dict, str]:
    """Return (manifest, sha256 of manifest.json) of a model directory written by `pandulce train`."""
    manifest_path = model_dir / "manifest.json"
    if not manifest_path.is_file():
        raise RegistryError(f"{model_dir} is not a model directory: manifest.json is missing.")
    raw = manifest_path.read_bytes()
    manifest = json.loads(raw)
    weights = model_dir / manifest.get("state_dict", {}).get("file", "model.pt")
    if not weights.is_file():
        raise RegistryError(f"{weights} is missing; the model directory is incomplete.")
    return manifest, hashlib.sha256(raw).hexdigest()


def register_model(session: Session, model_dir: Path, settings: Settings | None = None, activate: bool = False,
                   name: str | None = None) -> ModelVersion:
    """Copy a model directory into the data directory and add a model version for it.

    The first version ever registered becomes active, so a fresh installation
    can classify as soon as it has one model.
    """
    settings = settings or get_settings()
    manifest, manifest_sha256 = read_model_manifest(model_dir)
    created = datetime.now().strftime("%Y%m%d-%H%M%S")
    if model_dir.resolve().is_relative_to(settings.models_dir.resolve()):
        target = model_dir.resolve()
    else:
        target = settings.models_dir / f"{manifest['backbone']}-{created}-{manifest_sha256[:8]}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("*.tmp"))

    first = session.scalar(select(ModelVersion.id).limit(1)) is None
    metrics = manifest.get("metrics", {})
    version = ModelVersion(
        name=name or f"{manifest['backbone']} {created}",
        backbone=manifest["backbone"],
        classes=list(manifest["classes"]),
        artifact_path=str(target.relative_to(settings.data_dir.resolve())),
        manifest_sha256=manifest_sha256,
        metrics=metrics,
    )
    session.add(version)
    session.flush()
    if activate or first:
        activate_version(session, version.id)
    return version


def activate_version(session: Session, version_id: int) -> ModelVersion:
    """Make one version the active one; new batch jobs use it."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise RegistryError(f"Model version {version_id} does not exist.")
    session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False))
    session.flush()
    version.is_active = True
    session.flush()
    return version


def active_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def register_model_dir(model_dir: Path, activate: bool = False) -> ModelVersion:
    """Register a model directory in the configured database, in its own transaction."""
    with session_scope() as session:
        return register_model(session, Path(model_dir), activate=activate)
