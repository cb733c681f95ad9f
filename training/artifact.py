"""Model artifacts: a directory with `model.pt` (a state_dict) and `manifest.json`.

The state_dict contains the whole network, backbone included, so a worker can
load a model version without the ImageNet weights it was trained from. It is
read with `torch.load(..., weights_only=True)`; no model object is pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from training.backbones import PanDulceNet, build_model, file_sha256, spec_for
from training.classes import display_name
from training.pipeline import prepare_model
from training.runtime import Runtime, select_runtime
from training.transforms import EvalPreset

FORMAT = "pandulce-model/1"
WEIGHTS_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"


class ArtifactError(ValueError):
    """A model directory that is missing, incomplete or inconsistent."""


@dataclass
class LoadedModel:
    model: PanDulceNet
    manifest: dict
    runtime: Runtime
    preset: EvalPreset

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def backbone(self) -> str:
        return self.manifest["backbone"]

    def display_name(self, class_name: str, language: str = "es") -> str:
        entry = self.manifest.get("labels", {}).get(language, {}).get(class_name)
        return entry["display_name"] if entry else display_name(class_name, language)


def write_json_atomic(path: Path, content: dict) -> None:
    """Write JSON to a temporary file beside `path` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_artifact(out_dir: Path, model: PanDulceNet, manifest: dict) -> Path:
    """Write model.pt, then manifest.json, each atomically; return the manifest path.

    The manifest is written last, so a directory with a manifest always has the
    weights it describes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / WEIGHTS_FILE
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{WEIGHTS_FILE}.", suffix=".tmp")
    os.close(handle)
    try:
        state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
        torch.save(state, temporary)
        os.replace(temporary, weights_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

    manifest = {
        "format": FORMAT,
        **manifest,
        "state_dict": {"file": WEIGHTS_FILE, "sha256": file_sha256(weights_path)},
        "created_at": manifest.get("created_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    manifest_path = out_dir / MANIFEST_FILE
    write_json_atomic(manifest_path, manifest)
    return manifest_path


def read_manifest(model_dir: str | os.PathLike) -> dict:
    """Read and check a model directory's manifest.json."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{model_dir} is not a model directory: {MANIFEST_FILE} is missing.")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{manifest_path} has format {manifest.get('format')!r}; expected {FORMAT!r}.")
    for key in ("backbone", "classes", "state_dict"):
        if key not in manifest:
            raise ArtifactError(f"{manifest_path} has no {key!r} entry.")
    return manifest


def load_artifact(model_dir: str | os.PathLike, runtime: Runtime | None = None,
                  verify_checksum: bool = True) -> LoadedModel:
    """Load a model directory for prediction on `runtime` (default: the best this machine has)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    weights_path = model_dir / manifest["state_dict"]["file"]
    if not weights_path.is_file():
        raise ArtifactError(f"{weights_path} is missing; the model directory is incomplete.")
    if verify_checksum and file_sha256(weights_path) != manifest["state_dict"]["sha256"]:
        raise ArtifactError(f"{weights_path} does not match the sha256 in {MANIFEST_FILE}; the file is damaged.")

    model, _ = build_model(manifest["backbone"], len(manifest["classes"]), pretrained=False)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights_path} does not fit a {manifest['backbone']} model: {exc}") from exc

    runtime = runtime or select_runtime()
    spec = spec_for(manifest["backbone"])
    normalize = manifest.get("normalize", {})
    preset = EvalPreset(tuple(normalize.get("mean", spec.mean)), tuple(normalize.get("std", spec.std)),
                        size=int(manifest.get("image_size", 224)))
    return LoadedModel(prepare_model(model, runtime), manifest, runtime, preset)
