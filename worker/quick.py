"""Classify a single photo for the web app's quick test, outside any batch job."""

from __future__ import annotations

import logging

from pandulce.config import Settings, get_settings
from pandulce.db import session_scope
from pandulce.queue import store_quick_result
from pandulce.registry import active_version
from pandulce.storage import resolve

log = logging.getLogger(__name__)


def classify_quick_photo(request_id: str, relative_path: str, settings: Settings | None = None) -> dict:
    """Classify one stored photo with the active model version, then store and return the result.

    The result has the keys status (ok or failed), error, error_code,
    top_class, top_probability, probabilities, classes, model_version_id,
    width and height.
    """
    from training.predict import classify_paths
    from worker.models import model_for_version

    settings = settings or get_settings()
    with session_scope() as session:
        version = active_version(session)
        version_id, artifact_path = (version.id, version.artifact_path) if version else (None, None)
    if version_id is None:
        result = {"status": "failed", "error_code": "no_model", "error": "No model version is active."}
    else:
        loaded = model_for_version(version_id, artifact_path, settings)
        path = resolve(settings.data_dir, relative_path)
        result = next(iter(classify_paths(loaded, [path], names={str(path): "The photo"})))
        result = {
            "status": result.status, "error": result.error, "error_code": result.error_code,
            "top_class": result.top_class, "top_probability": result.top_probability,
            "probabilities": dict(zip(loaded.classes, result.probabilities)) if result.probabilities else None,
            "classes": loaded.classes, "model_version_id": version_id,
            "width": result.width, "height": result.height,
        }
    store_quick_result(request_id, result, settings)
    log.info("Quick test %s: %s %s", request_id, result["status"], result.get("top_class"))
    return result
