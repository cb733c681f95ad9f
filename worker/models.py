"""Each worker process loads a model version once and keeps it for the chunks that follow."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

from pandulce.config import Settings
from pandulce.storage import resolve
from training.artifact import LoadedModel, load_artifact
from training.runtime import select_runtime

log = logging.getLogger(__name__)

MAX_CACHED = 2
_cache: "OrderedDict[tuple[int, str], LoadedModel]" = OrderedDict()


def worker_compiles() -> bool:
    """Compile backbones in workers unless PANDULCE_COMPILE=0: a worker lives long enough to repay it."""
    return os.environ.get("PANDULCE_COMPILE", "1") != "0"


def model_for_version(version_id: int, artifact_path: str, settings: Settings) -> LoadedModel:
    """Return the loaded model of a version, loading it on first use in this process."""
    key = (version_id, artifact_path)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]

    model_dir = resolve(settings.data_dir, artifact_path) if not os.path.isabs(artifact_path) else artifact_path
    loaded = load_artifact(model_dir, select_runtime(compile=worker_compiles()))
    log.info("Loaded model version %d (%s) in process %d on %s", version_id, loaded.backbone, os.getpid(),
             loaded.runtime.describe())
    _cache[key] = loaded
    while len(_cache) > MAX_CACHED:
        _cache.popitem(last=False)
    return loaded
